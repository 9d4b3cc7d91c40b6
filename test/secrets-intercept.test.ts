// SecretInterceptor end to end: real clients (curl, python3 urllib, node https/http2/fetch) through
// a stand-in proxy, real TLS both ways, a real upstream on 127.0.0.1 with its own test CA.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import * as tls from 'node:tls';
import pino from 'pino';
import { RunCa } from '../lib/secrets/ca';
import { SecretInterceptor, type SecretViolation, type SecretInterceptor as SI } from '../lib/secrets/intercept';
import { secretForms } from '../lib/secrets/placeholder';
import { resolveSecrets } from '../lib/secrets/spec';
import {
  type ProxyStandIn,
  startConnectProxy,
  startTransparent,
  startUpstream,
  tlsThroughProxy,
  type Upstream,
} from './helpers/secrets-harness';
import { needs } from './helpers/tools';

const TOKEN = 'ghp_REALtokenVALUE0123456789abcdef';
const BRAVE = 'brave-REAL-key-42';
const QKEY = 'qk-REAL-query-key';
const BASIC_PW = 'REAL-basic-password';
const OTHER = 'other-REAL-value';
const ALL_VALUES = [TOKEN, BRAVE, QKEY, BASIC_PW, OTHER];
const HOST = 'api.test.local';

let up: Upstream;
let h1up: Upstream;
let badUp: Upstream;
let closedPort: number;
let ca: RunCa;
let ic: SI;
let proxy: ProxyStandIn;
let dir: string;
let caFile: string;
const logLines: string[] = [];
const violations: SecretViolation[] = [];
let ph: Record<string, string>;
let origin: string;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
  });
}

/** One HTTP/1.1 request through the CONNECT stand-in; body chunks are written with a pause between. */
async function h1(
  path: string,
  opts: { method?: string; headers?: Record<string, string>; chunks?: string[]; host?: string; port?: number } = {},
): Promise<Reply> {
  const host = opts.host ?? HOST;
  const port = opts.port ?? up.port;
  const socket = await tlsThroughProxy(proxy.port, host, port, ca.certPem);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host, port, path, method: opts.method ?? 'GET', headers: opts.headers, createConnection: () => socket },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    const chunks = opts.chunks ?? [];
    (async () => {
      for (const [i, c] of chunks.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, 30));
        req.write(c);
      }
      req.end();
    })();
  });
}

/** One HTTP/2 request through the CONNECT stand-in with node's http2 client. */
async function h2(path: string, headers: Record<string, string>, opts: { host?: string; port?: number } = {}): Promise<Reply> {
  const host = opts.host ?? HOST;
  const port = opts.port ?? up.port;
  const socket = await tlsThroughProxy(proxy.port, host, port, ca.certPem, ['h2']);
  assert.equal(socket.alpnProtocol, 'h2');
  const session = http2.connect(`https://${host}:${port}`, { createConnection: () => socket });
  try {
    return await new Promise<Reply>((resolve, reject) => {
      const stream = session.request({ ':path': path, ...headers });
      let status = 0;
      let rh: Record<string, string | string[] | undefined> = {};
      let body = '';
      stream.setEncoding('utf8');
      stream.on('response', (h) => {
        status = Number(h[':status']);
        rh = h as typeof rh;
      });
      stream.on('data', (c) => {
        body += c;
      });
      stream.on('end', () => resolve({ status, headers: rh, body }));
      stream.on('error', reject);
      stream.end();
    });
  } finally {
    session.close();
  }
}

function lastSeen(u = up) {
  return u.seen[u.seen.length - 1];
}

function assertNoLeakToClient(r: Reply | string): void {
  const text = typeof r === 'string' ? r : JSON.stringify(r.headers) + r.body;
  for (const v of ALL_VALUES) assert.ok(!text.includes(v), `client saw a real value: ${text}`);
}

function assertRefused(r: Reply, rule: string, message: string): void {
  assert.equal(r.status, 403);
  assert.equal(r.headers['x-stockade-error'], rule);
  const body = JSON.parse(r.body);
  assert.equal(body.rule, rule);
  assert.equal(body.message, message);
  assertNoLeakToClient(r);
}

