// Bounded fuzzing of every direction hostile bytes reach the host side from: sandbox -> proxy
// (HTTP, CONNECT, SOCKS5, DNS over UDP and TCP, transparent), upstream -> proxy and interceptor
// (status lines, headers, chunking, compression, HTTP/2 frames), server -> tool layer (JSON-RPC).
// Inputs are mutations of valid seeds from a seeded PRNG (the seed is printed: rerun one with
// STOCKADE_FUZZ_SEED). The property everywhere: nothing escapes as an exception, the proxy still
// answers a valid request afterwards, and the MCP client never receives a line it cannot parse
// or a tool outside the allowlist. `npm test` runs a small budget; `npm run fuzz` a larger one
// (STOCKADE_FUZZ_CASES, default 2000 per direction there).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import { connect, createServer } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import * as tls from 'node:tls';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { wireToolFilter } from '../lib/mcp';
import { RunCa } from '../lib/secrets/ca';
import { SecretInterceptor } from '../lib/secrets/intercept';
import { resolveSecrets } from '../lib/secrets/spec';
import {
  closeServer,
  collectUncaught,
  dnsQuery,
  exchange,
  listen,
  openFds,
  portOf,
  readUntil,
  startProxy,
  UPSTREAM_HOST,
} from './helpers/net';

const CASES = Number(process.env.STOCKADE_FUZZ_CASES ?? 60);
const SEED = Number(process.env.STOCKADE_FUZZ_SEED ?? Date.now() % 2 ** 31);
console.log(`# fuzz: ${CASES} cases per direction, seed ${SEED}`);
// A hang is a failure (rerun it with STOCKADE_FUZZ_SEED, printed above), not a stalled suite: a
// bound far above what a test takes (seconds), never an assertion about speed.
const BOUND = { timeout: 300_000 };

/** mulberry32: small, seeded, good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rand = prng(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
const INTERESTING = [
  '\r\n',
  '\n',
  '\0',
  ':',
  ' ',
  '0',
  '-1',
  '99999999999999999999',
  '%',
  '\u00ff',
  '\r\n\r\n',
  'Transfer-Encoding: chunked\r\n',
];

/** A mutation of `seed`: flipped, inserted, deleted or duplicated bytes, truncation, junk. */
function mutate(seed: Buffer): Buffer {
  let b = Buffer.from(seed);
  const n = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rand() * (b.length + 1));
    switch (Math.floor(rand() * 7)) {
      case 0:
        if (b.length) b[at % b.length] = Math.floor(rand() * 256);
        break;
      case 1:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(pick(INTERESTING), 'latin1'), b.subarray(at)]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + Math.floor(rand() * 16))]);
        break;
      case 3:
        b = b.subarray(0, at);
        break;
      case 4:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.max(0, at - 8), at), b.subarray(at)]);
        break;
      case 5:
        b = Buffer.concat([b, Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)))]);
        break;
      default:
        if (b.length > 1) b[at % b.length] ^= 1 << Math.floor(rand() * 8);
    }
  }
  return b;
}

/** `body` as one chunk of chunked transfer coding, then the last chunk. */
function chunked(body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
}

// Anything thrown out of an event handler would surface here instead of killing the runner.
const uncaught = collectUncaught();

