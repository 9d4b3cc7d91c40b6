// Load: 1,000 concurrent tunnels through one proxy, and 1,000 across 20 proxies (one per
// sandbox), all served; every fd the proxies opened is closed again afterwards (/proc/self/fd).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { closeServer, echoUpstream, openFds, type ProxyFixture, portOf, startProxy, waitFor } from './helpers/net';

let echo: Server;
let EP = 0;

before(async () => {
  echo = await echoUpstream();
  EP = portOf(echo);
});
after(() => closeServer(echo));

/** Opens a tunnel (CONNECT or SOCKS5) and round-trips a payload; resolves with the open socket. */
function tunnel(fx: ProxyFixture, kind: 'connect' | 'socks', payload: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: kind === 'connect' ? fx.httpPort : fx.socksPort });
    let buf = '';
    let stage = 0;
    const timer = setTimeout(() => reject(new Error(`${kind} tunnel stuck at stage ${stage}: ${JSON.stringify(buf)}`)), 20_000);
    s.on('error', reject);
    s.on('connect', () => {
      if (kind === 'connect') s.write(`CONNECT echo.test:${EP} HTTP/1.1\r\nHost: echo.test:${EP}\r\n\r\n`);
      else s.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, 9]), Buffer.from('echo.test'), Buffer.from([EP >> 8, EP & 0xff])]));
    });
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      if (stage === 0) {
        const ready =
          kind === 'connect' ? buf.indexOf('\r\n\r\n') >= 0 && buf.startsWith('HTTP/1.1 200') : buf.length >= 12 && buf.charCodeAt(3) === 0;
        if (!ready) return;
        buf = '';
        stage = 1;
        s.write(payload);
      } else if (buf === payload) {
        clearTimeout(timer);
        s.removeAllListeners('data');
        resolve(s);
      }
    });
  });
}

async function fixture(): Promise<ProxyFixture> {
  return startProxy({ allow: [`echo.test:${EP}`], resolve: [`echo.test:${EP}:127.0.0.2`] });
}

describe('load', () => {
  it('1,000 concurrent CONNECT tunnels through one proxy, no fd growth after close', async () => {
    // Warm up once so lazily created process fds (timers, DNS threads) are in the baseline.
    const warm = await fixture();
    const w = await tunnel(warm, 'connect', 'warm');
    const closed = once(w, 'close');
    w.destroy();
    await closed;
    await waitFor(() => warm.proxy.connections === 0, 'the warm-up connection closed');
    await warm.close();
    const baseline = openFds();

    const fx = await fixture();
    const sockets = await Promise.all(Array.from({ length: 1000 }, (_, i) => tunnel(fx, 'connect', `payload-${i}`)));
    assert.equal(sockets.length, 1000);
    assert.equal(fx.proxy.connections, 1000);
    for (const s of sockets) s.destroy();
    await waitFor(() => fx.proxy.connections === 0, 'all client connections closed', 10_000);
    await waitFor(() => fx.records.filter((r) => r.decision === 'allow').length === 1000, '1000 audit records', 10_000);
    await fx.close();
    await waitFor(() => openFds() <= baseline, `fds back to ${baseline} (now ${openFds()})`, 10_000);
  });

  it('1,000 concurrent tunnels across 20 proxies (CONNECT and SOCKS5), all freed by close()', async () => {
    const baseline = openFds();
    const proxies = await Promise.all(Array.from({ length: 20 }, fixture));
    const sockets = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => tunnel(proxies[i % 20], i % 2 ? 'socks' : 'connect', `p${i % 20}-${i}`)),
    );
    assert.equal(sockets.length, 1000);
    assert.deepEqual(new Set(proxies.map((p) => p.proxy.connections)), new Set([50]));
    // close() with the tunnels still open: it must destroy them all.
    const closed = Promise.all(sockets.map((s) => new Promise((r) => s.once('close', r))));
    await Promise.all(proxies.map((p) => p.close()));
    await closed;
    await waitFor(() => openFds() <= baseline, `fds back to ${baseline} (now ${openFds()})`, 10_000);
  });
});
