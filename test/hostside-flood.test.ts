// Every writer of the host side against a reader that never reads (issue #9): the HTTP proxy,
// CONNECT and SOCKS5 tunnels (relayed in JavaScript and in the kernel), many tunnels at once
// (the sandbox's buffered-bytes budget), pipelined requests, the credential interceptor and
// the MCP tool layer's framing. (DNS over TCP: hostside.test.ts.) Each test lets an upstream
// write as fast as the proxy takes bytes until nothing moves any more, then asserts how much
// the upstream got rid of, what the proxy holds and how much the process grew: backpressure
// reaches the source, and what sits in between is bounded.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import * as tls from 'node:tls';
import pino from 'pino';
import { wireToolFilter } from '../lib/mcp';
import { hostBudget } from '../lib/net/budget';
import type { PlaintextGuard } from '../lib/net/decision';
import { RunCa } from '../lib/secrets/ca';
import { INTERCEPT_LIMITS, SecretInterceptor } from '../lib/secrets/intercept';
import { makePlaceholder, PlaceholderSet } from '../lib/secrets/placeholder';
import { resolveSecrets } from '../lib/secrets/spec';
import { closeServer, collectUncaught, listen, openFds, portOf, readUntil, startProxy, UPSTREAM_HOST, waitFor } from './helpers/net';

const uncaught = collectUncaught();
const MiB = 2 ** 20;

/** What a flooding upstream managed to write, per connection, and whether it is stuck now. */
interface Flood {
  server: Server;
  written: number[];
  /** Every connection's write() said "full" and no 'drain' came for `quietMs`. */
  stuck(quietMs?: number): boolean;
  total(): number;
}

/**
 * A server that answers each connection's first bytes with `head` and then writes 1 MiB chunks
 * for as long as the peer takes them (up to `cap`), honouring backpressure itself.
 */
async function floodUpstream(head: Buffer | string, cap = 512 * MiB, server: Server = createServer()): Promise<Flood> {
  const written: number[] = [];
  const last: number[] = [];
  const chunk = Buffer.alloc(MiB, 'z');
  const onSocket = (s: Socket): void => {
    const i = written.length;
    written.push(0);
    last.push(Date.now());
    s.on('error', () => {});
    const pump = (): void => {
      last[i] = Date.now();
      while (written[i] < cap) {
        written[i] += chunk.length;
        if (!s.write(chunk)) {
          s.once('drain', pump);
          return;
        }
      }
      s.end();
    };
    s.once('data', () => {
      s.write(head);
      pump();
    });
  };
  server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', onSocket);
  await listen(server, UPSTREAM_HOST);
  return {
    server,
    written,
    stuck: (quietMs = 300) => written.length > 0 && last.every((t) => Date.now() - t > quietMs),
    total: () => written.reduce((a, b) => a + b, 0),
  };
}

/** A client socket that never reads (paused from the start). */
function lazyClient(port: number): Socket {
  const s = connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  s.pause();
  return s;
}

const rss = (): number => process.memoryUsage().rss;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