before(async () => {
  up = await startUpstream([HOST]);
  h1up = await startUpstream(['h1.test.local'], { h1Only: true });
  badUp = await startUpstream(['bad.test.local']);
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));

  const host = `${HOST}:${up.port}`;
  const secrets = resolveSecrets(
    [
      { name: 'TOKEN', hosts: [host, `h1.test.local:${h1up.port}`, `bad.test.local:${badUp.port}`, `down.test.local:${closedPort}`] },
      { name: 'BRAVE', hosts: [host], inject: { header: 'X-Subscription-Token', format: '{secret}' } },
      { name: 'QKEY', hosts: [host], inject: { query: 'key' } },
      { name: 'BASIC_PW', source: { env: 'PW_ON_HOST' }, hosts: [host], inject: { basic: { username: 'alice' } } },
      { name: 'OTHER', hosts: ['other.test.local'] },
    ],
    { TOKEN, BRAVE, QKEY, PW_ON_HOST: BASIC_PW, OTHER },
  );
  ca = await RunCa.create();
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  ic = new SecretInterceptor({ secrets, ca, upstreamCaPem: [up.caPem, h1up.caPem], logger: pino({ level: 'info' }, sink) });
  ic.on('violation', (v: SecretViolation) => violations.push(v));
  ph = { ...ic.placeholders };
  proxy = await startConnectProxy(ic);
  dir = mkdtempSync(join(tmpdir(), 'stockade-secrets-'));
  caFile = join(dir, 'run-ca.pem');
  writeFileSync(caFile, ca.certPem);
  origin = `https://${HOST}:${up.port}`;
});

after(async () => {
  await ic.close();
  await proxy.close();
  await Promise.all([up.close(), h1up.close(), badUp.close()]);
  // The upstreams never saw a placeholder: every refusal happened before the bytes went out.
  for (const u of [up, h1up, badUp]) for (const w of u.wire) assert.ok(!w.includes('stockade-ph-'), `upstream saw a placeholder: ${w}`);
  // The audit log never holds a real value.
  for (const line of logLines) for (const v of ALL_VALUES) assert.ok(!line.includes(v), `log line leaks a value: ${line}`);
});

