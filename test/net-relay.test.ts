// The kernel relay (native/relay.cc, lib/net/relay.ts): once a tunnel's first bytes are checked,
// its bytes move with splice(2). These tests go through the real proxy on loopback and assert
// that the relay really took the tunnel over (EgressProxy.kernelRelays), that bytes arrive
// intact both ways with exact audit counts, that a half-close is passed on, that the idle
// timeout still applies, and that close() ends relays without leaking an fd.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { openFdCount } from './helpers';
import { closeServer, echoUpstream, listen, type ProxyFixture, portOf, readUntil, startProxy, waitFor } from './helpers/net';

const MiB = 2 ** 20;

/**
 * Reads a proxy's answer until `length(bytes)` says it is complete (its length, or -1), then
 * pauses the socket so nothing the upstream sends right after is lost; returns the bytes past it.
 */
function readAnswer(socket: Socket, length: (b: Buffer) => number): Promise<{ answer: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      got = Buffer.concat([got, c]);
      const n = length(got);
      if (n < 0) return;
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      socket.pause();
      resolve({ answer: got.subarray(0, n), rest: got.subarray(n) });
    };
    const onClose = (): void => reject(new Error(`proxy closed the connection after ${JSON.stringify(got.toString('latin1'))}`));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

interface Tunnel {
  socket: Socket;
  /** Bytes from upstream that arrived with the proxy's answer. */
  rest: Buffer;
}

/** A CONNECT tunnel through the proxy. */
async function connectTunnel(port: number, target: string): Promise<Tunnel> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  const { answer, rest } = await readAnswer(socket, (b) => {
    const end = b.indexOf('\r\n\r\n');
    return end < 0 ? -1 : end + 4;
  });
  assert.match(answer.toString('latin1'), /^HTTP\/1\.1 200 /);
  return { socket, rest };
}

/** A SOCKS5 tunnel by domain name (greeting and request in one write). */
async function socksTunnel(port: number, host: string, target: number): Promise<Tunnel> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  const name = Buffer.from(host);
  socket.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, name.length]), name, Buffer.from([target >> 8, target & 0xff])]));
  // Method choice (2 bytes), then an IPv4 reply (10 bytes).
  const { answer, rest } = await readAnswer(socket, (b) => (b.length >= 12 ? 12 : -1));
  assert.deepEqual([...answer.subarray(0, 4)], [5, 0, 5, 0]);
  return { socket, rest };
}

/**
 * An upstream that reads `size` bytes from the client (hashing them) while sending `size` random
 * bytes of its own; then it appends the SHA-256 of what it received and ends. Needs
 * allowHalfOpen: the client's FIN must not close the upstream's writing side.
 */
async function hashingUpstream(size: number): Promise<{ server: Server; sent: () => string }> {
  const sentHash = createHash('sha256');
  let sentDigest = '';
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    const got = createHash('sha256');
    let writing = true;
    let received = 0;
    const finish = (): void => {
      if (writing || received < size || sentDigest) return;
      sentDigest = sentHash.digest('hex');
      s.end(got.digest());
    };
    s.on('data', (c: Buffer) => {
      got.update(c);
      received += c.length;
      finish();
    });
    let left = size;
    const pump = (): void => {
      while (left > 0) {
        const chunk = randomBytes(Math.min(left, MiB));
        left -= chunk.length;
        sentHash.update(chunk);
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      writing = false;
      finish();
    };
    pump();
  });
  await listen(server, '127.0.0.2');
  return { server, sent: () => sentDigest };
}

/**
 * Sends `data`, then FIN unless `keepOpen`; resolves with everything received until the proxy's
 * FIN. (The JavaScript relay does not pass a half-close on: the client's FIN ends the tunnel.)
 */
function sendAndCollect({ socket, rest }: Tunnel, data: Buffer, keepOpen = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [rest];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
    socket.resume();
    if (keepOpen) socket.write(data);
    else socket.end(data);
  });
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

async function lastRecord(p: ProxyFixture, via: string) {
  await waitFor(() => p.records.some((r) => r.via === via && r.decision === 'allow'), `the ${via} audit record`, 10_000);
  return [...p.records].reverse().find((r) => r.via === via && r.decision === 'allow');
}

