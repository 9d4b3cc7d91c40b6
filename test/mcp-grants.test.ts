// Per-tool grants end to end: a real MCP server (official SDK server API, test/helpers/grants-server)
// runs sandboxed by `stockade run --policy`, driven by the official SDK client. Its tools fetch_a
// and fetch_b do the same thing; the policy grants a.test and secret TOKEN_A to fetch_a, b.test and
// TOKEN_B to fetch_b. The upstreams are real servers on 127.0.0.1 (HTTPS with a test CA for the
// secrets' host), which record what reached them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { validatePolicy } from '../lib/policy';
import { RunCa } from '../lib/secrets';
import { repoRoot, sharedTempDir } from './helpers';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const modules = path.join(repoRoot, 'node_modules');
const fixture = path.join(repoRoot, 'dist', 'test', 'helpers', 'grants-server.js');

type Content = { type: string; text?: string }[];
const text = (result: unknown) => (((result as { content?: Content }).content ?? []) as Content).map((c) => c.text ?? '').join('\n');

interface Upstream {
  port: number;
  seen: string[];
  close(): void;
}

/** A plain HTTP upstream; `/hold` is answered only once `release()` is called. */
async function plainUpstream(name: string): Promise<Upstream & { held: Promise<void>; release(): void }> {
  const seen: string[] = [];
  let release = () => {};
  let heldResolve = () => {};
  const held = new Promise<void>((r) => (heldResolve = r));
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/hold') {
      release = () => res.end(`${name} released`);
      heldResolve();
      return;
    }
    res.end(`${name} ok`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    held,
    release: () => release(),
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe('per-tool grants: mcp.tools.<name>.network and .secrets', () => {
  let dir: string;
  let policy: string;
  let auditFile: string;
  let a: Awaited<ReturnType<typeof plainUpstream>>;
  let b: Awaited<ReturnType<typeof plainUpstream>>;
  let s: Upstream & { auth: string[] };
  const tokenA = `real-a-${randomBytes(8).toString('hex')}`;
  const tokenB = `real-b-${randomBytes(8).toString('hex')}`;

  before(async () => {
    dir = sharedTempDir('grants');
    a = await plainUpstream('a');
    b = await plainUpstream('b');
    const ca = await RunCa.create({ commonName: 'stockade test upstream CA' });
    const leaf = await ca.leaf('s.test');
    const caFile = path.join(dir, 'upstream-ca.pem');
    fs.writeFileSync(caFile, ca.certPem);
    const auth: string[] = [];
    const seen: string[] = [];
    const tlsServer = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (req, res) => {
      seen.push(req.url ?? '');
      auth.push(String(req.headers.authorization ?? ''));
      res.end('s ok');
    });
    tlsServer.listen(0, '127.0.0.1');
    await once(tlsServer, 'listening');
    s = { port: (tlsServer.address() as AddressInfo).port, seen, auth, close: () => tlsServer.close() };
    policy = path.join(dir, 'grants.policy.json');
    auditFile = path.join(dir, 'audit.jsonl');
    fs.writeFileSync(
      policy,
      JSON.stringify({
        command: ['node', fixture],
        filesystem: { readOnly: [modules, path.dirname(fixture), path.join(repoRoot, 'dist')] },
        network: {
          allow: [],
          resolve: [`a.test:${a.port}:127.0.0.1`, `b.test:${b.port}:127.0.0.1`, `s.test:443:127.0.0.1:${s.port}`],
        },
        secrets: [
          { name: 'TOKEN_A', hosts: ['s.test'] },
          { name: 'TOKEN_B', hosts: ['s.test'] },
        ],
        upstreamCa: [caFile],
        mcp: {
          tools: {
            fetch_a: { network: [`a.test:${a.port}`], secrets: ['TOKEN_A'] },
            fetch_b: { network: [`b.test:${b.port}`], secrets: ['TOKEN_B'] },
            deferred: {},
          },
        },
        audit: auditFile,
      }),
    );
  });
  after(() => {
    a.close();
    b.close();
    s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function connect() {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [launcher, 'run', '--policy', policy],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', TOKEN_A: tokenA, TOKEN_B: tokenB },
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (d: Buffer) => (stderr += d));
    const client = new Client({ name: 'stockade-test', version: '0.0.0' });
    await client.connect(transport);
    return { client, stderr: () => stderr };
  }

  const A = () => `http://a.test:${a.port}`;
  const B = () => `http://b.test:${b.port}`;
  const audit = () =>
    fs
      .readFileSync(auditFile, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  test('a call of fetch_a reaches a.test and is refused b.test, naming the call; fetch_b the reverse', async () => {
    const { client, stderr } = await connect();
    try {
      const seenB = b.seen.length;
      const outA = text(await client.callTool({ name: 'fetch_a', arguments: { urls: [`${A()}/one`, `${B()}/nope`] } }));
      const [okA, refusedB] = outA.split('\n');
      assert.equal(okA, '200 a ok', stderr());
      // undici tunnels plain HTTP through CONNECT too: the proxy's 403 is the fetch's failure.
      assert.match(refusedB, /403/);
      assert.match(
        refusedB,
        new RegExp(
          `tool-grant: b\\.test:${b.port} is granted to tool fetch_b only, and no call in flight has it \\(in flight: call \\d+ \\(fetch_a\\)\\)`,
        ),
      );
      assert.equal(b.seen.length, seenB, 'b.test never saw the refused request');
      const seenA = a.seen.length;
      const outB = text(await client.callTool({ name: 'fetch_b', arguments: { urls: [`${B()}/two`, `${A()}/nope`] } }));
      assert.match(outB, /^200 b ok\n.*403.*tool-grant: a\.test:\d+ is granted to tool fetch_a only.*call \d+ \(fetch_b\)/);
      assert.equal(a.seen.length, seenA);
      // The denial is one line on the launcher's stderr, with the call.
      assert.match(stderr(), /tool-grant: b\.test:\d+ is granted to tool fetch_b only.*call \d+ \(fetch_a\)/);
    } finally {
      await client.close();
    }
    // Audit: each egress record is joined to the call it was decided for.
    const joined = audit().filter((e) => e.event === 'mcp.tool_egress') as {
      calls: { id: number; tool: string }[];
      egress: { host: string; decision: string; calls: unknown };
    }[];
    const pairs = joined.map((e) => `${e.calls.map((c) => c.tool).join('+')} ${e.egress.host} ${e.egress.decision}`);
    for (const p of ['fetch_a a.test allow', 'fetch_a b.test deny', 'fetch_b b.test allow', 'fetch_b a.test deny']) {
      assert.ok(pairs.includes(p), `${p} in ${JSON.stringify(pairs)}`);
    }
    assert.ok(joined.every((e) => e.calls.every((c) => typeof c.id === 'number')));
  });

  test('concurrent calls of both tools get the union; between calls only the base grant holds', async () => {
    const { client, stderr } = await connect();
    try {
      // fetch_a stays in flight: a.test holds its /hold request until released.
      const pending = client.callTool({ name: 'fetch_a', arguments: { urls: [`${A()}/hold`], defer: `${A()}/between` } });
      await a.held;
      const both = text(await client.callTool({ name: 'fetch_b', arguments: { urls: [`${A()}/union`, `${B()}/union`] } }));
      assert.equal(both, '200 a ok\n200 b ok', stderr());
      a.release();
      assert.equal(text(await pending), '200 a released');
      // Alone again, fetch_b is refused a.test.
      assert.match(text(await client.callTool({ name: 'fetch_b', arguments: { urls: [`${A()}/alone`] } })), /403.*tool-grant/);
      // The deferred fetch runs on the next ping, while no call is in flight: base grant only.
      await client.ping();
      assert.match(
        text(await client.callTool({ name: 'deferred', arguments: {} })),
        /403.*tool-grant: a\.test:\d+ is granted to tool fetch_a only, and no call in flight has it \(in flight: none\)/,
      );
      assert.ok(!a.seen.includes('/alone') && !a.seen.includes('/between'), JSON.stringify(a.seen));
      assert.ok(a.seen.includes('/union'));
    } finally {
      await client.close();
    }
    // The union decision names the call whose grant allowed it (fetch_a's, for fetch_b's request
    // to a.test), and that keep-alive tunnel was cut when fetch_a's call ended, so fetch_b alone
    // could not reuse it.
    const egress = audit().filter((e) => e.event === 'egress' && e.host === 'a.test') as {
      decision: string;
      rule: string;
      error?: string;
      calls?: { tool: string }[];
    }[];
    const union = egress.find((e) => e.decision === 'allow' && /^tool fetch_a \(call \d+\): a\.test:\d+$/.test(e.rule) && e.error);
    assert.ok(union, JSON.stringify(egress));
    assert.match(union.error ?? '', /^closed: the call that granted a\.test:\d+ ended \(tool-grant: /);
  });

  test("secrets are injected only for the tool granted them; another tool's placeholder is refused", async () => {
    const { client, stderr } = await connect();
    try {
      const before = s.auth.length;
      const rightA = text(await client.callTool({ name: 'fetch_a', arguments: { urls: ['https://s.test/a'], token: 'TOKEN_A' } }));
      assert.equal(rightA, '200 s ok', stderr());
      assert.deepEqual(s.auth.slice(before), [`Bearer ${tokenA}`]);
      const wrong = text(await client.callTool({ name: 'fetch_a', arguments: { urls: ['https://s.test/b'], token: 'TOKEN_B' } }));
      assert.match(wrong, /^403 .*secret-out-of-call/);
      assert.match(wrong, /secret TOKEN_B not injected: tool-grant: secret TOKEN_B is granted to tool fetch_b only.*call \d+ \(fetch_a\)/);
      assert.equal(s.auth.length, before + 1, 'the refused request never reached s.test');
      const rightB = text(await client.callTool({ name: 'fetch_b', arguments: { urls: ['https://s.test/c'], token: 'TOKEN_B' } }));
      assert.equal(rightB, '200 s ok');
      assert.deepEqual(s.auth.slice(before), [`Bearer ${tokenA}`, `Bearer ${tokenB}`]);
    } finally {
      await client.close();
    }
    const events = audit();
    const injections = events.filter((e) => e.event === 'mcp.tool_injection') as {
      calls: { tool: string }[];
      injection: { secret: string };
    }[];
    assert.deepEqual(
      injections.map((e) => `${e.calls.map((c) => c.tool).join('+')} ${e.injection.secret}`),
      ['fetch_a TOKEN_A', 'fetch_b TOKEN_B'],
    );
    const violations = events.filter((e) => e.event === 'mcp.tool_violation') as {
      calls: { tool: string }[];
      violation: { rule: string; secret: string };
    }[];
    assert.deepEqual(
      violations.map((e) => `${e.calls.map((c) => c.tool).join('+')} ${e.violation.rule} ${e.violation.secret}`),
      ['fetch_a secret-out-of-call TOKEN_B'],
    );
    // Nothing the audit holds is a real value.
    const raw = fs.readFileSync(auditFile, 'utf8');
    assert.ok(!raw.includes(tokenA) && !raw.includes(tokenB));
  });
});

describe('per-tool grants in the policy', () => {
  test('a tool grant names defined secrets only, and needs the egress proxy for hosts', () => {
    const issues = validatePolicy({
      command: ['x'],
      network: 'none',
      mcp: { tools: { post: { network: ['slack.com'], secrets: ['SLACK_TOKEN'] } } },
    }).map((i) => i.message);
    assert.deepEqual(issues, [
      '/mcp/tools/post/secrets/0: secret `SLACK_TOKEN` is not defined in /secrets (a tool grant names secrets defined there)',
      '/mcp/tools/post/network: per-tool hosts are allowed by the egress proxy, which needs network { allow: [...] }; found network "none"',
    ]);
  });

  test('a misspelt grant key is named, with the key it may be', () => {
    const issues = validatePolicy({ command: ['x'], mcp: { tools: { post: { netwrok: ['slack.com'] } } } }).map((i) => i.message);
    assert.deepEqual(issues, ['unknown key `/mcp/tools/post/netwrok`; did you mean `network`?']);
  });
});