for (const version of ['--http1.1', '--http2']) {
  test(`curl ${version}: Authorization injected, response echo masked`, { skip: needs('curl') }, async () => {
    const { stdout } = await run(
      'curl',
      [
        '-sS',
        version,
        '--max-time',
        '10',
        '-D',
        '-',
        '--proxy',
        `http://127.0.0.1:${proxy.port}`,
        '--cacert',
        caFile,
        '-H',
        `Authorization: Bearer ${ph.TOKEN}`,
        `${origin}/echo-auth`,
      ],
      { PATH: process.env.PATH },
    );
    const seen = lastSeen();
    assert.equal(seen.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(seen.httpVersion, version === '--http2' ? '2.0' : '1.1');
    assert.match(stdout, version === '--http2' ? /^HTTP\/2 200/m : /^HTTP\/1\.1 200/m);
    assert.match(stdout, /x-echo-auth: Bearer \*{34}/);
    assertNoLeakToClient(stdout);
  });
}

test('node https: custom header rebuilt from the trusted format', async () => {
  const r = await h1('/', { headers: { 'X-Subscription-Token': `prefix ${ph.BRAVE} suffix`, 'X-Other': 'kept' } });
  assert.equal(r.status, 200);
  assert.equal(lastSeen().headers['x-subscription-token'], BRAVE);
  assert.equal(lastSeen().headers['x-other'], 'kept');
});

test('node https: the Authorization header is rebuilt whatever the client wrapped around the placeholder', async () => {
  const r = await h1('/', { headers: { Authorization: `token ${ph.TOKEN} extra` } });
  assert.equal(r.status, 200);
  assert.equal(lastSeen().headers.authorization, `Bearer ${TOKEN}`);
});

test('node https: query-parameter secret injected', async () => {
  const r = await h1(`/search?q=a%20b&key=${ph.QKEY}&n=1`);
  assert.equal(r.status, 200);
  assert.equal(lastSeen().url, `/search?q=a%20b&key=${QKEY}&n=1`);
});

test('node https: basic auth with the placeholder as password is rebuilt with the real one', async () => {
  const r = await h1('/', { headers: { Authorization: `Basic ${Buffer.from(`mallory:${ph.BASIC_PW}`).toString('base64')}` } });
  assert.equal(r.status, 200);
  assert.equal(lastSeen().headers.authorization, `Basic ${Buffer.from(`alice:${BASIC_PW}`).toString('base64')}`);
});

test('an upstream echoing the secret gzip-encoded, in a Location, as Basic base64 or JSON-escaped: masked in every form', async () => {
  for (const headers of [
    { authorization: `Bearer ${ph.TOKEN}`, 'accept-encoding': 'gzip, br', 'x-subscription-token': ph.BRAVE },
    { authorization: `Basic ${Buffer.from(`alice:${ph.BASIC_PW}`).toString('base64')}`, 'accept-encoding': 'gzip' },
  ] as Record<string, string>[]) {
    const r = await h1(`/echo-all?key=${ph.QKEY}`, { headers });
    assert.equal(r.status, 302);
    // The proxy asked for identity and decoded the gzip the upstream sent anyway before scanning.
    assert.equal(r.headers['content-encoding'], undefined);
    const echo = JSON.parse(r.body) as { auth: string; basic: string; acceptEncoding: string; url: string };
    assert.equal(echo.acceptEncoding, 'identity');
    assert.match(echo.auth, /^(Bearer|Basic) \*+$/);
    if (echo.basic) assert.equal(echo.basic, `alice:${'*'.repeat(BASIC_PW.length)}`);
    assert.ok(echo.url.includes(`key=${'*'.repeat(QKEY.length)}`));
    assert.ok(String(r.headers['x-echo']).endsWith('*'.repeat(20)));
    assertNoLeakToClient(r);
    const location = decodeURIComponent(String(r.headers.location));
    for (const v of ALL_VALUES) assert.ok(!location.includes(v), `Location leaks: ${location}`);
  }
});

test('secretForms: every form the proxy itself produces', () => {
  const forms = secretForms('a b/c"\u00e9', 'u');
  for (const f of [
    'a b/c"\u00e9',
    'a%20b%2Fc%22%C3%A9',
    'a%20b%2fc%22%c3%a9',
    'a+b%2Fc%22%C3%A9',
    'a b/c\\"\u00e9',
    'a b\\/c\\"\u00e9',
    'a b/c\\"\\u00e9',
  ]) {
    assert.ok(forms.includes(f), `missing ${f}`);
  }
  assert.ok(forms.includes(Buffer.from('u:a b/c"\u00e9').toString('base64')));
  for (let i = 1; i < forms.length; i++) assert.ok(forms[i - 1].length >= forms[i].length);
});

test('node http2 client: injected over HTTP/2 end to end, echo masked', async () => {
  const r = await h2('/echo-auth', { authorization: `Bearer ${ph.TOKEN}` });
  assert.equal(r.status, 200);
  assert.equal(lastSeen().httpVersion, '2.0');
  assert.equal(lastSeen().headers.authorization, `Bearer ${TOKEN}`);
  assert.equal(r.headers['x-echo-auth'], `Bearer ${'*'.repeat(TOKEN.length)}`);
  assertNoLeakToClient(r);
});

test('node http2 client: response trailers (gRPC style) are relayed', async () => {
  const socket = await tlsThroughProxy(proxy.port, HOST, up.port, ca.certPem, ['h2']);
  const session = http2.connect(origin, { createConnection: () => socket });
  const got = await new Promise<{ body: string; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
    const stream = session.request({
      ':path': '/trailers',
      ':method': 'POST',
      'content-type': 'application/grpc',
      te: 'trailers',
      authorization: `Bearer ${ph.TOKEN}`,
    });
    let body = '';
    let trailers: http2.IncomingHttpHeaders = {};
    stream.setEncoding('utf8');
    stream.on('data', (c) => {
      body += c;
    });
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('end', () => resolve({ body, trailers }));
    stream.on('error', reject);
    stream.end('request-message');
  });
  session.close();
  assert.equal(got.body, 'payload');
  assert.equal(got.trailers['grpc-status'], '0');
  assert.equal(got.trailers['grpc-message'], 'fine');
  assert.equal(lastSeen().headers.te, 'trailers');
  assert.equal(lastSeen().body, 'request-message');
  assert.equal(lastSeen().headers.authorization, `Bearer ${TOKEN}`);
});