describe('kernel relay', () => {
  for (const [via, kernelRelay] of [
    ['connect', true],
    ['socks', true],
    ['connect', false],
  ] as const) {
    const relay = kernelRelay ? 'kernel relay' : 'JavaScript relay (kernelRelay: false)';
    it(`${via}, ${relay}: 64 MiB each way arrive intact, with exact byte counts in the audit record`, async () => {
      const size = 64 * MiB;
      const up = await hashingUpstream(size);
      const port = portOf(up.server);
      const p = await startProxy({ allow: [`bulk.test:${port}`], resolve: [`bulk.test:${port}:127.0.0.2`] }, { kernelRelay });
      const tunnel =
        via === 'connect' ? await connectTunnel(p.httpPort, `bulk.test:${port}`) : await socksTunnel(p.socksPort, 'bulk.test', port);
      const out = randomBytes(size);
      out[0] = 0; // neither a TLS record nor an HTTP method: an opaque protocol, nothing to check
      let relayed = false;
      const watch = setInterval(() => {
        relayed ||= p.proxy.kernelRelays === 1;
      }, 1);
      const back = await sendAndCollect(tunnel, out, !kernelRelay);
      clearInterval(watch);
      assert.equal(relayed, kernelRelay, 'relayed in the kernel');
      assert.equal(back.length, size + 32);
      assert.equal(sha256(back.subarray(0, size)), up.sent(), 'upstream -> client bytes differ');
      assert.equal(back.subarray(size).toString('hex'), sha256(out), 'client -> upstream bytes differ');
      const rec = await lastRecord(p, via);
      assert.deepEqual([rec?.bytesUp, rec?.bytesDown, rec?.error], [size, size + 32, undefined]);
      assert.equal(typeof rec?.durationMs, 'number');
      await waitFor(() => p.proxy.connections === 0 && p.proxy.kernelRelays === 0, 'the connection to be released');
      tunnel.socket.destroy();
      await p.close();
      await closeServer(up.server);
    });
  }

  it('half-close: the client shuts down its writing side and still receives the answer', async () => {
    const server = await listen(
      createServer({ allowHalfOpen: true }, (s) => {
        s.on('error', () => {});
        let got = '';
        s.on('data', (c: Buffer) => {
          got += c.toString();
          if (got === 'hello') s.write('ready');
        });
        // Answers only after the client's FIN, which the relay must pass on with shutdown().
        s.on('end', () => setTimeout(() => s.end(`answer to ${got}`), 100));
      }),
      '127.0.0.2',
    );
    const port = portOf(server);
    const p = await startProxy({ allow: [`half.test:${port}`], resolve: [`half.test:${port}:127.0.0.2`] });
    const tunnel = await connectTunnel(p.httpPort, `half.test:${port}`);
    const { socket } = tunnel;
    socket.write('hello');
    socket.resume();
    await readUntil(socket, 'ready');
    assert.equal(p.proxy.kernelRelays, 1);
    const answer = await sendAndCollect({ socket, rest: Buffer.alloc(0) }, Buffer.alloc(0));
    assert.equal(answer.toString(), 'answer to hello');
    const rec = await lastRecord(p, 'connect');
    assert.deepEqual([rec?.bytesUp, rec?.bytesDown, rec?.error], [5, 5 + 'answer to hello'.length, undefined]);
    await waitFor(() => socket.destroyed || socket.readableEnded, 'the tunnel to end');
    socket.destroy();
    await p.close();
    await closeServer(server);
  });

  it('idle timeout: traffic keeps a relayed tunnel open, silence closes it', async () => {
    const echo = await echoUpstream();
    const port = portOf(echo);
    const p = await startProxy({ allow: [`echo.test:${port}`], resolve: [`echo.test:${port}:127.0.0.2`], limits: { idleTimeout: 300 } });
    const { socket } = await connectTunnel(p.httpPort, `echo.test:${port}`);
    socket.resume();
    // allowHalfOpen: the client sees the relay's close as an 'end' and stays open itself.
    const closed = new Promise((r) => socket.once('end', r));
    for (let i = 0; i < 6; i++) {
      socket.write(`x${i}`);
      await readUntil(socket, `x${i}`);
      assert.equal(p.proxy.kernelRelays, 1, `still relayed after ${i * 100} ms of traffic`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const silentSince = Date.now();
    await closed;
    const silent = Date.now() - silentSince;
    assert.ok(silent >= 150 && silent < 2000, `closed after ${silent} ms of silence`);
    const rec = await lastRecord(p, 'connect');
    assert.deepEqual([rec?.error, rec?.bytesUp, rec?.bytesDown], ['idle timeout', 12, 12]);
    await waitFor(() => p.proxy.connections === 0, 'the connection to be released');
    socket.destroy();
    await p.close();
    await closeServer(echo);
  });

  it('EgressProxy.close() ends live relays and leaves no fd open', async () => {
    const fds = openFdCount();
    const echo = await echoUpstream();
    const port = portOf(echo);
    const p = await startProxy({ allow: [`echo.test:${port}`], resolve: [`echo.test:${port}:127.0.0.2`] });
    const sockets: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const { socket: s } =
        i === 1 ? await socksTunnel(p.socksPort, 'echo.test', port) : await connectTunnel(p.httpPort, `echo.test:${port}`);
      s.resume();
      s.write(`hi${i}`);
      await readUntil(s, `hi${i}`);
      sockets.push(s);
    }
    assert.equal(p.proxy.kernelRelays, 3);
    assert.equal(p.proxy.connections, 3);
    const closed = sockets.map((s) => new Promise((r) => (s.destroyed ? r(null) : s.once('close', r))));
    // Node's sockets are gone, but the clients still see their tunnels: they are the relays'.
    await p.close();
    assert.equal(p.proxy.kernelRelays, 0);
    assert.equal(p.proxy.connections, 0);
    await waitFor(() => p.records.filter((r) => r.decision === 'allow').length === 3, 'three audit records');
    for (const s of sockets) s.end();
    await Promise.all(closed);
    await closeServer(echo);
    await waitFor(() => openFdCount() === fds, `fd count back to ${fds} (now ${openFdCount()})`);
  });
});
