// The host side against hostile sandboxes and hostile upstreams (issue #9): every case found by
// trying it as an attacker, as a regression test on real sockets on 127.0.0.0/8. An upstream
// that answers nonsense, a sandbox that floods DNS over TCP and never reads, one that asks for
// names without end, a ClientHello followed by plaintext, and the fd budget.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import * as tls from 'node:tls';
import { hostBudget } from '../lib/net/budget';
import type { PlaintextGuard } from '../lib/net/decision';
import { DnsPool } from '../lib/net/dns';
import { EgressProxy } from '../lib/net/proxy';
import { makePlaceholder, PlaceholderSet } from '../lib/secrets/placeholder';
import {
  closeServer,
  collectUncaught,
  dnsQuery,
  echoUpstream,
  exchange,
  httpsUpstream,
  listen,
  openFds,
  portOf,
  readUntil,
  startProxy,
  testCert,
  UPSTREAM_HOST,
  waitFor,
} from './helpers/net';

// Anything thrown out of an event handler would surface here instead of killing the runner.
const uncaught = collectUncaught();

/** A raw TCP upstream answering every connection with `answer`, then closing. */
/** A run's placeholder for TOKEN and a plaintext guard over it, recording `secret@host:via`. */
function placeholderGuard(): { placeholder: string; guard: PlaintextGuard; violations: string[] } {
  const placeholder = makePlaceholder('TOKEN');
  const set = new PlaceholderSet([{ name: 'TOKEN', placeholder }]);
  const violations: string[] = [];
  const guard: PlaintextGuard = {
    find: (d) => set.find(d)?.name,
    stream: () => set.stream(),
    violation: (v) => violations.push(`${v.secret}@${v.host}:${v.via}`),
  };
  return { placeholder, guard, violations };
}

/** The ClientHello a Node TLS client writes for good.test, as a listener receives it. */
async function captureClientHello(): Promise<Buffer> {
  const capture = await listen(createServer());
  const hello = new Promise<Buffer>((resolve) => capture.once('connection', (s: Socket) => s.once('data', resolve)));
  const t = tls.connect({ host: '127.0.0.1', port: portOf(capture), servername: 'good.test' });
  t.on('error', () => {});
  const clientHello = await hello;
  t.destroy();
  await closeServer(capture);
  return clientHello;
}

async function rawUpstream(answer: (n: number) => Buffer | string): Promise<Server> {
  let n = 0;
  return listen(
    createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end(answer(n++)));
    }),
    UPSTREAM_HOST,
  );
}