test('node http2 client to an HTTP/1.1-only upstream falls back to HTTP/1.1 upstream', async () => {
  const r = await h2('/', { authorization: `Bearer ${ph.TOKEN}` }, { host: 'h1.test.local', port: h1up.port });
  assert.equal(r.status, 200);
  assert.equal(lastSeen(h1up).httpVersion, '1.1');
  assert.equal(lastSeen(h1up).headers.authorization, `Bearer ${TOKEN}`);
});

test('node fetch (child process, transparent path, NODE_EXTRA_CA_CERTS)', async () => {
  const transparent = await startTransparent(ic, { host: HOST, port: up.port });
  try {
    // The sandbox's netns sends every connect() to the proxy's listener; here a preload does the
    // same for the child's TLS connections to HOST, which still sends SNI and Host for HOST.
    const preload = join(dir, 'route.js');
    writeFileSync(
      preload,
      `const tls = require('tls'); const orig = tls.connect;
tls.connect = function (...a) {
  if (a[0] && typeof a[0] === 'object' && a[0].host === ${JSON.stringify(HOST)}) a[0] = { ...a[0], host: '127.0.0.1', port: ${transparent.port} };
  return orig.apply(this, a);
};`,
    );
    const script = `fetch(${JSON.stringify(`${origin}/echo-auth`)}, { headers: { authorization: 'Bearer ' + process.env.TOKEN } })
  .then(async (r) => console.log(JSON.stringify({ status: r.status, auth: r.headers.get('x-echo-auth'), body: await r.text() })))
  .catch((e) => { console.error(e.cause ?? e); process.exit(1); });`;
    const { stdout } = await run(process.execPath, ['-r', preload, '-e', script], {
      PATH: process.env.PATH,
      NODE_EXTRA_CA_CERTS: caFile,
      TOKEN: ph.TOKEN,
    });
    const out = JSON.parse(stdout);
    assert.equal(out.status, 200);
    assert.equal(lastSeen().headers.authorization, `Bearer ${TOKEN}`);
    assertNoLeakToClient(stdout);
  } finally {
    await transparent.close();
  }
});

