// The interceptor's own HTTP/1.1 upstream client (lib/secrets/h1-upstream.ts, h1-response.ts):
// the response parser alone on hostile and split input, then end to end through the interceptor
// against a raw TLS upstream that writes exactly the bytes each test gives it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type * as net from 'node:net';
import { after, before, test } from 'node:test';
import * as tls from 'node:tls';
import { RunCa } from '../lib/secrets/ca';
import { ResponseError, ResponseParser } from '../lib/secrets/h1-response';
import { SecretInterceptor } from '../lib/secrets/intercept';
import { resolveSecrets } from '../lib/secrets/spec';
import { type ProxyStandIn, startConnectProxy, tlsThroughProxy } from './helpers/secrets-harness';

interface Parsed {
  status?: number;
  pairs?: [string, string][];
  body: string;
  ended?: boolean;
  reusable?: boolean;
}

function parse(method: string, pieces: (string | Buffer)[], eof = false): Parsed {
  const out: Parsed = { body: '' };
  const p = new ResponseParser(method, {
    head: (status, pairs) => Object.assign(out, { status, pairs }),
    body: (c) => {
      out.body += c.toString('latin1');
    },
    end: (reusable) => Object.assign(out, { ended: true, reusable }),
  });
  for (const piece of pieces) p.push(Buffer.isBuffer(piece) ? piece : Buffer.from(piece, 'latin1'));
  if (eof) p.eof();
  return out;
}

/** Every way of cutting `text` in two, and one byte at a time: the parser must not care. */
function splits(text: string): string[][] {
  const out = [[text], text.split('')];
  for (let i = 1; i < text.length; i++) out.push([text.slice(0, i), text.slice(i)]);
  return out;
}