/** Runs `fn` for every case, a few at a time. */
async function each(n: number, parallel: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

describe('fuzz: sandbox -> proxy', () => {
  it('HTTP, CONNECT, SOCKS5, DNS (UDP and TCP) and transparent survive mutated requests', BOUND, async () => {
    const up = await listen(
      createServer((s) => {
        s.on('error', () => {});
        s.on('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
      }),
      UPSTREAM_HOST,
    );
    const hp = `good.test:${portOf(up)}`;
    const p = await startProxy({ allow: [hp, '*.good.test'], resolve: [`${hp}:${UPSTREAM_HOST}`], limits: { headersTimeout: 300 } });
    const dnsTcp = await listen(createServer());
    p.proxy.serveDnsTcp(dnsTcp);
    const transparent = await listen(createServer());
    p.proxy.serveTransparent(transparent);
    const q = dnsQuery('a.good.test');
    const seeds: [number, Buffer][] = [
      [p.httpPort, Buffer.from(`GET http://${hp}/x?y=1 HTTP/1.1\r\nHost: ${hp}\r\nContent-Length: 3\r\n\r\nabc`)],
      [p.httpPort, Buffer.from(`POST http://${hp}/ HTTP/1.1\r\nHost: ${hp}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`)],
      [p.httpPort, Buffer.from(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\nGET / HTTP/1.1\r\nHost: good.test\r\n\r\n`)],
      [
        p.socksPort,
        Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, 9]), Buffer.from('good.test'), Buffer.from([portOf(up) >> 8, portOf(up) & 255])]),
      ],
      [portOf(dnsTcp), Buffer.concat([Buffer.from([0, q.length]), q, Buffer.from([0, q.length]), q])],
      [portOf(transparent), Buffer.from('GET / HTTP/1.1\r\nHost: good.test\r\n\r\n')],
    ];
    await each(CASES * seeds.length, 8, async (i) => {
      const [port, seed] = seeds[i % seeds.length];
      await exchange(port, mutate(seed), 400);
    });
    for (let i = 0; i < CASES * 20; i++) p.proxy.handleDnsQuery(mutate(q));
    const ok = await exchange(p.httpPort, seeds[0][1]);
    assert.match(ok.data.toString(), /^HTTP\/1\.1 200 OK/);
    await p.close();
    await Promise.all([closeServer(up), closeServer(dnsTcp), closeServer(transparent)]);
    assert.deepEqual(uncaught, []);
  });
});

describe('fuzz: upstream -> proxy and interceptor', () => {
  const responses = [
    Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello'),
    Buffer.from(
      'HTTP/1.1 302 Found\r\nLocation: https://x.test/?a=b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n',
    ),
    Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 25\r\n\r\n'), gzipSync('hello hello')]),
    Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
  ];

  it('the HTTP proxy survives mutated status lines, headers, chunking and compression', BOUND, async () => {
    let n = 0;
    const up = await listen(
      createServer((s) => {
        s.on('error', () => {});
        const answer = mutate(responses[n++ % responses.length]);
        s.once('data', () => s.end(answer));
      }),
      UPSTREAM_HOST,
    );
    const hp = `bad.test:${portOf(up)}`;
    const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`], limits: { idleTimeout: 500 } });
    await each(CASES * 2, 8, () => exchange(p.httpPort, `GET http://${hp}/ HTTP/1.1\r\nHost: ${hp}\r\nConnection: close\r\n\r\n`, 1000));
    const r = await exchange(p.httpPort, 'GET http://nope.test/ HTTP/1.1\r\nHost: nope.test\r\n\r\n');
    assert.match(r.data.toString(), /^HTTP\/1\.1 403 /);
    await p.close();
    await closeServer(up);
    assert.deepEqual(uncaught, []);
  });

  it('the interceptor survives mutated HTTP/1.1 responses and HTTP/2 frames from a TLS upstream', BOUND, async () => {
    const ca = await RunCa.create({ commonName: 'fuzz upstream CA' });
    const leaf = await ca.leaf('api.fuzz.test');
    const secret = 'real-fuzz-token';
    // An upstream that echoes the secret, compressed: the interceptor decodes before it masks.
    const echo = `{"echo":"${secret}","again":"${secret}"}`;
    const h1Compressed = [
      Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 999\r\n\r\n'), gzipSync(echo)]),
      Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n\r\n'), deflateSync(echo)]),
      Buffer.concat([
        Buffer.from('HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nTransfer-Encoding: chunked\r\n\r\n'),
        chunked(brotliCompressSync(echo)),
      ]),
      Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Encoding: gzip, br\r\n\r\n'), brotliCompressSync(gzipSync(echo))]),
      Buffer.from('HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\nContent-Length: 4\r\n\r\n\x28\xb5\x2f\xfd', 'latin1'),
      // 16 MiB of zeros in 16 KiB of gzip: decoded with backpressure, never whole in memory.
      Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n'), gzipSync(Buffer.alloc(16 * 2 ** 20))]),
    ];
    const frame = (type: number, flags: number, stream: number, payload: Buffer | number[]): Buffer => {
      const body = Buffer.from(payload);
      const head = Buffer.alloc(9);
      head.writeUIntBE(body.length, 0, 3);
      head[3] = type;
      head[4] = flags;
      head.writeUInt32BE(stream, 5);
      return Buffer.concat([head, body]);
    };
    const literal = (name: string, value: string): Buffer =>
      Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
    // HTTP/2: the server preface (an empty SETTINGS frame), then mutated HEADERS/DATA frames;
    // one plain, one gzip-encoded echo of the secret with a trailer, one split over CONTINUATION.
    const h2Variants = [
      Buffer.concat([frame(4, 0, 0, []), frame(4, 1, 0, []), frame(1, 4, 1, [0x88]), frame(0, 1, 1, Buffer.from('hello'))]),
      Buffer.concat([
        frame(4, 0, 0, []),
        frame(4, 1, 0, []),
        frame(1, 4, 1, Buffer.concat([Buffer.from([0x88]), literal('content-encoding', 'gzip')])),
        frame(0, 0, 1, gzipSync(echo)),
        frame(1, 5, 1, literal('x-trailer', secret)),
      ]),
      Buffer.concat([
        frame(4, 0, 0, []),
        frame(4, 1, 0, []),
        frame(1, 0, 1, [0x88]),
        frame(9, 4, 1, literal('x-echo', secret)),
        frame(0, 0, 1, Buffer.from(echo.slice(0, 10))),
        frame(0, 1, 1, Buffer.from(echo.slice(10))),
      ]),
      Buffer.concat([frame(4, 0, 0, []), frame(7, 0, 0, [0, 0, 0, 0, 0, 0, 0, 2]), frame(3, 0, 1, [0, 0, 0, 2])]),
    ];
    let leaked = 0;
    let n = 0;
    const upstream = await listen(
      tls.createServer({ key: leaf.keyPem, cert: `${leaf.certPem}\n${ca.certPem}`, ALPNProtocols: ['h2', 'http/1.1'] }, (s) => {
        s.on('error', () => {});
        const i = n++;
        s.once('data', () => {
          if (s.alpnProtocol === 'h2') {
            const seed = h2Variants[Math.floor(i / 2) % h2Variants.length];
            s.end(i % 4 === 0 ? seed : mutate(seed));
          } else {
            const seeds = [...responses, ...h1Compressed];
            const seed = seeds[Math.floor(i / 2) % seeds.length];
            s.end(i % 6 === 1 ? seed : mutate(seed));
          }
        });
      }),
      '127.0.0.1',
    );
    const host = `api.fuzz.test:${portOf(upstream)}`;
    const secrets = resolveSecrets([{ name: 'TOKEN', hosts: [host] }], { TOKEN: secret });
    const runCa = await RunCa.create();
    const interceptor = new SecretInterceptor({ secrets, ca: runCa, upstreamCaPem: [ca.certPem], upstreamTimeout: 1000 });
    const p = await startProxy({ allow: [host], resolve: [`${host}:127.0.0.1`] }, { interceptor });
    const request = async (i: number): Promise<void> => {
      const s = connect({ host: '127.0.0.1', port: p.httpPort });
      s.on('error', () => {});
      try {
        s.write(`CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        await readUntil(s, '\r\n\r\n');
        const useH2 = i % 2 === 0;
        const t = tls.connect({ socket: s, servername: 'api.fuzz.test', ca: runCa.certPem, ALPNProtocols: useH2 ? ['h2'] : ['http/1.1'] });
        t.on('error', () => {});
        await once(t, 'secureConnect');
        if (useH2) {
          const session = http2.connect(`https://${host}`, { createConnection: () => t });
          session.on('error', () => {});
          const stream = session.request({ ':path': '/', authorization: `Bearer ${interceptor.placeholders.TOKEN}` });
          stream.on('error', () => {});
          const got: string[] = [];
          stream.on('response', (h) => got.push(JSON.stringify(h)));
          stream.on('trailers', (h) => got.push(JSON.stringify(h)));
          stream.on('data', (c: Buffer) => got.push(c.toString('latin1')));
          stream.on('close', () => {
            if (got.join('').includes(secret)) leaked++;
          });
          await Promise.race([once(stream, 'close'), new Promise((r) => setTimeout(r, 2000))]);
          session.destroy();
        } else {
          t.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${interceptor.placeholders.TOKEN}\r\n\r\n`);
          // The decoded body arrives as it is (identity): a plain search sees any unmasked echo.
          let tail = '';
          t.on('data', (c: Buffer) => {
            const text = tail + c.toString('latin1');
            if (text.includes(secret)) leaked++;
            tail = text.slice(-secret.length);
          });
          await Promise.race([once(t, 'close'), new Promise((r) => setTimeout(r, 2000))]);
        }
      } catch {
        // A refused or cut connection is a fine outcome; an exception in the proxy is not.
      } finally {
        s.destroy();
      }
    };
    await each(Math.max(24, Math.floor(CASES / 2)), 4, request);
    assert.equal(leaked, 0, 'the real value reached the sandbox');
    await interceptor.close();
    await p.close();
    await closeServer(upstream);
    assert.deepEqual(uncaught, []);
  });
});

describe('fuzz: sandbox -> interceptor', () => {
  // What a sandbox sends inside its TLS connection to a host with a secret: request lines,
  // headers, chunked bodies, pipelined requests, oversize heads, and over h2 the connection
  // preface followed by mutated frames (SETTINGS, HEADERS with HPACK, DATA, CONTINUATION,
  // WINDOW_UPDATE, RST_STREAM, PING, GOAWAY). The property: no exception escapes, the launcher
  // keeps its fds and memory, the placeholder's real value never reaches the sandbox, and a
  // valid request still gets its answer afterwards.
  it('the interceptor survives mutated HTTP/1.1 and HTTP/2 requests from the sandbox', BOUND, async () => {
    const upstreamCa = await RunCa.create({ commonName: 'fuzz sandbox-side CA' });
    const leaf = await upstreamCa.leaf('api.inside.test');
    const upstream = await listen(
      http2.createSecureServer({ key: leaf.keyPem, cert: `${leaf.certPem}\n${upstreamCa.certPem}`, allowHTTP1: true }, (req, res) => {
        req.on('error', () => {});
        res.on('error', () => {});
        req.resume();
        req.on('end', () => res.end(`ok ${req.headers.authorization ?? ''}`));
      }),
      UPSTREAM_HOST,
    );
    upstream.on('sessionError', () => {});
    const host = `api.inside.test:${portOf(upstream)}`;
    const secret = 'real-inside-token-7f3a';
    const secrets = resolveSecrets([{ name: 'TOKEN', hosts: [host] }], { TOKEN: secret });
    const runCa = await RunCa.create();
    const interceptor = new SecretInterceptor({
      secrets,
      ca: runCa,
      upstreamCaPem: [upstreamCa.certPem],
      upstreamTimeout: 1000,
      handshakeTimeout: 1000,
    });
    interceptor.on('violation', () => {});
    const p = await startProxy({ allow: [host], resolve: [`${host}:${UPSTREAM_HOST}`] }, { interceptor });
    const ph = interceptor.placeholders.TOKEN;
    const auth = `Authorization: Bearer ${ph}\r\n`;
    const h1Seeds = [
      `GET /a?x=1 HTTP/1.1\r\nHost: ${host}\r\n${auth}\r\n`,
      `POST /b HTTP/1.1\r\nHost: ${host}\r\n${auth}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n`,
      `POST /c HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Length: 4\r\n\r\nbody`,
      // Pipelined: three requests in one write.
      `GET /1 HTTP/1.1\r\nHost: ${host}\r\n${auth}\r\nGET /2 HTTP/1.1\r\nHost: ${host}\r\n\r\nHEAD /3 HTTP/1.1\r\nHost: ${host}\r\n${auth}\r\n`,
      // Oversize: one header of 20 KiB, and 300 small ones.
      `GET /big HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`,
      `GET /many HTTP/1.1\r\nHost: ${host}\r\n${Array.from({ length: 300 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`,
      `GET /up HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ].map((t) => Buffer.from(t, 'latin1'));
    const frame = (type: number, flags: number, stream: number, payload: Buffer | number[]): Buffer => {
      const body = Buffer.from(payload);
      const head = Buffer.alloc(9);
      head.writeUIntBE(body.length, 0, 3);
      head[3] = type;
      head[4] = flags;
      head.writeUInt32BE(stream, 5);
      return Buffer.concat([head, body]);
    };
    // HPACK literal header fields without indexing, new names: (0x00, len, name, len, value).
    const literal = (name: string, value: string): Buffer =>
      Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
    const block = Buffer.concat([
      Buffer.from([0x82, 0x87]), // :method GET, :scheme https
      literal(':path', '/h2'),
      literal(':authority', host),
      literal('authorization', `Bearer ${ph}`),
    ]);
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    const h2Seeds = [
      Buffer.concat([preface, frame(4, 0, 0, []), frame(1, 0x5, 1, block)]),
      Buffer.concat([
        preface,
        frame(4, 0, 0, [0, 3, 0, 0, 0, 100]),
        frame(1, 0x4, 1, block.subarray(0, 6)), // HEADERS without END_STREAM
        frame(9, 0x4, 1, block.subarray(6)), // CONTINUATION (END_HEADERS set on HEADERS already: a protocol error)
        frame(0, 0x1, 1, Buffer.from('data')),
        frame(8, 0, 1, [0, 0, 0x10, 0]),
        frame(6, 0, 0, Buffer.alloc(8)),
      ]),
      Buffer.concat([preface, frame(4, 0, 0, []), frame(1, 0x4, 3, block), frame(3, 0, 3, [0, 0, 0, 8]), frame(7, 0, 0, Buffer.alloc(8))]),
      Buffer.concat([preface, frame(4, 0, 0, []), ...Array.from({ length: 50 }, (_, i) => frame(1, 0x5, 2 * i + 1, block))]),
    ];
    const fds0 = openFds();
    (globalThis as { gc?: () => void }).gc?.();
    const rss0 = process.memoryUsage().rss;
    const heap0 = process.memoryUsage().heapUsed;
    let leaked = 0;
    let answered = 0;
    let answeredH2 = 0;
    const h2HeadersOn1 = (b: Buffer): boolean => {
      for (let at = 0; at + 9 <= b.length; at += 9 + b.readUIntBE(at, 3)) if (b[at + 3] === 1 && b.readUInt32BE(at + 5) === 1) return true;
      return false;
    };
    const attempt = async (i: number, bytes: Buffer, alpn: string): Promise<void> => {
      const s = connect({ host: '127.0.0.1', port: p.httpPort });
      s.on('error', () => {});
      try {
        s.write(`CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        await readUntil(s, '\r\n\r\n');
        const t = tls.connect({ socket: s, servername: 'api.inside.test', ca: runCa.certPem, ALPNProtocols: [alpn] });
        t.on('error', () => {});
        await once(t, 'secureConnect');
        const got: Buffer[] = [];
        t.on('data', (c: Buffer) => got.push(c));
        // Split at a random point: the parsers must handle any segmentation.
        const cut = Math.floor(rand() * bytes.length);
        t.write(bytes.subarray(0, cut));
        if (i % 3 === 0) await new Promise((r) => setImmediate(r));
        t.write(bytes.subarray(cut));
        await Promise.race([once(t, 'close'), new Promise((r) => setTimeout(r, 300))]);
        const all = Buffer.concat(got);
        if (all.includes(secret)) leaked++;
        // A response: an HTTP/1.1 status line, or an h2 HEADERS frame (type 1) on stream 1.
        if (all.subarray(0, 9).toString('latin1') === 'HTTP/1.1 ') answered++;
        else if (h2HeadersOn1(all)) answeredH2++;
      } catch {
        // Refused, reset or cut: fine. An exception inside the proxy is what this looks for.
      } finally {
        s.destroy();
      }
    };
    await each(CASES * 2, 6, (i) =>
      i % 2 === 0 ? attempt(i, mutate(pick(h1Seeds)), 'http/1.1') : attempt(i, i % 10 === 1 ? pick(h2Seeds) : mutate(pick(h2Seeds)), 'h2'),
    );
    assert.equal(leaked, 0, 'the real value reached the sandbox');
    console.log(`# fuzz sandbox -> interceptor: answers to ${answered} HTTP/1.1 and ${answeredH2} HTTP/2 of ${CASES * 2} cases`);
    assert.ok(answered > 0 && answeredH2 > 0, 'no case got an answer: the seeds no longer reach the interceptor');
    // A valid request still works, and the secret is injected.
    const s = connect({ host: '127.0.0.1', port: p.httpPort });
    s.write(`CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    await readUntil(s, '\r\n\r\n');
    const t = tls.connect({ socket: s, servername: 'api.inside.test', ca: runCa.certPem, ALPNProtocols: ['http/1.1'] });
    await once(t, 'secureConnect');
    t.write(`GET /final HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`);
    const answer = await readUntil(t, 'ok Bearer');
    assert.match(answer, /^HTTP\/1\.1 200 /);
    t.destroy();
    s.destroy();
    await interceptor.close();
    await p.close();
    await closeServer(upstream);
    await new Promise((r) => setTimeout(r, 100));
    const grownFds = openFds() - fds0;
    (globalThis as { gc?: () => void }).gc?.();
    const grownRss = process.memoryUsage().rss - rss0;
    const grownHeap = process.memoryUsage().heapUsed - heap0;
    console.log(
      `# fuzz sandbox -> interceptor: ${CASES * 2} cases, fds +${grownFds}, rss +${(grownRss / 2 ** 20).toFixed(1)} MiB, heap +${(grownHeap / 2 ** 20).toFixed(1)} MiB`,
    );
    assert.ok(grownFds <= 16, `fds grew by ${grownFds}`);
    // RSS keeps what malloc and OpenSSL once took (about 60 KiB a case here, not given back);
    // the JavaScript heap after a collection (`npm run fuzz` exposes gc) shows what is kept.
    assert.ok(grownRss < Math.max(256 * 2 ** 20, CASES * 2 * 96 * 1024), `rss grew by ${grownRss}`);
    if ((globalThis as { gc?: () => void }).gc) assert.ok(grownHeap < 64 * 2 ** 20, `the heap grew by ${grownHeap}`);
    assert.deepEqual(uncaught, []);
  });
});

describe('fuzz: server -> tool layer', () => {
  it('the client never receives a line it cannot parse, nor a tool outside the allowlist', BOUND, async () => {
    const client = new PassThrough();
    const server = new PassThrough();
    const out: Buffer[] = [];
    const toClient = new Writable({
      write(c, _e, cb) {
        out.push(Buffer.from(c));
        cb();
      },
    });
    const toServer = new Writable({
      write(_c, _e, cb) {
        cb();
      },
    });
    const filter = wireToolFilter(
      { fromClient: client, toClient, toServer, fromServer: server },
      { tools: ['echo'], maxMessageBytes: 4096 },
    );
    filter.on('error', (err) => uncaught.push(err));
    const seeds = [
      '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"rm","inputSchema":{"type":"object"}}]}}',
      '[{"jsonrpc":"2.0","id":"1","result":{"tools":[{"name":"rm"}]}},{"jsonrpc":"2.0","method":"n"}]',
      '{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"h\\u00e9"}],"isError":false}}',
      '{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{"messages":[[[[{}]]]]}}',
    ];
    for (let i = 0; i < CASES * 10; i++) {
      client.write(`{"jsonrpc":"2.0","id":${i % 5},"method":"tools/list"}\n`);
      server.write(Buffer.concat([mutate(Buffer.from(pick(seeds))), Buffer.from('\n')]));
    }
    await new Promise((r) => setImmediate(r));
    server.end();
    await once(toClient, 'finish');
    for (const line of Buffer.concat(out).toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      const msg = JSON.parse(line) as unknown;
      const tools = (msg as { result?: { tools?: unknown } })?.result?.tools;
      if (Array.isArray(tools)) for (const t of tools) assert.equal((t as { name?: unknown }).name, 'echo', line);
    }
    assert.deepEqual(uncaught, []);
  });
});