test('python3 urllib through HTTPS_PROXY with SSL_CERT_FILE', { skip: needs('python3') }, async () => {
  const script = `
import os, json, urllib.request
req = urllib.request.Request(os.environ['URL'], headers={'X-Subscription-Token': os.environ['BRAVE']})
with urllib.request.urlopen(req, timeout=10) as r:
    print(json.dumps({'status': r.status, 'headers': dict(r.headers), 'body': r.read().decode()}))
`;
  const { stdout } = await run('python3', ['-c', script], {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`,
    SSL_CERT_FILE: caFile,
    URL: `${origin}/`,
    BRAVE: ph.BRAVE,
  });
  assert.equal(JSON.parse(stdout).status, 200);
  assert.equal(lastSeen().headers['x-subscription-token'], BRAVE);
  assertNoLeakToClient(stdout);
});

test('WebSocket upgrade over HTTP/1.1 gets the header injected and carries data both ways', async () => {
  const socket = await tlsThroughProxy(proxy.port, HOST, up.port, ca.certPem);
  const echoed = await new Promise<string>((resolve, reject) => {
    const req = https.request({
      host: HOST,
      port: up.port,
      path: '/ws',
      createConnection: () => socket,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        Authorization: `Bearer ${ph.TOKEN}`,
      },
    });
    req.on('upgrade', (res, s) => {
      assert.equal(res.statusCode, 101);
      assert.equal(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
      s.once('data', (d: Buffer) => {
        resolve(d.toString());
        s.destroy();
      });
      s.write('ping over the upgraded connection');
    });
    req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
  assert.equal(echoed, 'ping over the upgraded connection');
  const seen = lastSeen();
  assert.equal(seen.url, '/ws');
  assert.equal(seen.headers.authorization, `Bearer ${TOKEN}`);
});

test('a redirect to another host is passed through untouched, with no secret in it', async () => {
  const r = await h1('/redirect', { headers: { Authorization: `Bearer ${ph.TOKEN}` } });
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, 'https://elsewhere.test.local/landing');
  assertNoLeakToClient(r);
  // Following it is the proxy's business: elsewhere.test.local carries no secret, so it is not ours.
  assert.equal(ic.wants('elsewhere.test.local', 443), false);
});

test('hostile: placeholder in a different header is refused', async () => {
  const before = up.seen.length;
  const r = await h1('/', { headers: { 'X-Debug': `leak ${ph.TOKEN}` } });
  assertRefused(
    r,
    'placeholder-in-header',
    'stockade: the placeholder of secret TOKEN appears in header x-debug; it is only injected into header authorization',
  );
  assert.equal(up.seen.length, before);
  assert.equal(violations.at(-1)?.rule, 'placeholder-in-header');
});

test('hostile: placeholder in the body is refused', async () => {
  const r = await h1('/upload', { method: 'POST', headers: { 'content-type': 'application/json' }, chunks: [`{"token":"${ph.TOKEN}"}`] });
  assertRefused(
    r,
    'placeholder-in-body',
    'stockade: the placeholder of secret TOKEN appears in the request body; secrets are only injected into header authorization',
  );
});

test('hostile: placeholder split across body chunks is refused', async () => {
  const p = ph.TOKEN;
  const r = await h1('/upload', { method: 'POST', chunks: ['{"a":"', p.slice(0, 15), p.slice(15, 30), `${p.slice(30)}"}`] });
  assertRefused(
    r,
    'placeholder-in-body',
    'stockade: the placeholder of secret TOKEN appears in the request body; secrets are only injected into header authorization',
  );
});

test('hostile: placeholder in an HTTP/2 request body is refused', async () => {
  const socket = await tlsThroughProxy(proxy.port, HOST, up.port, ca.certPem, ['h2']);
  const session = http2.connect(origin, { createConnection: () => socket });
  const r = await new Promise<Reply>((resolve, reject) => {
    const stream = session.request({ ':path': '/upload', ':method': 'POST' });
    let status = 0;
    let body = '';
    let headers = {};
    stream.on('response', (h) => {
      status = Number(h[':status']);
      headers = h;
    });
    stream.on('data', (c) => {
      body += c;
    });
    stream.on('end', () => resolve({ status, headers, body }));
    stream.on('error', reject);
    stream.write(`part one ${ph.QKEY.slice(0, 20)}`);
    setTimeout(() => stream.end(`${ph.QKEY.slice(20)} end`), 30);
  });
  session.close();
  assertRefused(
    r,
    'placeholder-in-body',
    'stockade: the placeholder of secret QKEY appears in the request body; secrets are only injected into query parameter key',
  );
});

test('hostile: header secret placeholder in the query string is refused', async () => {
  const r = await h1(`/search?q=${ph.TOKEN}`);
  assertRefused(
    r,
    'placeholder-in-url',
    'stockade: the placeholder of secret TOKEN appears in the URL query; it is only injected into a header',
  );
});

test('hostile: query secret in the wrong parameter is refused', async () => {
  const r = await h1(`/search?callback=${ph.QKEY}`);
  assertRefused(
    r,
    'placeholder-in-url',
    'stockade: the placeholder of secret QKEY appears in the URL query; it is only injected into query parameter key',
  );
});

test('hostile: placeholder in the URL path is refused', async () => {
  const r = await h1(`/log/${ph.TOKEN}`);
  assertRefused(r, 'placeholder-in-url', 'stockade: the placeholder of secret TOKEN appears in the URL path');
});

test("hostile: another host's secret sent here is refused", async () => {
  const r = await h1('/', { headers: { Authorization: `Bearer ${ph.OTHER}` } });
  assertRefused(
    r,
    'placeholder-wrong-host',
    `stockade: the placeholder of secret OTHER was sent to ${HOST}, which it is not for (in header authorization)`,
  );
});

test('hostile: Host header disagreeing with the connection is refused', async () => {
  const r = await h1('/', { headers: { Host: 'evil.test.local', Authorization: `Bearer ${ph.TOKEN}` } });
  assertRefused(
    r,
    'host-mismatch',
    `stockade: request for 'evil.test.local' on a connection to ${HOST}:${up.port}; host and connection must agree`,
  );
});

test('hostile: an absolute-form request target for another host is refused', async () => {
  const socket = await tlsThroughProxy(proxy.port, HOST, up.port, ca.certPem);
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (d) => {
      text += d;
    });
    socket.on('close', () => resolve(text));
    socket.write(`GET https://evil.test.local/steal HTTP/1.1\r\nHost: ${HOST}:${up.port}\r\nAuthorization: Bearer ${ph.TOKEN}\r\n\r\n`);
  });
  assert.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/);
  const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
  assert.equal(body.rule, 'host-mismatch');
  assert.equal(
    body.message,
    `stockade: request for 'evil.test.local' on a connection to ${HOST}:${up.port}; host and connection must agree`,
  );
});

