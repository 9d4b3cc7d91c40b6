// Test (and bench) stand-ins for the pieces around the interceptor: an upstream HTTPS server with
// its own test CA, and the proxy's two ways in — a CONNECT listener and a transparent listener —
// all on 127.0.0.1 only.
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as zlib from 'node:zlib';
import { RunCa } from '../../lib/secrets/ca';
import type { SecretInterceptor } from '../../lib/secrets/intercept';

export interface SeenRequest {
  method: string;
  url: string;
  httpVersion: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface Upstream {
  port: number;
  caPem: string;
  seen: SeenRequest[];
  /** Every header line and body byte the server received, including from aborted requests. */
  wire: string[];
  server: http2.Http2SecureServer | https.Server;
  close(): Promise<void>;
}

/**
 * An upstream API stand-in for `names`, with a certificate from a fresh test CA. It records every
 * request and answers:
 *   /redirect        302 to https://elsewhere.test.local/landing
 *   /trailers        (HTTP/2) 200 with trailers, like gRPC
 *   /echo-auth       200, echoing the Authorization header in a response header and the body
 *   /echo-all        302 to a Location carrying what it got (percent-encoded), a gzip body
 *                    whatever the request asked for, echoing headers, query and the decoded Basic
 *                    credentials JSON-escaped
 *   /ws (upgrade)    101, then echoes bytes back
 *   anything else    200 {"ok":true}
 * h1Only: an HTTPS/1.1-only server (no ALPN h2), to exercise the HTTP/2 to HTTP/1.1 fallback.
 */
export async function startUpstream(names: string[], opts: { h1Only?: boolean; ca?: RunCa } = {}): Promise<Upstream> {
  const ca = opts.ca ?? (await RunCa.create({ commonName: 'stockade test upstream CA' }));
  const leaf = await ca.leaf(names[0]);
  const seen: SeenRequest[] = [];
  const wire: string[] = [];
  const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    const chunks: Buffer[] = [];
    wire.push(`${req.method} ${req.url}`, ...req.rawHeaders);
    req.on('error', () => {});
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      wire.push(c.toString('latin1'));
    });
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        httpVersion: req.httpVersion,
        headers: { ...req.headers },
        body: Buffer.concat(chunks).toString(),
      });
      const r = res as http.ServerResponse;
      if (req.url === '/redirect') {
        r.writeHead(302, { location: 'https://elsewhere.test.local/landing', 'content-length': '0' });
        r.end();
      } else if (req.url === '/trailers' && res instanceof http2.Http2ServerResponse) {
        // gRPC's shape: status in trailers after the body.
        res.writeHead(200, { 'content-type': 'application/grpc' });
        res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' });
        res.end('payload');
      } else if (req.url?.startsWith('/echo-all')) {
        const auth = String(req.headers.authorization ?? '');
        const basic = /^Basic (.*)$/.exec(auth);
        const echo = {
          auth,
          token: String(req.headers['x-subscription-token'] ?? ''),
          url: req.url,
          basic: basic ? Buffer.from(basic[1], 'base64').toString() : '',
          acceptEncoding: String(req.headers['accept-encoding'] ?? ''),
        };
        const body = zlib.gzipSync(JSON.stringify(echo));
        r.writeHead(302, {
          location: `https://elsewhere.test.local/?e=${encodeURIComponent(JSON.stringify(echo))}`,
          'x-echo': auth,
          'content-encoding': 'gzip',
          'content-length': body.length,
        });
        r.end(body);
      } else if (req.url === '/echo-auth') {
        const auth = String(req.headers.authorization ?? '');
        const body = JSON.stringify({ youSent: auth });
        r.writeHead(200, { 'content-type': 'application/json', 'x-echo-auth': auth, 'content-length': Buffer.byteLength(body) });
        r.end(body);
      } else {
        const body = '{"ok":true}';
        r.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        r.end(body);
      }
    });
  };
  const tlsOpts = { key: leaf.keyPem, cert: `${leaf.certPem}\n${ca.certPem}` };
  const server = opts.h1Only ? https.createServer(tlsOpts, handler) : http2.createSecureServer({ ...tlsOpts, allowHTTP1: true }, handler);
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', httpVersion: req.httpVersion, headers: { ...req.headers }, body: '' });
    wire.push(`${req.method} ${req.url}`, ...req.rawHeaders);
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`,
    );
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    caPem: ca.certPem,
    seen,
    wire,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface ProxyStandIn {
  port: number;
  close(): Promise<void>;
}

function tunnel(client: net.Socket, port: number, head: Buffer): void {
  const up = net.connect(port, '127.0.0.1');
  up.on('error', () => client.destroy());
  client.on('error', () => up.destroy());
  if (head.length) up.write(head);
  up.pipe(client);
  client.pipe(up);
}

function closer(server: net.Server, sockets: Set<net.Socket>): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
}

/**
 * What lib/net/ does on the proxy-variable path, reduced to the seam: answer CONNECT, then hand
 * the connection to the interceptor if it wants the host, else tunnel it untouched. Every name
 * resolves to 127.0.0.1 (the resolver override of the real proxy).
 */
export async function startConnectProxy(interceptor: SecretInterceptor | null): Promise<ProxyStandIn> {
  const server = http.createServer((_req, res) => {
    res.writeHead(405);
    res.end();
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => {});
    const m = /^([^:]+):(\d+)$/.exec(req.url ?? '');
    if (!m) {
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const host = m[1];
    const port = Number(m[2]);
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (interceptor?.wants(host, port)) interceptor.handle(socket, { host, port, address: '127.0.0.1' }, head);
    else tunnel(socket, port, head);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: closer(server, sockets) };
}

/**
 * What lib/net/ does on the transparent path: a listener the sandbox's connect() lands on; the
 * first bytes (the ClientHello) are read before the connection is handed over, as the proxy must
 * read them to learn the SNI. Here the target is fixed.
 */
export async function startTransparent(interceptor: SecretInterceptor, target: { host: string; port: number }): Promise<ProxyStandIn> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.once('data', (head: Buffer) => {
      interceptor.handle(socket, { ...target, address: '127.0.0.1' }, head);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: closer(server, sockets) };
}

/** Opens a CONNECT tunnel through the stand-in proxy and returns the raw socket. */
export function connectTunnel(proxyPort: number, host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: `${host}:${port}`, agent: false });
    req.on('connect', (res, socket) => {
      if (res.statusCode !== 200) reject(new Error(`CONNECT answered ${res.statusCode}`));
      else resolve(socket);
    });
    req.on('error', reject);
    req.end();
  });
}

/** TLS over a CONNECT tunnel, as a client inside the sandbox would do it. */
export async function tlsThroughProxy(
  proxyPort: number,
  host: string,
  port: number,
  ca: string,
  alpn: string[] = ['http/1.1'],
): Promise<tls.TLSSocket> {
  const raw = await connectTunnel(proxyPort, host, port);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ socket: raw, servername: host, ca, ALPNProtocols: alpn }, () => resolve(s));
    s.on('error', reject);
  });
}