describe('writers against a reader that never reads', () => {
  it('HTTP proxy: a response body flood stops at the upstream', async () => {
    const flood = await floodUpstream('HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n');
    const hp = `flood.test:${portOf(flood.server)}`;
    const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`] });
    const rss0 = rss();
    const c = lazyClient(p.httpPort);
    c.write(`GET http://${hp}/ HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
    try {
      await waitFor(() => flood.stuck(), 'the upstream to be held back', 20_000);
      console.log(`# http: upstream wrote ${mib(flood.total())}, rss +${mib(rss() - rss0)}`);
      // Loopback socket buffers on both hops hold a few MiB each; the proxy adds at most a chunk.
      assert.ok(flood.total() < 48 * MiB, `the upstream wrote ${mib(flood.total())}`);
      assert.ok(rss() - rss0 < 64 * MiB, `rss grew by ${mib(rss() - rss0)}`);
    } finally {
      c.destroy();
      await p.close();
      await closeServer(flood.server);
    }
  });

  it('HTTP proxy: 4000 pipelined requests from a client that never reads are held back, fds bounded', async () => {
    const flood = await floodUpstream('HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n');
    const hp = `flood.test:${portOf(flood.server)}`;
    const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`], limits: { maxFds: 256 } });
    const rss0 = rss();
    const fds0 = openFds();
    const c = lazyClient(p.httpPort);
    c.write(Buffer.from(`GET http://${hp}/ HTTP/1.1\r\nHost: ${hp}\r\n\r\n`.repeat(4000)));
    try {
      // The sandbox's 256 fds: the client's and 255 upstreams (accepted as the loop gets to them).
      await waitFor(() => flood.written.length >= 255 && flood.stuck(), 'every upstream to be held back', 20_000);
      const conns = flood.written.length;
      const refused = p.records.filter((r) => r.error === 'budget: sandbox file descriptor budget (limits.maxFds) (256) reached');
      console.log(
        `# pipelined: ${conns} upstream connections, upstream wrote ${mib(flood.total())}, rss +${mib(rss() - rss0)}, fds +${openFds() - fds0}`,
      );
      // The sandbox's fd budget holds the upstream connections (the rest are 502s queued behind
      // the first response); what they wrote stops in socket buffers and 16 KiB per response.
      assert.equal(conns, 255);
      assert.ok(refused.length > 0, 'no request was refused by the fd budget');
      assert.ok(openFds() - fds0 <= 2 * 256 + 16, `fds grew by ${openFds() - fds0}`);
      assert.ok(rss() - rss0 < 128 * MiB, `rss grew by ${mib(rss() - rss0)}`);
    } finally {
      c.destroy();
      await p.close();
      await closeServer(flood.server);
    }
  });

  for (const via of ['connect', 'socks'] as const) {
    for (const relay of ['javascript', 'kernel'] as const) {
      it(`${via === 'connect' ? 'CONNECT' : 'SOCKS5'} tunnel relayed in ${relay}: an upstream flood stops at the upstream`, async () => {
        const flood = await floodUpstream('');
        const hp = `flood.test:${portOf(flood.server)}`;
        const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`] }, { kernelRelay: relay === 'kernel' });
        const rss0 = rss();
        const c = connect({ host: '127.0.0.1', port: via === 'connect' ? p.httpPort : p.socksPort });
        c.on('error', () => {});
        try {
          if (via === 'connect') {
            c.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
            await readUntil(c, '\r\n\r\n');
          } else {
            const name = Buffer.from('flood.test');
            const port = portOf(flood.server);
            c.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, name.length]), name, Buffer.from([port >> 8, port & 255])]));
            await new Promise<void>((resolve) => {
              let n = 0;
              const onData = (d: Buffer): void => {
                n += d.length;
                if (n >= 12) {
                  c.removeListener('data', onData);
                  resolve();
                }
              };
              c.on('data', onData);
            });
          }
          c.pause();
          c.write('go\n');
          await waitFor(() => flood.stuck(), 'the upstream to be held back', 20_000);
          console.log(
            `# ${via} ${relay}: upstream wrote ${mib(flood.total())}, rss +${mib(rss() - rss0)}, kernel relays ${p.proxy.kernelRelays}`,
          );
          assert.equal(p.proxy.kernelRelays, relay === 'kernel' ? 1 : 0);
          assert.ok(flood.total() < 48 * MiB, `the upstream wrote ${mib(flood.total())}`);
          assert.ok(rss() - rss0 < 64 * MiB, `rss grew by ${mib(rss() - rss0)}`);
        } finally {
          c.destroy();
          await p.close();
          await closeServer(flood.server);
        }
      });
    }
  }

  it("many tunnels that never read: the sandbox's buffered-bytes budget closes the ones past it, audited", async () => {
    const flood = await floodUpstream('');
    const hp = `flood.test:${portOf(flood.server)}`;
    // Plaintext under the guard stays in JavaScript: every byte passes through the proxy.
    const set = new PlaceholderSet([{ name: 'TOKEN', placeholder: makePlaceholder('TOKEN') }]);
    const guard: PlaintextGuard = { find: (d) => set.find(d)?.name, stream: () => set.stream(), violation: () => {} };
    const budget = 8 * MiB;
    const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`], limits: { maxBufferedBytes: budget } }, { guard });
    const rss0 = rss();
    const clients: Socket[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const c = connect({ host: '127.0.0.1', port: p.httpPort });
        c.on('error', () => {});
        clients.push(c);
        c.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
        await readUntil(c, '\r\n\r\n');
        c.pause();
        c.write('go\n');
      }
      await waitFor(() => flood.written.length === 40 && flood.stuck(), 'every upstream to be held back', 30_000);
      const over = p.records.filter((r) =>
        /^budget: sandbox buffered bytes budget \(limits\.maxBufferedBytes\) \(\d+\) reached/.test(r.budget ?? ''),
      );
      console.log(
        `# 40 tunnels: upstreams wrote ${mib(flood.total())}, rss +${mib(rss() - rss0)}, ${over.length} closed by the budget, proxy holds ${mib(p.proxy.bufferedBytes)}`,
      );
      assert.ok(p.proxy.bufferedBytes <= budget, `the proxy holds ${p.proxy.bufferedBytes} bytes`);
      assert.ok(over.length > 0, 'no tunnel reached the budget');
      assert.ok(over.every((r) => r.error === 'budget' && r.decision === 'allow'));
      assert.ok(rss() - rss0 < 160 * MiB, `rss grew by ${mib(rss() - rss0)}`);
    } finally {
      for (const c of clients) c.destroy();
      await p.close();
      await closeServer(flood.server);
    }
    await waitFor(() => p.proxy.bufferedBytes === 0, 'the budget to be given back');
  });

  it('HTTP proxy: many plain-HTTP responses to clients that never read: the buffered-bytes budget closes the ones past it, audited', async () => {
    const flood = await floodUpstream('HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n');
    const hp = `flood.test:${portOf(flood.server)}`;
    const budget = MiB;
    const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`], limits: { maxBufferedBytes: budget } });
    const clients: Socket[] = [];
    let peak = 0;
    try {
      for (let i = 0; i < 40; i++) {
        const c = lazyClient(p.httpPort);
        clients.push(c);
        c.write(`GET http://${hp}/ HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
      }
      await waitFor(
        () => {
          peak = Math.max(peak, p.proxy.bufferedBytes);
          return flood.written.length === 40 && flood.stuck();
        },
        'every upstream to be held back',
        30_000,
      );
      const over = p.records.filter((r) =>
        /^budget: sandbox buffered bytes budget \(limits\.maxBufferedBytes\) \(1048576\) reached; connection closed$/.test(r.budget ?? ''),
      );
      console.log(
        `# 40 plain-HTTP responses: upstreams wrote ${mib(flood.total())}, ${over.length} closed by the budget, proxy holds ${mib(p.proxy.bufferedBytes)} (peak seen ${mib(peak)})`,
      );
      // What Node holds for them is counted: it never passes the budget, and the connections
      // past it were closed (each queue is a read's worth, about 64 KiB: 40 of them do not fit).
      assert.ok(p.proxy.bufferedBytes > 0, 'nothing was counted');
      assert.ok(p.proxy.bufferedBytes <= budget, `the proxy holds ${p.proxy.bufferedBytes} bytes`);
      assert.ok(over.length > 0, 'no response reached the budget');
      assert.ok(over.every((r) => r.error === 'budget' && r.decision === 'allow' && r.via === 'http'));
    } finally {
      for (const c of clients) c.destroy();
      await p.close();
      await closeServer(flood.server);
    }
    await waitFor(() => p.proxy.bufferedBytes === 0 && p.proxy.fdsInUse === 0, 'the budgets to be given back');
  });

  it("credential interceptor: a flood of requests with a small maxFds opens only the upstream connections the sandbox's fd budget holds", async () => {
    const upstreamCa = await RunCa.create({ commonName: 'silent upstream CA' });
    const leaf = await upstreamCa.leaf('api.silent.test');
    // Accepts and never answers: every upstream connection stays open. No ALPN: HTTP/1.1 pool.
    let accepted = 0;
    const silent = await listen(
      tls.createServer({ key: leaf.keyPem, cert: `${leaf.certPem}\n${upstreamCa.certPem}` }, (s) => {
        accepted++;
        s.on('error', () => {});
      }),
      UPSTREAM_HOST,
    );
    const host = `api.silent.test:${portOf(silent)}`;
    const secrets = resolveSecrets([{ name: 'TOKEN', hosts: [host] }], { TOKEN: 'real-silent-token' });
    const ca = await RunCa.create();
    const logged: Record<string, unknown>[] = [];
    const logger = pino(
      new Writable({
        write(c: Buffer, _e, cb) {
          logged.push(JSON.parse(c.toString()));
          cb();
        },
      }),
    );
    const interceptor = new SecretInterceptor({ secrets, ca, upstreamCaPem: [upstreamCa.certPem], logger });
    const maxFds = 24;
    const host0 = hostBudget.fds.used;
    const p = await startProxy({ allow: [host], resolve: [`${host}:${UPSTREAM_HOST}`], limits: { maxFds } }, { interceptor });
    const s = connect({ host: '127.0.0.1', port: p.httpPort });
    s.on('error', () => {});
    let session: http2.ClientHttp2Session | undefined;
    const statuses: number[] = [];
    const kinds: string[] = [];
    const N = 60;
    try {
      s.write(`CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      await readUntil(s, '\r\n\r\n');
      const t = tls.connect({ socket: s, servername: 'api.silent.test', ca: ca.certPem, ALPNProtocols: ['h2'] });
      t.on('error', () => {});
      await once(t, 'secureConnect');
      session = http2.connect(`https://${host}`, { createConnection: () => t });
      session.on('error', () => {});
      for (let i = 0; i < N; i++) {
        const r = session.request({ ':path': `/${i}`, authorization: `Bearer ${interceptor.placeholders.TOKEN}` });
        r.on('error', () => {});
        r.on('response', (h) => {
          statuses.push(Number(h[':status']));
          kinds.push(String(h['x-stockade-error']));
        });
        r.resume();
      }
      // The client connection is one fd of the 24: the other 23 are upstream connections.
      const upstreams = maxFds - 1;
      await waitFor(() => accepted >= upstreams && statuses.length >= N - upstreams, 'the budget to be reached', 20_000);
      // A last look after a moment more: no further upstream connection comes.
      await new Promise((r) => setTimeout(r, 200));
      const refusals = logged.filter((l) => l.event === 'secret-proxy-budget');
      console.log(
        `# interceptor with maxFds ${maxFds}: ${accepted} upstream connections, ${statuses.length} refused (${refusals.length} audited), proxy fds ${p.proxy.fdsInUse}`,
      );
      assert.equal(accepted, upstreams);
      assert.equal(interceptor.upstreamSockets, upstreams);
      assert.equal(p.proxy.fdsInUse, maxFds);
      assert.deepEqual(new Set(statuses), new Set([503]));
      assert.deepEqual(new Set(kinds), new Set(['budget']));
      assert.equal(statuses.length, N - upstreams);
      assert.equal(refusals.length, N - upstreams);
      for (const r of refusals) {
        assert.equal(r.budget, `sandbox file descriptor budget (limits.maxFds) (${maxFds})`);
        assert.equal(r.host, 'api.silent.test');
        assert.match(String(r.msg), /^stockade: no upstream connection to api\.silent\.test:\d+: budget: sandbox file descriptor budget/);
      }
      // The sandbox's budget draws on the host's: it holds the same fds.
      assert.equal(hostBudget.fds.used - host0, maxFds);
    } finally {
      session?.destroy();
      s.destroy();
    }
    // The sandbox went away: every upstream socket closes and gives its fd back, once.
    await waitFor(
      () => interceptor.upstreamSockets === 0 && p.proxy.fdsInUse === 0 && hostBudget.fds.used === host0,
      () =>
        `every fd to be given back (interceptor ${interceptor.upstreamSockets}, proxy ${p.proxy.fdsInUse}, host ${hostBudget.fds.used - host0})`,
      10_000,
    );
    await interceptor.close();
    await p.close();
    await closeServer(silent);
    assert.equal(hostBudget.fds.used, host0);
  });

  it('credential interceptor: a response flood to a sandbox that never reads stops at the upstream', async () => {
    const upstreamCa = await RunCa.create({ commonName: 'flood upstream CA' });
    const leaf = await upstreamCa.leaf('api.flood.test');
    const flood = await floodUpstream(
      'HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n',
      512 * MiB,
      tls.createServer({ key: leaf.keyPem, cert: `${leaf.certPem}\n${upstreamCa.certPem}` }),
    );
    const host = `api.flood.test:${portOf(flood.server)}`;
    const secrets = resolveSecrets([{ name: 'TOKEN', hosts: [host] }], { TOKEN: 'real-flood-token' });
    const ca = await RunCa.create();
    const interceptor = new SecretInterceptor({ secrets, ca, upstreamCaPem: [upstreamCa.certPem] });
    const p = await startProxy({ allow: [host], resolve: [`${host}:${UPSTREAM_HOST}`] }, { interceptor });
    const rss0 = rss();
    const s = connect({ host: '127.0.0.1', port: p.httpPort });
    s.on('error', () => {});
    try {
      s.write(`CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      await readUntil(s, '\r\n\r\n');
      const t = tls.connect({ socket: s, servername: 'api.flood.test', ca: ca.certPem, ALPNProtocols: ['http/1.1'] });
      t.on('error', () => {});
      await once(t, 'secureConnect');
      t.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${interceptor.placeholders.TOKEN}\r\n\r\n`);
      // Read the head only, then nothing more (the TLS socket and the TCP below it stop).
      await readUntil(t, '\r\n\r\n');
      t.pause();
      s.pause();
      await waitFor(() => flood.stuck(), 'the upstream to be held back', 20_000);
      console.log(`# interceptor: upstream wrote ${mib(flood.total())}, rss +${mib(rss() - rss0)}`);
      assert.ok(flood.total() < 48 * MiB, `the upstream wrote ${mib(flood.total())}`);
      assert.ok(rss() - rss0 < 64 * MiB, `rss grew by ${mib(rss() - rss0)}`);
    } finally {
      s.destroy();
      await interceptor.close();
      await p.close();
      await closeServer(flood.server);
    }
  });

  for (const version of ['http/1.1', 'h2'] as const) {
    it(`credential interceptor: 3000 requests at once on one ${version} connection open a bounded number of upstream connections`, async () => {
      const upstreamCa = await RunCa.create({ commonName: 'silent upstream CA' });
      const leaf = await upstreamCa.leaf('api.silent.test');
      // An upstream that accepts and never answers: every request stays in flight.
      let accepted = 0;
      const silent = await listen(
        tls.createServer({ key: leaf.keyPem, cert: `${leaf.certPem}\n${upstreamCa.certPem}` }, (s) => {
          accepted++;
          s.on('error', () => {});
        }),
        UPSTREAM_HOST,
      );
      const host = `api.silent.test:${portOf(silent)}`;
      const secrets = resolveSecrets([{ name: 'TOKEN', hosts: [host] }], { TOKEN: 'real-silent-token' });
      const ca = await RunCa.create();
      const logged: string[] = [];
      const logger = pino(
        new Writable({
          write(c: Buffer, _e, cb) {
            logged.push(c.toString());
            cb();
          },
        }),
      );
      const interceptor = new SecretInterceptor({ secrets, ca, upstreamCaPem: [upstreamCa.certPem], logger });
      const p = await startProxy({ allow: [host], resolve: [`${host}:${UPSTREAM_HOST}`] }, { interceptor });
      const fds0 = openFds();
      const s = connect({ host: '127.0.0.1', port: p.httpPort });
      s.on('error', () => {});
      let session: http2.ClientHttp2Session | undefined;
      try {
        s.write(`CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        await readUntil(s, '\r\n\r\n');
        const t = tls.connect({ socket: s, servername: 'api.silent.test', ca: ca.certPem, ALPNProtocols: [version] });
        t.on('error', () => {});
        await once(t, 'secureConnect');
        const limit = version === 'h2' ? INTERCEPT_LIMITS.streams : INTERCEPT_LIMITS.pipelined;
        if (version === 'h2') {
          session = http2.connect(`https://${host}`, { createConnection: () => t });
          session.on('error', () => {});
          for (let i = 0; i < 3000; i++) session.request({ ':path': `/${i}` }).on('error', () => {});
        } else {
          const got: Buffer[] = [];
          t.on('data', (c: Buffer) => got.push(c));
          t.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`.repeat(3000));
          await waitFor(() => logged.some((l) => l.includes('"secret-proxy-budget"')), 'the budget to be audited', 10_000);
        }
        let seen = -1;
        await waitFor(
          () => {
            const stable = accepted === seen && accepted >= limit;
            seen = accepted;
            return stable;
          },
          `${limit} upstream connections`,
          20_000,
        );
        // The settle loop polls every 10 ms; a last look after a moment more.
        await new Promise((r) => setTimeout(r, 200));
        console.log(`# interceptor ${version}: ${accepted} upstream connections for 3000 requests, fds +${openFds() - fds0}`);
        assert.equal(accepted, limit);
        assert.ok(openFds() - fds0 < 2 * limit + 32, `fds grew by ${openFds() - fds0}`);
      } finally {
        session?.destroy();
        s.destroy();
        await interceptor.close();
        await p.close();
        await closeServer(silent);
      }
    });
  }

  it('MCP framing: a server flooding a client that never reads is paused, the filter holds little', async () => {
    let produced = 0;
    const line = Buffer.from(
      `${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { data: 'x'.repeat(60_000) } })}\n`,
    );
    const fromServer = new Readable({
      read() {
        if (produced >= 1024 * MiB) return void this.push(null);
        produced += line.length;
        this.push(line);
      },
    });
    let lastPull = Date.now();
    fromServer.on('data', () => {
      lastPull = Date.now();
    });
    const held: Buffer[] = [];
    // Takes one write and never completes it: a client whose stdout pipe is full.
    const toClient = new Writable({
      write(c: Buffer, _e, _cb) {
        held.push(c);
      },
    });
    const fromClient = new Readable({ read() {} });
    const toServer = new Writable({
      write(_c, _e, cb) {
        cb();
      },
    });
    const rss0 = rss();
    const filter = wireToolFilter({ fromClient, toClient, toServer, fromServer }, { tools: ['echo'] });
    filter.on('error', (err) => uncaught.push(err));
    await waitFor(() => Date.now() - lastPull > 300, 'the server side to be paused', 20_000);
    console.log(`# mcp: server produced ${mib(produced)}, client-side buffer ${mib(toClient.writableLength)}, rss +${mib(rss() - rss0)}`);
    assert.ok(fromServer.isPaused(), 'the server side is still read');
    assert.ok(produced < 8 * MiB, `the server produced ${mib(produced)}`);
    assert.ok(toClient.writableLength < 2 * MiB, `${toClient.writableLength} bytes queued for the client`);
    fromServer.destroy();
    fromClient.destroy();
  });
});