/** The lines a child writes, one at a time. */
function readLines(stream: Readable): { next(): Promise<string> } {
  const lines: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  let rest = '';
  stream.on('data', (c: Buffer) => {
    rest += c.toString();
    let nl = rest.indexOf('\n');
    while (nl >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
      nl = rest.indexOf('\n');
    }
  });
  // At the end, every waiter gets '' (and JSON.parse fails the test instead of hanging it).
  stream.on('end', () => {
    for (const w of waiting.splice(0)) w('');
  });
  return {
    next: () => {
      const l = lines.shift();
      return l !== undefined ? Promise.resolve(l) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

function get(port: number, path: string, hostPort: string): Promise<{ data: Buffer }> {
  return exchange(port, `GET http://${hostPort}${path} HTTP/1.1\r\nHost: ${hostPort}\r\nConnection: close\r\n\r\n`);
}

describe('hostile upstreams', () => {
  it('an invalid status line is a 502 with an audit record; a second sandbox in the process never notices', async () => {
    const answers = [
      'HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 abc Letters\r\n\r\n',
      'HTTP/1.1 200\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
      'garbage\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    ];
    const bad = await rawUpstream((n) => answers[n % answers.length]);
    const good = await rawUpstream(() => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    const host = `bad.test:${portOf(bad)}`;
    const first = await startProxy({ allow: [host], resolve: [`${host}:${UPSTREAM_HOST}`] });
    const ghost = `good.test:${portOf(good)}`;
    const second = await startProxy({ allow: [ghost], resolve: [`${ghost}:${UPSTREAM_HOST}`] });
    try {
      for (let i = 0; i < answers.length; i++) {
        const r = await get(first.httpPort, '/', host);
        const text = r.data.toString('latin1');
        // Invalid before any byte was relayed: a 502 naming the upstream. Invalid once the head
        // was sent (a broken chunk): the connection is cut.
        if (i < 5) assert.match(text, /^HTTP\/1\.1 502 /, `answer ${i}: ${JSON.stringify(text)}`);
        const ok = await get(second.httpPort, '/', ghost);
        assert.match(ok.data.toString('latin1'), /^HTTP\/1\.1 200 OK[\s\S]*ok$/);
      }
      await waitFor(() => first.records.filter((r) => r.error).length >= 5, 'the failed requests to be audited');
      assert.ok(first.records.some((r) => /malformed upstream response|HPE_/.test(r.error ?? '')));
    } finally {
      await first.close();
      await second.close();
      await closeServer(bad);
      await closeServer(good);
    }
    assert.deepEqual(uncaught, []);
  });
});

describe('hostile sandboxes', () => {
  it('DNS over TCP from a client that never reads: the responder stops reading, memory stays bounded', async () => {
    const proxy = new EgressProxy({ allow: ['*.flood.test'] }, 'dns-flood');
    const server = await listen(createServer());
    proxy.serveDnsTcp(server);
    let served: Socket | undefined;
    server.on('connection', (s: Socket) => {
      served = s;
    });
    const before = process.memoryUsage().rss;
    const client = connect({ host: '127.0.0.1', port: portOf(server) });
    await once(client, 'connect');
    client.pause();
    const q = dnsQuery('a.flood.test');
    const framed = Buffer.concat([Buffer.from([0, q.length]), q]);
    // 16 MiB of queries queued at once; the answers are never read.
    const batch = Buffer.concat(Array.from({ length: 4096 }, () => framed));
    for (let i = 0; i < 16 * 2 ** 20; i += batch.length) client.write(batch);
    let queued = 0;
    await waitFor(
      () => {
        queued = Math.max(queued, served?.writableLength ?? 0);
        return (served?.bytesRead ?? 0) > 2 ** 20 || served?.isPaused() === true;
      },
      'a MiB of queries to be answered',
      20_000,
    );
    const grown = process.memoryUsage().rss - before;
    // The 16 MiB this test wrote sit in its own socket's buffer; the responder adds little.
    assert.ok(grown < 96 * 2 ** 20, `RSS grew by ${(grown / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(queued < 2 ** 20, `answers queued in the proxy: ${queued}`);
    client.destroy();
    await proxy.close();
    await closeServer(server);
  });

  it('names without end under a wildcard: the pool stays bounded and new names keep resolving', () => {
    const pool = new DnsPool('198.18.0.0/15', 100);
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const a = pool.addressFor(`n${i}.wild.test`);
      assert.ok(a, `name ${i} got no address`);
      seen.add(a);
    }
    assert.equal(pool.names, 100);
    assert.equal(pool.recycled, 900);
    // Round-robin over the CIDR: 1000 different addresses, none reused yet.
    assert.equal(seen.size, 1000);
    assert.equal(pool.nameFor(pool.addressFor('n999.wild.test') as string), 'n999.wild.test');
    assert.equal(pool.nameFor('198.18.0.1'), undefined);

    const proxy = new EgressProxy({ allow: ['*.wild.test'] }, 'dns-wild');
    for (let i = 0; i < 5000; i++) {
      const reply = proxy.handleDnsQuery(dnsQuery(`x${i}.wild.test`));
      assert.equal(reply?.readUInt16BE(6), 1, `x${i} got no A record`);
    }
    assert.equal(proxy.dnsPool.names, 4096);
    void proxy.close();
  });

  it('a ClientHello followed by plaintext is still scanned: the placeholder never reaches a plaintext listener', async () => {
    const { placeholder, guard, violations } = placeholderGuard();
    // A real ClientHello for good.test, as a TLS client writes it.
    const clientHello = await captureClientHello();

    const received: Buffer[] = [];
    const plain = await listen(
      createServer((s) => {
        s.on('error', () => {});
        s.on('data', (c: Buffer) => received.push(c));
      }),
      UPSTREAM_HOST,
    );
    const https = await httpsUpstream();
    const hp = `good.test:${portOf(plain)}`;
    const tp = `good.test:${portOf(https)}`;
    const p = await startProxy({ allow: [hp, tp], resolve: [`${hp}:${UPSTREAM_HOST}`, `${tp}:${UPSTREAM_HOST}`] }, { guard });
    try {
      const s = connect({ host: '127.0.0.1', port: p.httpPort });
      s.on('error', () => {});
      s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
      await readUntil(s, '200 Connection Established');
      s.write(clientHello);
      await waitFor(() => Buffer.concat(received).length >= clientHello.length, 'the ClientHello to arrive');
      s.write(`GET /?t=${placeholder} HTTP/1.1\r\nHost: good.test\r\n\r\n`);
      await once(s, 'close');
      assert.deepEqual(violations, ['TOKEN@good.test:connect']);
      assert.ok(!Buffer.concat(received).includes(placeholder), 'the plaintext listener saw the placeholder');
      assert.equal(p.proxy.kernelRelays, 0);

      // Real TLS both ways is still handed to the kernel relay once the upstream answered in TLS.
      const { cert } = testCert();
      const c = connect({ host: '127.0.0.1', port: p.httpPort });
      c.write(`CONNECT ${tp} HTTP/1.1\r\nHost: ${tp}\r\n\r\n`);
      await readUntil(c, '200 Connection Established');
      const secure = tls.connect({ socket: c, servername: 'good.test', ca: cert });
      // Listened for now: the answer and its end can both come within one poll of waitFor below.
      const ended = once(secure, 'end');
      await once(secure, 'secureConnect');
      secure.write('GET /x HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n');
      const chunks: Buffer[] = [];
      secure.on('data', (d: Buffer) => chunks.push(d));
      await waitFor(() => p.proxy.kernelRelays === 1 || Buffer.concat(chunks).includes('TLS GET /x'), 'the answer');
      await ended;
      assert.match(Buffer.concat(chunks).toString(), /TLS GET \/x host=good\.test/);
      await waitFor(() => p.records.some((r) => r.port === portOf(https) && r.decision === 'allow'), 'the TLS tunnel record');
    } finally {
      await p.close();
      await closeServer(plain);
      await closeServer(https);
    }
  });

  it('ClientHello, plaintext, then a placeholder split across writes: bytesUp is exactly what the listener received, and that has no placeholder', async () => {
    const { placeholder, guard, violations } = placeholderGuard();
    const clientHello = await captureClientHello();

    let received = Buffer.alloc(0);
    let listenerClosed = false;
    const plain = await listen(
      createServer((s) => {
        s.on('error', () => {});
        s.on('data', (c: Buffer) => {
          received = Buffer.concat([received, c]);
        });
        s.on('close', () => {
          listenerClosed = true;
        });
      }),
      UPSTREAM_HOST,
    );
    const hp = `good.test:${portOf(plain)}`;
    const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`] }, { guard });
    try {
      for (const via of ['connect', 'socks'] as const) {
        received = Buffer.alloc(0);
        listenerClosed = false;
        const s = connect({ host: '127.0.0.1', port: via === 'connect' ? p.httpPort : p.socksPort });
        s.on('error', () => {});
        if (via === 'connect') {
          s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
          await readUntil(s, '200 Connection Established');
        } else {
          const port = portOf(plain);
          s.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, 9]), Buffer.from('good.test'), Buffer.from([port >> 8, port & 255])]));
          s.resume();
          await waitFor(() => s.bytesRead >= 12, 'the SOCKS5 success reply');
        }
        s.write(clientHello);
        await waitFor(() => received.length >= clientHello.length, 'the ClientHello to arrive');
        // Plaintext that is fine, then the placeholder cut in three: its first bytes sit in the
        // scanner until the rest shows what they are, and nothing of its own is forwarded (only
        // `stock`, the start of the public prefix, could go on, had the next piece come more than
        // a pause later: the test below).
        const safe = 'GET /?q=fine HTTP/1.1\r\nHost: good.test\r\nX-A: ';
        s.write(safe);
        await waitFor(() => received.length >= clientHello.length + safe.length, 'the safe plaintext to arrive');
        s.write(placeholder.slice(0, 5));
        await new Promise((r) => setImmediate(r));
        s.write(placeholder.slice(5, 12));
        await new Promise((r) => setImmediate(r));
        s.write(`${placeholder.slice(12)}\r\n\r\n`);
        await once(s, 'close');
        await waitFor(() => listenerClosed, 'the listener to see the connection end');
        await waitFor(() => p.records.some((r) => r.via === via && r.decision === 'deny'), `the ${via} record`);
        const rec = p.records.filter((r) => r.via === via && r.decision === 'deny').at(-1);
        const expected = [safe, `${safe}${placeholder.slice(0, 5)}`].map((t) => Buffer.concat([clientHello, Buffer.from(t)]));
        assert.ok(
          expected.some((e) => received.equals(e)),
          `the listener got ${JSON.stringify(received.subarray(clientHello.length).toString('latin1'))}`,
        );
        assert.ok(!received.includes(placeholder.slice(5, 12)), 'a piece of the placeholder reached the listener');
        assert.equal(rec?.bytesUp, received.length);
        assert.match(rec?.rule ?? '', /^placeholder of secret TOKEN sent in plaintext to good\.test:\d+$/);
      }
      assert.deepEqual(violations, ['TOKEN@good.test:connect', 'TOKEN@good.test:socks']);
    } finally {
      await p.close();
      await closeServer(plain);
    }
  });

  it('a tail that is only the start of the placeholder prefix goes on after a pause: no tunnel waits for ever on a last `s`', async () => {
    const { placeholder, guard, violations } = placeholderGuard();
    let received = Buffer.alloc(0);
    const plain = await listen(
      createServer((s) => {
        s.on('error', () => {});
        s.on('data', (c: Buffer) => {
          received = Buffer.concat([received, c]);
        });
      }),
      UPSTREAM_HOST,
    );
    const hp = `good.test:${portOf(plain)}`;
    const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`] }, { guard });
    try {
      // A real ClientHello whose last byte is `s` (its last extension's data: one in 256 ends so),
      // a plaintext message, and a line protocol's upper-case command (SMTP's, which the tunnel's
      // first-bytes check once took for the start of an HTTP head and waited on): each all its
      // client sends before it waits for an answer.
      const clientHello = Buffer.from(await captureClientHello());
      clientHello[clientHello.length - 1] = 's'.charCodeAt(0);
      const firsts = [clientHello, Buffer.from('hello there s'), Buffer.from('EHLO relay.example\r\n')];
      for (const first of firsts) {
        received = Buffer.alloc(0);
        const s = connect({ host: '127.0.0.1', port: p.httpPort });
        s.on('error', () => {});
        s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
        await readUntil(s, '200 Connection Established');
        s.write(first);
        await waitFor(
          () => received.equals(first),
          () => `the whole first write to arrive (${received.length} of ${first.length} bytes)`,
        );
        // Then a message ending in more of the prefix, after which its client waits: it goes on too.
        s.write('PING stock');
        await waitFor(
          () => received.equals(Buffer.concat([first, Buffer.from('PING stock')])),
          () => `the second write to arrive (${received.length - first.length} of 10 bytes)`,
        );
        // What it started is still scanned: the rest of a placeholder is refused, and nothing
        // past the public prefix's first bytes reached the listener.
        s.write(`${placeholder.slice(5)}\r\n`);
        await once(s, 'close');
        assert.ok(received.equals(Buffer.concat([first, Buffer.from('PING stock')])), `the listener got more: ${received.length} bytes`);
        await waitFor(() => p.records.filter((r) => r.decision === 'deny').length === violations.length, 'the deny record');
        assert.equal(p.records.filter((r) => r.decision === 'deny').at(-1)?.bytesUp, received.length);
      }
      assert.deepEqual(
        violations,
        firsts.map(() => 'TOKEN@good.test:connect'),
      );
    } finally {
      await p.close();
      await closeServer(plain);
    }
  });

  it('a first message inside a tunnel still incomplete after headersTimeout is refused, not passed unread or left to the idle timeout', async () => {
    let received = 0;
    const plain = await listen(
      createServer((s) => {
        s.on('error', () => {});
        s.on('data', (c: Buffer) => {
          received += c.length;
        });
      }),
      UPSTREAM_HOST,
    );
    const hp = `good.test:${portOf(plain)}`;
    const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`], limits: { headersTimeout: 300 } });
    try {
      // An upper-case word and a space, then nothing (what the check cannot yet tell from HTTP),
      // and a head that stops before its end (slowloris, or a Host it hopes goes unchecked).
      for (const first of ['EHLO partial', `GET / HTTP/1.1\r\nHost: evil.test\r\nX-Slow: `]) {
        const s = connect({ host: '127.0.0.1', port: p.httpPort });
        s.on('error', () => {});
        s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
        await readUntil(s, '200 Connection Established');
        const started = Date.now();
        s.write(first);
        await once(s, 'close');
        assert.ok(Date.now() - started >= 250, `closed after ${Date.now() - started} ms`);
        await waitFor(
          () => p.records.some((r) => r.decision === 'deny' && r.rule.includes(`the first ${first.length} bytes`)),
          'the deny record',
        );
        const rec = p.records.filter((r) => r.decision === 'deny').at(-1);
        assert.equal(
          rec?.rule,
          `refused: the first ${first.length} bytes inside the tunnel to good.test are not yet a whole TLS ClientHello or HTTP head after 300 ms`,
        );
        assert.equal(rec?.bytesUp, 0);
      }
      assert.equal(received, 0, 'the listener got bytes of an unchecked head');
    } finally {
      await p.close();
      await closeServer(plain);
    }
  });

  it('a connection flood past maxConnections: refused at once, fd and memory growth bounded, all given back', async () => {
    const p = await startProxy({ allow: ['good.test'], limits: { maxConnections: 100 } });
    const fds0 = openFds();
    const rss0 = process.memoryUsage().rss;
    const sockets: Socket[] = [];
    let reset = 0;
    for (let i = 0; i < 600; i++) {
      const s = connect({ host: '127.0.0.1', port: p.httpPort });
      s.on('error', () => {});
      s.on('close', () => reset++);
      sockets.push(s);
    }
    await waitFor(() => reset === 500 && p.proxy.connections === 100, '500 refusals and 100 held connections', 20_000);
    // Ours and the proxy's end of each held connection, and nothing for the refused ones.
    const grown = openFds() - fds0;
    assert.ok(grown <= 2 * 100 + 16, `fds grew by ${grown}`);
    assert.ok(process.memoryUsage().rss - rss0 < 64 * 2 ** 20);
    assert.equal(p.records.filter((r) => r.rule === 'limit: more than 100 concurrent connections').length, 500);
    for (const s of sockets) s.destroy();
    await waitFor(() => p.proxy.connections === 0 && openFds() <= fds0 + 4, 'every fd to be given back', 10_000);
    await p.close();
  });

  it('an application under `ulimit -n 512` flooded with tunnels keeps half its fds: no EMFILE for it, refusals audited', async () => {
    const up = await echoUpstream();
    const hp = `echo.test:${portOf(up)}`;
    // The embedding application: a proxy with the default maxFds (4096, far above what the
    // process has), which then opens 200 files of its own while the flood holds every tunnel.
    const app = `
      const { EgressProxy } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'net', 'proxy.js'))});
      const net = require('node:net');
      const fs = require('node:fs');
      const proxy = new EgressProxy({ allow: [${JSON.stringify(hp)}], resolve: [${JSON.stringify(`${hp}:${UPSTREAM_HOST}`)}] }, 'app');
      const refusals = [];
      proxy.on('egress', (r) => { if (/budget: host file descriptor budget/.test(r.rule + ' ' + (r.error ?? ''))) refusals.push(r.rule); });
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        proxy.serveHttpProxy(server);
        console.log(JSON.stringify({ port: server.address().port }));
      });
      process.stdin.once('data', () => {
        const opened = [];
        let error = null;
        try { for (let i = 0; i < 200; i++) opened.push(fs.openSync('/dev/null', 'r')); } catch (e) { error = e.code; }
        for (const fd of opened) fs.closeSync(fd);
        console.log(JSON.stringify({ opened: opened.length, error, refusals: refusals.length, limit: require('node:fs').readFileSync('/proc/self/limits', 'utf8').match(/Max open files\\s+(\\d+)/)[1] }));
        process.exit(0);
      });`;
    const child = spawn('sh', ['-c', 'ulimit -n 512 && exec "$0" -e "$1"', process.execPath, app], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = readLines(child.stdout);
    const { port } = JSON.parse(await lines.next()) as { port: number };
    const clients: Socket[] = [];
    try {
      let answered = 0;
      for (let i = 0; i < 400; i++) {
        const s = connect({ host: '127.0.0.1', port });
        s.on('error', () => {});
        clients.push(s);
        s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
        s.once('data', () => answered++);
      }
      await waitFor(() => answered + clients.filter((c) => c.destroyed).length >= 400, 'every CONNECT to be answered or refused', 20_000);
      child.stdin.write('check\n');
      const r = JSON.parse(await lines.next()) as { opened: number; error: string | null; refusals: number; limit: string };
      assert.equal(r.limit, '512');
      assert.deepEqual({ opened: r.opened, error: r.error }, { opened: 200, error: null });
      assert.ok(r.refusals > 0, 'the flood never reached the host budget');
    } finally {
      for (const s of clients) s.destroy();
      // The child exits by itself once it has answered 'check': it may be gone already.
      const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit');
      child.kill();
      await exited;
      await closeServer(up);
    }
  });

  it('a tunnel that does not fit the host pipe budget is relayed in JavaScript, bytes intact', async () => {
    const up = await echoUpstream();
    const hp = `echo.test:${portOf(up)}`;
    const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`] });
    const pipes = hostBudget.pipePages;
    const taken = pipes.limit - pipes.used;
    assert.ok(pipes.take(taken));
    try {
      const s = connect({ host: '127.0.0.1', port: p.httpPort });
      s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
      await readUntil(s, '\r\n\r\n');
      const payload = Buffer.alloc(4 * 2 ** 20, 'x');
      const got: Buffer[] = [];
      let n = 0;
      s.on('data', (c: Buffer) => {
        got.push(c);
        n += c.length;
      });
      s.write(payload);
      await waitFor(() => n >= payload.length, 'the echo', 10_000);
      assert.ok(Buffer.concat(got).equals(payload));
      assert.equal(p.proxy.kernelRelays, 0);
      s.destroy();
    } finally {
      pipes.give(taken);
      await p.close();
      await closeServer(up);
    }
  });

  it('the fd budget: connections past limits.maxFds are refused with an audit record, and released ones come back', async () => {
    const p = await startProxy({ allow: ['good.test'], limits: { maxFds: 3 } });
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const s = connect({ host: '127.0.0.1', port: p.httpPort });
        s.on('error', () => {});
        await once(s, 'connect');
        held.push(s);
      }
      await waitFor(() => p.proxy.connections === 3, 'three connections');
      const refused = await exchange(p.httpPort, 'GET http://good.test/ HTTP/1.1\r\nHost: good.test\r\n\r\n');
      assert.equal(refused.error, 'ECONNRESET');
      const rec = p.records.find((r) => r.rule.startsWith('budget:'));
      assert.match(rec?.rule ?? '', /^budget: sandbox file descriptor budget \(limits\.maxFds\) \(3\) reached$/);
      assert.equal(rec?.decision, 'deny');
      for (const s of held) s.destroy();
      await waitFor(() => p.proxy.connections === 0, 'the connections to close');
      const again = await exchange(p.httpPort, 'GET http://nope.test/ HTTP/1.1\r\nHost: nope.test\r\n\r\n');
      assert.match(again.data.toString(), /^HTTP\/1\.1 403 /);
    } finally {
      for (const s of held) s.destroy();
      await p.close();
    }
  });
});
