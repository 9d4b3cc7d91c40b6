// `stockade serve`: the official SDK client over streamable HTTP against the gateway on
// 127.0.0.1, each session a real sandbox on the real kernel running a real registry server
// (@modelcontextprotocol/server-memory, whose knowledge graph is a file in its HOME).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import * as jose from 'jose';
import { RunCa } from '../lib/secrets/ca';
import { Authenticator, newToken } from '../lib/serve/auth';
import { parseServeConfig, type ServeConfigError } from '../lib/serve/config';
import type { Gateway } from '../lib/serve/gateway';
import { repoRoot, sharedTempDir } from './helpers';
import { connectAs, endSession, startGateway } from './helpers/gateway';
import { waitFor } from './helpers/wait';

const modules = path.join(repoRoot, 'node_modules');
const memoryEntry = path.join(modules, '@modelcontextprotocol', 'server-memory', 'dist', 'index.js');

type Content = { type: string; text?: string }[];
const text = (result: unknown) => (((result as { content?: Content }).content ?? []) as Content).map((c) => c.text ?? '').join('\n');

/** A raw HTTP request, for what the SDK client would never send. */
function raw(
  port: number,
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path: url, headers }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
});
const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

describe('stockade serve: a sandbox per principal behind streamable HTTP', () => {
  let dir: string;
  let gateway: Gateway;
  let port: number;
  let issuerKey: jose.CryptoKey;
  const records: Record<string, unknown>[] = [];
  const alice = newToken('alice');
  const bob = newToken('bob');
  const carol = newToken('carol');

  before(async () => {
    dir = sharedTempDir('serve');
    fs.writeFileSync(path.join(dir, 'tokens'), `# principals\n${alice.line}\n${bob.line}\n${carol.line}\n`);
    const { publicKey, privateKey } = await jose.generateKeyPair('ES256');
    issuerKey = privateKey;
    const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
    ({ gateway, port } = await startGateway(
      {
        listen: { host: '127.0.0.1', port: 0 },
        origins: ['https://app.example.com'],
        stateDir: 'state',
        auth: {
          tokens: { file: 'tokens' },
          oauth: { issuer: 'https://issuer.example', audience: 'https://gw.example/mcp', jwks: 'jwks.json' },
        },
        limits: { sandboxesPerPrincipal: 1, requestsPerMinute: 1000 },
        servers: {
          memory: {
            command: ['node', memoryEntry],
            filesystem: { readOnly: [modules] },
            env: { MEMORY_FILE_PATH: '/home/nobody/memory.jsonl' },
          },
        },
      },
      dir,
      records,
    ));
  });

  after(async () => {
    await gateway?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const connect = (token: string): Promise<Client> => connectAs(port, 'memory', token);
  const end = endSession;

  test("two principals get different sandboxes: one's state is invisible to the other", async () => {
    const a = await connect(alice.token);
    const b = await connect(bob.token);
    assert.equal(gateway.tenants.size, 2);
    await a.callTool({
      name: 'create_entities',
      arguments: { entities: [{ name: 'alice-secret', entityType: 'note', observations: ['only alice'] }] },
    });
    assert.match(text(await a.callTool({ name: 'read_graph', arguments: {} })), /alice-secret/);
    assert.doesNotMatch(text(await b.callTool({ name: 'read_graph', arguments: {} })), /alice-secret/);
    await end(a);
    await end(b);
    // Alice's state persists in her own HOME for her next session.
    const stateFiles = fs.readdirSync(path.join(dir, 'state', 'memory'));
    assert.equal(stateFiles.length, 2, 'one state directory per principal');
    await waitFor(() => gateway.tenants.countFor('alice') === 0, { what: "alice's sandbox to stop", timeout: 20_000 });
    const again = await connect(alice.token);
    assert.match(text(await again.callTool({ name: 'read_graph', arguments: {} })), /alice-secret/);
    await end(again);
  });

  test('the audit names the principal and the sandbox on every tool call', async () => {
    const calls = records.filter((r) => r.event === 'mcp.tool_call');
    assert.ok(calls.length >= 3);
    for (const c of calls) {
      assert.ok(c.principal === 'alice' || c.principal === 'bob', JSON.stringify(c));
      assert.equal(typeof c.sandbox, 'string');
      assert.equal(c.server, 'memory');
    }
    assert.ok(calls.some((c) => c.principal === 'bob' && c.tool === 'read_graph'));
  });

  test('a bad token, a missing token and an expired JWT are refused with 401', async () => {
    const bad = await raw(port, 'POST', '/mcp/memory', { ...mcpHeaders, authorization: 'Bearer stk_nope' }, INIT);
    assert.equal(bad.status, 401);
    assert.match(
      String(bad.headers['www-authenticate']),
      /^Bearer error="invalid_token".*resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp\/memory"/,
    );
    const none = await raw(port, 'POST', '/mcp/memory', mcpHeaders, INIT);
    assert.equal(none.status, 401);
    const expired = await new jose.SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer('https://issuer.example')
      .setAudience('https://gw.example/mcp')
      .setSubject('dave')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(issuerKey);
    const res = await raw(port, 'POST', '/mcp/memory', { ...mcpHeaders, authorization: `Bearer ${expired}` }, INIT);
    assert.equal(res.status, 401);
    assert.match(res.body, /expired/);
    const wrongAudience = await new jose.SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer('https://issuer.example')
      .setAudience('https://other.example')
      .setSubject('dave')
      .setExpirationTime('5m')
      .sign(issuerKey);
    assert.equal((await raw(port, 'POST', '/mcp/memory', { ...mcpHeaders, authorization: `Bearer ${wrongAudience}` }, INIT)).status, 401);
    assert.equal(gateway.tenants.countFor('https://issuer.example#dave'), 0, 'no sandbox for a refused caller');
  });

  test('a valid OAuth access token is a principal of its own', async () => {
    const jwt = await new jose.SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer('https://issuer.example')
      .setAudience('https://gw.example/mcp')
      .setSubject('erin')
      .setExpirationTime('5m')
      .sign(issuerKey);
    const client = await connect(jwt);
    assert.equal(gateway.tenants.countFor('https://issuer.example#erin'), 1);
    const { tools } = await client.listTools();
    assert.ok(tools.some((t) => t.name === 'read_graph'));
    await end(client);
    const meta = await raw(port, 'GET', '/.well-known/oauth-protected-resource/mcp/memory', {});
    assert.deepEqual(JSON.parse(meta.body).authorization_servers, ['https://issuer.example']);
  });

  test('an Origin from elsewhere is refused before authentication', async () => {
    const res = await raw(
      port,
      'POST',
      '/mcp/memory',
      { ...mcpHeaders, origin: 'https://evil.example', authorization: `Bearer ${alice.token}` },
      INIT,
    );
    assert.equal(res.status, 403);
    assert.match(res.body, /Origin https:\/\/evil\.example is not allowed/);
    const rebinding = await raw(
      port,
      'POST',
      '/mcp/memory',
      { ...mcpHeaders, host: 'attacker.example', authorization: `Bearer ${alice.token}` },
      INIT,
    );
    assert.equal(rebinding.status, 421);
  });

  test('a session id is honoured only for the principal that opened it', async () => {
    const a = await raw(port, 'POST', '/mcp/memory', { ...mcpHeaders, authorization: `Bearer ${carol.token}` }, INIT);
    assert.equal(a.status, 200);
    const session = String(a.headers['mcp-session-id']);
    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    const stolen = await raw(
      port,
      'POST',
      '/mcp/memory',
      { ...mcpHeaders, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18', authorization: `Bearer ${bob.token}` },
      list,
    );
    assert.equal(stolen.status, 404);
    const del = await raw(port, 'DELETE', '/mcp/memory', {
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-06-18',
      authorization: `Bearer ${carol.token}`,
    });
    assert.equal(del.status, 200);
    await waitFor(() => gateway.tenants.countFor('carol') === 0, { what: "carol's sandbox to stop after DELETE", timeout: 20_000 });
  });

  test('limits per principal hold', async () => {
    await waitFor(() => gateway.tenants.countFor('bob') === 0, { what: "bob's earlier sandbox to stop", timeout: 20_000 });
    const first = await raw(port, 'POST', '/mcp/memory', { ...mcpHeaders, authorization: `Bearer ${bob.token}` }, INIT);
    assert.equal(first.status, 200);
    const second = await raw(port, 'POST', '/mcp/memory', { ...mcpHeaders, authorization: `Bearer ${bob.token}` }, INIT);
    assert.equal(second.status, 429);
    assert.match(second.body, /the most a principal may hold/);
    const headers = { 'mcp-session-id': String(first.headers['mcp-session-id']), 'mcp-protocol-version': '2025-06-18' };
    assert.equal((await raw(port, 'DELETE', '/mcp/memory', { ...headers, authorization: `Bearer ${bob.token}` })).status, 200);
    await waitFor(() => gateway.tenants.countFor('bob') === 0, { what: "bob's sandbox to stop, freeing his slot", timeout: 20_000 });
    assert.equal((await raw(port, 'POST', '/mcp/memory', { ...mcpHeaders, authorization: `Bearer ${bob.token}` }, INIT)).status, 200);
  });

  test('Mcp-Method and Mcp-Name must match the body; oversized bodies are refused', async () => {
    const call = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'delete_entities', arguments: {} } });
    const lie = await raw(
      port,
      'POST',
      '/mcp/memory',
      { ...mcpHeaders, 'mcp-method': 'tools/call', 'mcp-name': 'read_graph', authorization: `Bearer ${alice.token}` },
      call,
    );
    assert.equal(lie.status, 400);
    assert.equal(JSON.parse(lie.body).error.message, `Mcp-Name "read_graph" does not match the body's "delete_entities"`);
    const big = await raw(
      port,
      'POST',
      '/mcp/memory',
      { ...mcpHeaders, authorization: `Bearer ${alice.token}` },
      `"${'x'.repeat(5 * 1024 * 1024)}"`,
    );
    assert.equal(big.status, 413);
  });

  test('/healthz and /metrics for operators', async () => {
    assert.equal((await raw(port, 'GET', '/healthz', {})).status, 200);
    const metrics = (await raw(port, 'GET', '/metrics', {})).body;
    assert.match(metrics, /^stockade_sandboxes \d+$/m);
    assert.match(metrics, /^stockade_tool_calls_total [1-9]\d*$/m);
    assert.match(metrics, /^stockade_denials_total\{kind="auth"\} [1-9]/m);
    assert.match(metrics, /^stockade_denials_total\{kind="origin"\} [1-9]/m);
  });
});

