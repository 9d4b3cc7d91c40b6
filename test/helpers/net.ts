// Test fixtures for the egress proxy: upstream servers on 127.0.0.2 (so a transparent listener
// can take the same port on 127.0.0.1), a self-signed certificate from the openssl CLI, a proxy
// with its listeners, and small raw-socket helpers. Nothing here touches an address outside
// 127.0.0.0/8.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { EgressRecord } from '../../lib/net/connector';
import { EgressProxy, type EgressProxyExtras } from '../../lib/net/proxy';
import type { EgressOptions } from '../../lib/options';

export const UPSTREAM_HOST = '127.0.0.2';

let certCache: { key: Buffer; cert: Buffer; certPath: string } | undefined;

/** A self-signed certificate for good.test and *.good.test (openssl CLI, once per process). */
export function testCert(): { key: Buffer; cert: Buffer; certPath: string } {
  if (certCache) return certCache;
  const dir = mkdtempSync(join(tmpdir(), 'stockade-net-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '2',
      '-subj',
      '/CN=good.test',
      '-addext',
      'subjectAltName=DNS:good.test,DNS:*.good.test,DNS:other.test',
    ],
    { stdio: 'ignore' },
  );
  certCache = { key: readFileSync(keyPath), cert: readFileSync(certPath), certPath };
  return certCache;
}

const accepted = new WeakMap<Server, Set<Socket>>();

export function listen<T extends Server>(server: T, host = '127.0.0.1', port = 0): Promise<T> {
  // Remember accepted sockets so closeServer() can end a test promptly even after a failure.
  const sockets = new Set<Socket>();
  accepted.set(server, sockets);
  // For TLS servers too, 'connection' carries the raw TCP socket; destroying it ends the TLS one.
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 2048 }, () => resolve(server));
  });
}

export function portOf(server: Server): number {
  return (server.address() as { port: number }).port;
}

/** Echoes method, path, Host and body; '/ws' answers a WebSocket-style upgrade and echoes. */
export async function httpUpstream(): Promise<HttpServer> {
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      res.setHeader('content-type', 'text/plain');
      if (req.url === '/chunked') {
        res.write('part1,');
        res.end('part2');
        return;
      }
      res.end(`${req.method} ${req.url} host=${req.headers.host} te=${req.headers['transfer-encoding'] ?? '-'} body=${body}`);
    });
  });
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\n\r\n`);
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  return listen(server, UPSTREAM_HOST);
}

export async function httpsUpstream(): Promise<Server> {
  const { key, cert } = testCert();
  const server = createHttpsServer({ key, cert }, (req, res) => {
    res.end(`TLS ${req.method} ${req.url} host=${req.headers.host}`);
  });
  return listen(server, UPSTREAM_HOST);
}

export async function echoUpstream(host = UPSTREAM_HOST, port = 0): Promise<Server> {
  return listen(
    createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    }),
    host,
    port,
  );
}

export interface ProxyFixture {
  proxy: EgressProxy;
  http: Server;
  socks: Server;
  httpPort: number;
  socksPort: number;
  records: EgressRecord[];
  close(): Promise<void>;
}

export async function startProxy(options: EgressOptions, extras: EgressProxyExtras = {}): Promise<ProxyFixture> {
  const proxy = new EgressProxy(options, 'test-sandbox', undefined, extras);
  const records: EgressRecord[] = [];
  proxy.on('egress', (r) => records.push(r));
  const http = await listen(createServer());
  const socks = await listen(createServer());
  proxy.serveHttpProxy(http);
  proxy.serveSocks(socks);
  return {
    proxy,
    http,
    socks,
    httpPort: portOf(http),
    socksPort: portOf(socks),
    records,
    close: () => proxy.close(),
  };
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Connects, writes `data`, and collects everything until the peer closes (or `ms` passes). */
export function exchange(
  port: number,
  data: Buffer | string,
  ms = 3000,
  host = '127.0.0.1',
): Promise<{ data: Buffer; error?: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ data: Buffer.concat(chunks), error, timedOut: true });
    }, ms);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code;
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), error, timedOut: false });
    });
    s.on('connect', () => s.write(data));
  });
}

/** Resolves once `socket` has received at least one chunk containing `marker` (returns all so far). */
export function readUntil(socket: Socket, marker: string, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`timeout waiting for ${JSON.stringify(marker)}; got ${JSON.stringify(got)}`)), ms);
    const onData = (c: Buffer): void => {
      got += c.toString('latin1');
      if (got.includes(marker)) {
        clearTimeout(timer);
        socket.removeListener('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
  });
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

export { waitFor } from './wait';

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const socket of accepted.get(server) ?? []) socket.destroy();
  });
}

/** A DNS query message (RD set) for `name`. */
export function dnsQuery(name: string, qtype = 1, id = 0x1234): Buffer {
  const labels = name.split('.').filter(Boolean);
  const q = Buffer.alloc(12 + labels.reduce((n, l) => n + l.length + 1, 0) + 1 + 4);
  q.writeUInt16BE(id, 0);
  q.writeUInt16BE(0x0100, 2); // RD
  q.writeUInt16BE(1, 4);
  let p = 12;
  for (const l of labels) {
    q[p++] = l.length;
    q.write(l, p, 'latin1');
    p += l.length;
  }
  q[p++] = 0;
  q.writeUInt16BE(qtype, p);
  q.writeUInt16BE(1, p + 2);
  return q;
}

/**
 * Collects uncaught exceptions and unhandled rejections for the rest of this test file (instead
 * of the runner dying of them), and fails the file at its end if there were any.
 */
export function collectUncaught(): unknown[] {
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  after(() => {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
    assert.deepEqual(uncaught, []);
  });
  return uncaught;
}