test('hostile: TLS server name disagreeing with the connection is refused', async () => {
  const { connectTunnel } = await import('./helpers/secrets-harness');
  const raw = await connectTunnel(proxy.port, HOST, up.port);
  const err = await new Promise<Error>((resolve) => {
    const s = tls.connect({ socket: raw, servername: 'evil.test.local', ca: ca.certPem }, () => resolve(new Error('handshake succeeded')));
    s.on('error', resolve);
  });
  assert.match(err.message, /alert|handshake|disconnected before secure TLS|ECONNRESET/i);
  assert.equal(violations.at(-1)?.rule, 'sni-mismatch');
});

test('upstream with an untrusted certificate: 502 naming the verification failure', async () => {
  const r = await h1('/', { host: 'bad.test.local', port: badUp.port, headers: { Authorization: `Bearer ${ph.TOKEN}` } });
  assert.equal(r.status, 502);
  const body = JSON.parse(r.body);
  assert.equal(body.error, 'upstream-tls-verification-failed');
  assert.equal(
    body.message,
    `stockade: upstream certificate verification failed for bad.test.local:${badUp.port}: SELF_SIGNED_CERT_IN_CHAIN: self-signed certificate in certificate chain`,
  );
  assert.equal(badUp.seen.length, 0);
  assertNoLeakToClient(r);
});

test('upstream refusing connections: 502 naming the error, over HTTP/2 too', async () => {
  const r = await h1('/', { host: 'down.test.local', port: closedPort, headers: { Authorization: `Bearer ${ph.TOKEN}` } });
  assert.equal(r.status, 502);
  assert.match(
    JSON.parse(r.body).message,
    new RegExp(
      `^stockade: upstream down\\.test\\.local:${closedPort} \\(127\\.0\\.0\\.1\\) failed: ECONNREFUSED: connect ECONNREFUSED 127\\.0\\.0\\.1:${closedPort}$`,
    ),
  );
  const r2 = await h2('/', { authorization: `Bearer ${ph.TOKEN}` }, { host: 'down.test.local', port: closedPort });
  assert.equal(r2.status, 502);
  assert.equal(JSON.parse(r2.body).error, 'upstream-error');
});

test('audit: injections are logged by name and host, never by value', () => {
  const events = logLines.map((l) => JSON.parse(l));
  const injected = events.filter((e) => e.event === 'secret-injected');
  assert.ok(injected.some((e) => e.secret === 'TOKEN' && e.host === HOST));
  assert.ok(injected.some((e) => e.secret === 'QKEY' && e.host === HOST));
  assert.ok(events.some((e) => e.event === 'secret-violation' && e.rule === 'placeholder-in-body'));
  assert.equal(ic.scrub(`x ${TOKEN} y`), 'x [redacted TOKEN] y');
  assert.ok(ic.containsPlaceholder(Buffer.from(`GET /?a=${ph.OTHER} HTTP/1.1`)));
  assert.deepEqual(ic.placeholderNames(`${ph.BRAVE}`), ['BRAVE']);
});

test('close() ends open intercepted connections and refuses new ones', async () => {
  const local = new SecretInterceptor({
    secrets: resolveSecrets([{ name: 'T', hosts: [`${HOST}:${up.port}`] }], { T: 'v' }),
    ca,
    upstreamCaPem: [up.caPem],
  });
  const p = await startConnectProxy(local);
  try {
    const s = await tlsThroughProxy(p.port, HOST, up.port, ca.certPem);
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    await local.close();
    await closed;
    await assert.rejects(tlsThroughProxy(p.port, HOST, up.port, ca.certPem));
  } finally {
    await p.close();
  }
});