describe('stockade serve reaps idle sandboxes', () => {
  test('a session with no request for idleSeconds is stopped and its slot freed', async () => {
    const dir = sharedTempDir('serve-idle');
    const token = newToken('idler');
    fs.writeFileSync(path.join(dir, 'tokens'), `${token.line}\n`);
    const records: Record<string, unknown>[] = [];
    const { gateway, port } = await startGateway(
      {
        listen: { port: 0 },
        auth: { tokens: { file: 'tokens' } },
        limits: { idleSeconds: 1 },
        servers: { memory: { command: ['node', memoryEntry], filesystem: { readOnly: [modules] } } },
      },
      dir,
      records,
    );
    try {
      const res = await raw(port, 'POST', '/mcp/memory', { ...mcpHeaders, authorization: `Bearer ${token.token}` }, INIT);
      assert.equal(res.status, 200);
      assert.equal(gateway.tenants.size, 1);
      await waitFor(() => gateway.tenants.size === 0, { what: 'the idle sandbox to be reaped', timeout: 20_000 });
      assert.ok(records.some((r) => r.event === 'serve-sandbox-stop' && r.principal === 'idler' && r.reason === 'idle'));
      const stale = await raw(
        port,
        'POST',
        '/mcp/memory',
        {
          ...mcpHeaders,
          'mcp-session-id': String(res.headers['mcp-session-id']),
          authorization: `Bearer ${token.token}`,
        },
        JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      );
      assert.equal(stale.status, 404, 'a reaped session is gone');
    } finally {
      await gateway.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('stockade serve over TLS', () => {
  test('with a certificate the gateway speaks only HTTPS', async () => {
    const dir = sharedTempDir('serve-tls');
    const ca = await RunCa.create({ commonName: 'stockade test CA' });
    const leaf = await ca.leaf('127.0.0.1');
    fs.writeFileSync(path.join(dir, 'cert.pem'), leaf.certPem);
    fs.writeFileSync(path.join(dir, 'key.pem'), leaf.keyPem);
    const token = newToken('tls-user');
    fs.writeFileSync(path.join(dir, 'tokens'), `${token.line}\n`);
    const { gateway, port } = await startGateway(
      {
        listen: { port: 0 },
        tls: { cert: 'cert.pem', key: 'key.pem' },
        auth: { tokens: { file: 'tokens' } },
        servers: { cat: { command: ['/bin/cat'] } },
      },
      dir,
    );
    try {
      const status = await new Promise<number>((resolve, reject) => {
        httpsRequest({ host: '127.0.0.1', port, path: '/healthz', ca: ca.certPem }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .on('error', reject)
          .end();
      });
      assert.equal(status, 200);
      // Plain HTTP to the TLS port gets no answer a client could take for MCP.
      await assert.rejects(raw(port, 'GET', '/healthz', {}));
    } finally {
      await gateway.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('stockade serve with per-principal credentials', () => {
  test("each principal's sandbox gets that principal's secret, and none without one", async () => {
    const dir = sharedTempDir('serve-secrets');
    const withKey = newToken('has-key');
    const without = newToken('no-key');
    fs.writeFileSync(path.join(dir, 'tokens'), `${withKey.line}\n${without.line}\n`);
    fs.mkdirSync(path.join(dir, 'secrets', 'has-key'), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'secrets', 'has-key', 'API_TOKEN'), 'tenant-token\n', { mode: 0o600 });
    const records: Record<string, unknown>[] = [];
    const { gateway, port } = await startGateway(
      {
        listen: { port: 0 },
        secretsDir: 'secrets',
        auth: { tokens: { file: 'tokens' } },
        servers: {
          cat: {
            command: ['node', memoryEntry],
            filesystem: { readOnly: [modules] },
            network: { allow: ['api.example.test'] },
            secrets: [{ name: 'API_TOKEN', hosts: ['api.example.test'] }],
          },
        },
      },
      dir,
      records,
    );
    try {
      const refused = await raw(port, 'POST', '/mcp/cat', { ...mcpHeaders, authorization: `Bearer ${without.token}` }, INIT);
      assert.equal(refused.status, 403);
      assert.equal(JSON.parse(refused.body).error.message, 'the gateway has no credential API_TOKEN for you on server cat');
      assert.doesNotMatch(refused.body, /secrets\//, 'no gateway path in what the client sees');
      assert.equal(gateway.tenants.size, 0);
      assert.ok(records.some((r) => r.event === 'serve-session-refused' && r.principal === 'no-key'));
      const ok = await raw(port, 'POST', '/mcp/cat', { ...mcpHeaders, authorization: `Bearer ${withKey.token}` }, INIT);
      assert.equal(ok.status, 200, ok.body);
      assert.equal(gateway.tenants.countFor('has-key'), 1);
      assert.doesNotMatch(JSON.stringify(records), /tenant-token/, 'the value is never logged');
    } finally {
      await gateway.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('stockade serve on the command line', () => {
  const launcher = path.join(repoRoot, 'bin', 'stockade.js');

  test('--new-token prints a token and the digest line that admits it', async () => {
    const out = spawnSync(process.execPath, [launcher, 'serve', '--new-token', 'ops'], { encoding: 'utf8' });
    assert.equal(out.status, 0);
    const token = out.stdout.trim();
    const line = out.stderr.trim().split('\n').pop() ?? '';
    assert.match(line, /^ops sha256:[0-9a-f]{64}$/);
    const admitted = await new Authenticator({ tokens: { env: 'STOCKADE_TEST_TOKENS' } })
      .authenticate(`Bearer ${token}`)
      .catch(() => undefined);
    assert.equal(admitted, undefined, 'no tokens configured yet');
    process.env.STOCKADE_TEST_TOKENS = line;
    try {
      assert.deepEqual(await new Authenticator({ tokens: { env: 'STOCKADE_TEST_TOKENS' } }).authenticate(`Bearer ${token}`), {
        id: 'ops',
        via: 'token',
      });
    } finally {
      delete process.env.STOCKADE_TEST_TOKENS;
    }
  });

  test('a bad config is one line per problem and exit 2; SIGTERM stops a running gateway with 0', async () => {
    const dir = sharedTempDir('serve-cli');
    try {
      fs.writeFileSync(path.join(dir, 'bad.yaml'), 'servers: {}\n');
      const bad = spawnSync(process.execPath, [launcher, 'serve', path.join(dir, 'bad.yaml')], { encoding: 'utf8' });
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /^stockade serve: invalid serve config .*bad\.yaml:\n {2}\/auth: /);
      assert.doesNotMatch(bad.stderr, /^\s+at /m, 'no stack trace');
      fs.writeFileSync(path.join(dir, 'tokens'), `${newToken('x').line}\n`);
      fs.writeFileSync(
        path.join(dir, 'ok.yaml'),
        'listen: { port: 0 }\nauth: { tokens: { file: tokens } }\nservers: { cat: { command: [/bin/cat] } }\n',
      );
      const child = spawn(process.execPath, [launcher, 'serve', path.join(dir, 'ok.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+\/mcp\/\{cat\}/.test(stderr), {
        what: 'the listening line',
        timeout: 20_000,
      });
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('stockade serve config', () => {
  test('refuses a config without authentication, with the path of each problem', () => {
    assert.throws(
      () => parseServeConfig({ servers: { Bad: { command: ['x'] }, ok: { command: 'x' } } }, '/tmp'),
      (err: ServeConfigError) => {
        assert.match(err.message, /\/auth: expected \{ tokens, oauth \}/);
        assert.match(err.message, /\/servers\/Bad: a server name is lowercase/);
        assert.match(err.message, /\/servers\/ok\/command/);
        return true;
      },
    );
  });
});