test('response parser: content-length, chunked with extensions and trailers, close-delimited, split anywhere', () => {
  const cases: [string, string, boolean, Partial<Parsed>][] = [
    ['GET', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello', false, { status: 200, body: 'hello', reusable: true }],
    [
      'GET',
      'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\n',
      false,
      { status: 201, body: 'hello world', reusable: true },
    ],
    ['GET', 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok', false, { body: 'ok', reusable: false }],
    ['GET', 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok', false, { body: 'ok', reusable: false }],
    [
      'GET',
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
      false,
      { status: 204, body: '', reusable: true },
    ],
    ['HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', false, { status: 200, body: '', reusable: true }],
    ['GET', 'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n', false, { status: 304, body: '', reusable: true }],
    ['GET', 'HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc', false, { body: 'abc', reusable: true }],
    ['GET', 'HTTP/1.1 200\r\n\r\nuntil the end', true, { status: 200, body: 'until the end', reusable: false }],
  ];
  for (const [method, text, eof, want] of cases) {
    for (const pieces of splits(text)) {
      const got = parse(method, pieces, eof);
      assert.equal(got.ended, true, `${JSON.stringify(text)} in ${pieces.length} pieces did not end`);
      for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof Parsed], v, `${k} of ${JSON.stringify(text)}`);
    }
  }
  assert.deepEqual(parse('GET', ['HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A:  b \r\n\r\n']).pairs, [
    ['Content-Length', '0'],
    ['X-A', 'b'],
  ]);
  // Bytes past the end of the response: the connection is not used again.
  assert.equal(parse('GET', ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab']).reusable, false);
});

test('response parser: what could be read two ways is refused', () => {
  const big = 'x'.repeat(20_000);
  const refused: [string, RegExp][] = [
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n', /both transfer-encoding and content-length/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', /transfer-encoding gzip, chunked not supported/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', /not supported/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', /invalid content-length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /invalid content-length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n', /invalid content-length/],
    ['HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n', /malformed header field/],
    ['HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n', /malformed header field/],
    ['HTTP/1.1 200 OK\r\nno colon\r\n\r\n', /malformed header field/],
    ['HTTP/1.1 200 OK\r\nX-A: a\nb\r\n\r\n', /control character in header X-A/],
    ['HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n', /control character/],
    ['HTTP/2 200\r\n\r\n', /malformed status line/],
    ['\r\nHTTP/1.1 200 OK\r\n\r\n', /malformed status line/],
    ['HTTP/1.1 200 OK\nContent-Length: 0\n\n\r\n\r\n', /malformed status line/],
    ['HTTP/1.1 101 Switching Protocols\r\n\r\n', /unexpected 101/],
    [`HTTP/1.1 200 OK\r\nX-Big: ${big}\r\n\r\n`, /response head too large/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /malformed chunk size/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n', /malformed chunk size/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n', /chunk data longer than its size/],
    [`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;${big}`, /chunk size line too long/],
  ];
  for (const [text, message] of refused) {
    for (const pieces of [[text], text.split('')]) {
      assert.throws(
        () => parse('GET', pieces),
        (err: Error) => err instanceof ResponseError && message.test(err.message),
        JSON.stringify(text.slice(0, 80)),
      );
    }
  }
  // A head that never ends is refused once it passes the bound, not held without end.
  assert.throws(() => parse('GET', ['HTTP/1.1 200 OK\r\n', ...Array.from({ length: 40 }, () => `X: ${'y'.repeat(500)}\r\n`)]), /too large/);
  // Cut short: an error, not a truncated body passed off as complete.
  assert.throws(() => parse('GET', ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc'], true), /closed mid-response/);
  assert.throws(() => parse('GET', ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab'], true), /closed mid-response/);
  assert.throws(() => parse('GET', ['HTTP/1.1 2'], true), /closed before a response/);
});

// ---- end to end ------------------------------------------------------------------------------

const HOST = 'raw.test.local';
const TOKEN = 'raw-REAL-token-value';
let upCa: RunCa;
let ca: RunCa;
let raw: tls.Server;
let rawPort: number;
let ic: SecretInterceptor;
let proxy: ProxyStandIn;
/** What the raw upstream answers next, given the request head it read and its body. */
let answer: (head: string, body: Buffer) => string | Buffer = () => 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';
/** Every request the raw upstream read, and on which of its connections. */
const requests: { conn: number; head: string; body: string }[] = [];
let conns = 0;

/** A minimal HTTP/1.1 server: reads heads and bodies (content-length or chunked) as sent. */
function serveRaw(socket: tls.TLSSocket): void {
  const conn = ++conns;
  let buf = Buffer.alloc(0);
  socket.on('error', () => {});
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.toString('latin1', 0, end);
      let rest = buf.subarray(end + 4);
      let body = Buffer.alloc(0);
      const cl = /\r\ncontent-length: (\d+)/i.exec(head);
      if (cl) {
        if (rest.length < Number(cl[1])) return;
        body = rest.subarray(0, Number(cl[1]));
        rest = rest.subarray(Number(cl[1]));
      } else if (/\r\ntransfer-encoding: chunked/i.test(head)) {
        const parts: Buffer[] = [];
        let at = 0;
        for (;;) {
          const eol = rest.indexOf('\r\n', at);
          if (eol < 0) return;
          const size = Number.parseInt(rest.toString('latin1', at, eol), 16);
          if (size === 0) {
            if (rest.length < eol + 4) return;
            rest = rest.subarray(eol + 4);
            break;
          }
          if (rest.length < eol + 2 + size + 2) return;
          parts.push(rest.subarray(eol + 2, eol + 2 + size));
          at = eol + 2 + size + 2;
        }
        body = Buffer.concat(parts);
      }
      buf = rest;
      requests.push({ conn, head, body: body.toString() });
      socket.write(answer(head, body));
    }
  });
}

before(async () => {
  upCa = await RunCa.create({ commonName: 'raw upstream CA' });
  const leaf = await upCa.leaf(HOST);
  raw = tls.createServer({ key: leaf.keyPem, cert: `${leaf.certPem}\n${upCa.certPem}` }, serveRaw);
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  rawPort = (raw.address() as net.AddressInfo).port;
  const secrets = resolveSecrets([{ name: 'TOKEN', hosts: [`${HOST}:${rawPort}`] }], { TOKEN });
  ca = await RunCa.create();
  ic = new SecretInterceptor({ secrets, ca, upstreamCaPem: [upCa.certPem] });
  proxy = await startConnectProxy(ic);
});

after(async () => {
  await ic.close();
  await proxy.close();
  raw.close();
  for (const r of requests)
    assert.ok(!r.head.includes('stockade-ph-') && !r.body.includes('stockade-ph-'), `upstream saw a placeholder: ${r.head}`);
});

/**
 * Writes requests (latin1) on one intercepted connection, each once the answers before it are in
 * (pipelined requests would each take an upstream connection of their own); reads until `until`.
 */
async function exchange(texts: string | string[], until: (got: string) => boolean): Promise<string> {
  const s = await tlsThroughProxy(proxy.port, HOST, rawPort, ca.certPem);
  let got = '';
  s.on('data', (d: Buffer) => {
    got += d.toString('latin1');
  });
  const deadline = Date.now() + 10_000;
  const all = typeof texts === 'string' ? [texts] : texts;
  for (const [i, text] of all.entries()) {
    while (count(got, ' 200 OK\r\n') < i && !s.destroyed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    s.write(Buffer.from(text.replaceAll('PH', ic.placeholders.TOKEN), 'latin1'));
  }
  while (!until(got) && !s.destroyed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  s.destroy();
  return got;
}

const authority = () => `${HOST}:${rawPort}`;
const count = (text: string, what: string) => text.split(what).length - 1;

test('end to end: keep-alive requests share one upstream connection; bodies keep their length or are chunked', async () => {
  requests.length = 0;
  answer = (head, body) => {
    const text = `${head.split('\r\n')[0]} ${body.length}`;
    return `HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\n\r\n${text}`;
  };
  const a = authority();
  const got = await exchange(
    [
      `GET /one HTTP/1.1\r\nHost: ${a}\r\nAuthorization: Bearer PH\r\n\r\n`,
      `POST /two HTTP/1.1\r\nHost: ${a}\r\nContent-Length: 5\r\n\r\nhello`,
      `POST /three HTTP/1.1\r\nHost: ${a}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n`,
    ],
    (g) => count(g, 'HTTP/1.1 200') === 3,
  );
  assert.match(got, /GET \/one HTTP\/1\.1 0/);
  assert.match(got, /POST \/two HTTP\/1\.1 5/);
  assert.match(got, /POST \/three HTTP\/1\.1 5/);
  assert.equal(requests.length, 3);
  assert.equal(new Set(requests.map((r) => r.conn)).size, 1, 'one upstream connection for all three');
  assert.match(requests[0].head, new RegExp(`\r\nAuthorization: Bearer ${TOKEN}\r\n`));
  assert.match(requests[1].head, /\r\ncontent-length: 5\r\n/);
  assert.doesNotMatch(requests[1].head, /transfer-encoding/i);
  assert.match(requests[2].head, /\r\ntransfer-encoding: chunked\r\n/);
  assert.equal(requests[2].body, 'abcde');
  assert.ok(!got.includes(TOKEN));
});

test('end to end: a chunked response echoing the secret across chunk boundaries is masked', async () => {
  answer = () => {
    const body = `{"echo":"${TOKEN}"}`;
    const cut = 10;
    const pieces = [body.slice(0, cut), body.slice(cut, cut + 3), body.slice(cut + 3)];
    return `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Echo: ${TOKEN}\r\n\r\n${pieces.map((p) => `${p.length.toString(16)}\r\n${p}\r\n`).join('')}0\r\n\r\n`;
  };
  const got = await exchange(`GET / HTTP/1.1\r\nHost: ${authority()}\r\nAuthorization: Bearer PH\r\n\r\n`, (g) => g.includes('"}'));
  assert.ok(!got.includes(TOKEN), got);
  // Relayed chunked, in the pieces the redactor released: the mask is whole in one of them.
  assert.ok(got.includes(`${'*'.repeat(TOKEN.length)}"}`), got);
});

test('end to end: a response the parser refuses is a 502 upstream-malformed, and its connection is not reused', async () => {
  requests.length = 0;
  for (const bad of [
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n',
  ]) {
    answer = () => bad;
    const got = await exchange(`GET / HTTP/1.1\r\nHost: ${authority()}\r\n\r\n`, (g) => g.includes('\r\n\r\n') && g.includes('}'));
    assert.match(got, /^HTTP\/1\.1 502 /);
    assert.match(got, /x-stockade-error: upstream-malformed/);
    assert.match(got, /sent a response the proxy cannot read/);
  }
  assert.equal(new Set(requests.map((r) => r.conn)).size, requests.length, 'a fresh upstream connection after each refusal');
});

test('end to end: an upstream that closes mid-response fails the request; the next one gets a fresh connection', async () => {
  requests.length = 0;
  let first = true;
  raw.removeAllListeners('secureConnection');
  raw.on('secureConnection', (s: tls.TLSSocket) => {
    if (!first) return serveRaw(s);
    first = false;
    s.on('error', () => {});
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
  });
  answer = () => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
  const cut = await exchange(`GET / HTTP/1.1\r\nHost: ${authority()}\r\n\r\n`, (g) => g.includes('abc'));
  // The head and the bytes that came were relayed; then the connection to the sandbox is cut.
  assert.match(cut, /^HTTP\/1\.1 200 /);
  assert.ok(!cut.includes('HTTP/1.1 502'));
  const next = await exchange(`GET / HTTP/1.1\r\nHost: ${authority()}\r\n\r\n`, (g) => g.endsWith('ok'));
  assert.match(next, /\r\n\r\nok$/);
});

test('end to end: obs-text in a request header goes upstream as the latin1 byte it came as', async () => {
  requests.length = 0;
  // Node's server refuses a raw CR in a field; an obs-text byte is allowed through both sides.
  const got = await exchange(`GET / HTTP/1.1\r\nHost: ${authority()}\r\nX-Latin: caf\xe9\r\n\r\n`, (g) => g.includes('\r\n\r\n'));
  assert.match(got, /^HTTP\/1\.1 200 /);
  assert.equal(requests.length, 1);
  assert.match(requests[0].head, /\r\nX-Latin: caf\xe9\r\n/);
});
