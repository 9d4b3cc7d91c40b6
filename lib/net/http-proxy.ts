// HTTP proxy front-end: CONNECT tunnels, absolute-form requests of every method (keep-alive, each
// request on a client connection decided on its own, chunked bodies streamed), and Upgrade
// (WebSocket) passthrough. Node's HTTP parser does the parsing (llhttp: header-size limit,
// chunked decoding, smuggling checks); connections are handed to a never-listening http.Server
// with emit('connection'), because the listening sockets are created by the sandbox spawner.
//
// Node only enforces headersTimeout from a timer it starts when an http.Server listens, so the
// head deadline (slowloris defence) is enforced here per connection instead.

import type { Server as HttpServer } from 'node:http';
import { createServer, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Connector, Decision } from './connector';
import { hostOfHeader, safeName } from './connector';
import { HOP_BY_HOP } from './headers';
import { HostError, splitHostPort } from './hostname';

function denialBody(host: string, port: number, rule: string): string {
  return `stockade: egress to ${host}:${port} denied: ${rule}\n`;
}

function rawResponse(status: number, reason: string, body: string, extra: Record<string, string> = {}): string {
  const headers = {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    Connection: 'close',
    ...extra,
  };
  return `HTTP/1.1 ${status} ${reason}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n${body}`;
}

/** Keeps printable ASCII only, so a rule or host text can never split or break a header. */
function headerSafe(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

/** Parses an absolute-form http:// target. Throws HostError / Error naming the problem. */
function parseAbsoluteTarget(url: string): { authority: string; host: string; port: number; path: string } {
  if (/^https:\/\//i.test(url)) throw new Error(`https:// targets must use CONNECT: ${url}`);
  if (!/^http:\/\//i.test(url)) {
    throw new Error(`not a proxy request: expected an absolute http:// URL or CONNECT, got ${JSON.stringify(url.slice(0, 200))}`);
  }
  const rest = url.slice(7);
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  let path = end < 0 ? '/' : rest.slice(end);
  if (path.startsWith('?')) path = `/${path}`;
  path = path.replace(/#.*$/, '');
  if (authority.includes('@')) throw new Error(`credentials in the URL are not forwarded: ${JSON.stringify(authority)}`);
  const { host, port } = splitHostPort(authority);
  return { authority, host, port: port ?? 80, path };
}

export class HttpProxy {
  readonly server: HttpServer;

  constructor(private readonly connector: Connector) {
    const limits = connector.limits;
    this.server = createServer({ maxHeaderSize: limits.maxHeaderSize, keepAliveTimeout: limits.idleTimeout });
    this.server.timeout = limits.idleTimeout;
    // Every handler is fenced: whatever a sandbox or an upstream sends, an exception (or a
    // rejected promise) closes that one connection with an audit record, never the process.
    this.server.on('request', (req, res) => connector.fence(this.onRequest(req, res), req.socket, 'http'));
    this.server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      connector.fence(this.onConnect(req, socket, head), socket, 'connect'),
    );
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      connector.fence(this.onUpgrade(req, socket, head), socket, 'http'),
    );
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (socket.writable && !socket.destroyed) {
        const oversized = err.code === 'HPE_HEADER_OVERFLOW';
        socket.end(
          oversized
            ? rawResponse(431, 'Request Header Fields Too Large', `stockade: request head larger than ${limits.maxHeaderSize} bytes\n`)
            : rawResponse(400, 'Bad Request', `stockade: malformed request (${err.code ?? err.message})\n`),
        );
      }
      socket.destroy();
    });
  }

  /** Serves one accepted client connection. */
  accept(socket: Socket): void {
    this.armHeadDeadline(socket);
    this.server.emit('connection', socket);
  }

  private armHeadDeadline(socket: Socket): void {
    const s = socket as Socket & { stockadeHeadTimer?: NodeJS.Timeout };
    clearTimeout(s.stockadeHeadTimer);
    s.stockadeHeadTimer = setTimeout(() => {
      if (!socket.destroyed) {
        socket.end(
          rawResponse(408, 'Request Timeout', `stockade: request head not received within ${this.connector.limits.headersTimeout} ms\n`),
        );
        socket.destroy();
      }
    }, this.connector.limits.headersTimeout);
    s.stockadeHeadTimer.unref();
    socket.once('close', () => clearTimeout(s.stockadeHeadTimer));
  }

  private gotHead(socket: Socket): void {
    clearTimeout((socket as Socket & { stockadeHeadTimer?: NodeJS.Timeout }).stockadeHeadTimer);
  }

  /** Refuses a request whose Host header names another host than its target (domain fronting). */
  private hostHeaderProblem(req: IncomingMessage, target: string): string | undefined {
    let count = 0;
    for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i].toLowerCase() === 'host') count++;
    if (count > 1) return 'refused: more than one Host header';
    const header = req.headers.host;
    if (header === undefined) return undefined;
    if (safeName(hostOfHeader(header)) !== safeName(target)) {
      return `host-mismatch: Host header ${JSON.stringify(header)} does not match target ${target}`;
    }
    return undefined;
  }

  private deny(res: ServerResponse, status: number, host: string, port: number, rule: string): void {
    const body = status === 403 ? denialBody(host, port, rule) : `stockade: ${rule}\n`;
    try {
      res.writeHead(status, {
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': Buffer.byteLength(body),
        'X-Stockade-Rule': headerSafe(rule),
      });
    } catch {
      // Headers already sent (a failure mid-response): all that is left is to cut it.
      res.destroy();
      return;
    }
    res.end(body);
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const socket = req.socket;
    this.gotHead(socket);
    res.once('finish', () => {
      if (!socket.destroyed) this.armHeadDeadline(socket);
    });
    let target: ReturnType<typeof parseAbsoluteTarget>;
    try {
      target = parseAbsoluteTarget(req.url ?? '');
    } catch (err) {
      const rule = (err as Error).message;
      if (err instanceof HostError) {
        this.connector.audit({ via: 'http', host: err.input, port: 80, decision: 'deny', rule, durationMs: 0 });
        return this.deny(res, 403, err.input, 80, rule);
      }
      return this.deny(res, 400, '', 0, rule);
    }
    const d = await this.decideRequest(req, target, started);
    if (!d.allowed) {
      req.resume();
      return this.deny(res, d.status, d.host, d.port, d.rule);
    }
    let upstream: Socket;
    try {
      upstream = await this.connector.connect(d);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.connector.auditAllowed('http', d, started, { error: code });
      req.resume();
      return this.deny(res, 502, d.host, d.port, `upstream ${d.host}:${d.port} (${d.address}) failed: ${code}`);
    }
    this.relay(req, res, d, target, upstream, started);
  }

  private relay(
    req: IncomingMessage,
    res: ServerResponse,
    d: Extract<Decision, { allowed: true }>,
    target: ReturnType<typeof parseAbsoluteTarget>,
    upstream: Socket,
    started: number,
  ): void {
    let bytesUp = 0;
    let bytesDown = 0;
    let error: string | undefined;
    let audited = false;
    const audit = (): void => {
      if (audited) return;
      audited = true;
      upstream.destroy();
      this.connector.auditAllowed('http', d, started, { bytesUp, bytesDown, ...(error ? { error } : {}) });
    };
    const guard = this.connector.guard;
    const headers = forwardHeaders(req.rawHeaders, req.headers.connection);
    headers.host = req.headers.host ?? target.authority;
    const upReq = httpRequest({
      method: req.method,
      path: target.path,
      headers,
      setHost: false,
      createConnection: () => upstream,
    });
    upstream.setTimeout(this.connector.limits.idleTimeout, () => {
      error = 'idle timeout';
      upReq.destroy(new Error('idle timeout'));
    });
    if (guard) {
      // The body is plaintext too: scanned before each chunk goes on.
      const scanner = guard.stream();
      req.on('data', (c: Buffer) => {
        const { forward, match } = scanner.push(c);
        if (match) {
          const rule = `placeholder of secret ${match.name} sent in plaintext to ${d.host}:${d.port}`;
          guard.violation({ secret: match.name, host: d.host, port: d.port, via: 'http' });
          error = rule;
          upReq.destroy();
          if (!res.headersSent) this.deny(res, 403, d.host, d.port, rule);
          else res.destroy();
          req.resume();
          return;
        }
        bytesUp += forward.length;
        if (!upReq.write(forward)) {
          req.pause();
          upReq.once('drain', () => req.resume());
        }
      });
      req.on('end', () => upReq.end(scanner.end()));
    } else {
      req.on('data', (c: Buffer) => {
        bytesUp += c.length;
      });
      req.pipe(upReq);
    }
    upReq.on('response', (upRes) => {
      const out: OutgoingHttpHeaders = forwardHeaders(upRes.rawHeaders, upRes.headers.connection);
      try {
        // Throws on what llhttp lets through but a response may not carry: a status outside
        // 100-999 (`HTTP/1.1 000`), a reason phrase or header Node refuses to write.
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, out);
      } catch (err) {
        error = `malformed upstream response: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
        upRes.destroy();
        // writeHead() kept the reason phrase it refused; the 502 gets its own.
        res.statusMessage = '';
        this.deny(res, 502, d.host, d.port, `upstream ${d.host}:${d.port} (${d.address}) sent a ${error}`);
        audit();
        return;
      }
      upRes.on('data', (c: Buffer) => {
        bytesDown += c.length;
      });
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    upReq.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
      if (!res.headersSent) this.deny(res, 502, d.host, d.port, `upstream ${d.host}:${d.port} (${d.address}) failed: ${error}`);
      else res.destroy();
      audit();
    });
    res.once('close', audit);
  }

  /**
   * The decision for a plain-HTTP request, ordinary or Upgrade: a placeholder in its request line
   * or headers is refused before anything else, whatever the host (no lookup, no connection);
   * then Host must agree with the target (no fronting); then the allowlist. Denials are audited.
   */
  private async decideRequest(req: IncomingMessage, target: { host: string; port: number }, started: number): Promise<Decision> {
    const leaked = this.connector.guard?.find(`${req.url}\n${req.rawHeaders.join('\n')}`);
    let d: Decision;
    if (leaked) {
      const rule = `placeholder of secret ${leaked} sent in plaintext to ${target.host}:${target.port}`;
      this.connector.guard?.violation({ secret: leaked, host: target.host, port: target.port, via: 'http' });
      d = { allowed: false, host: target.host, port: target.port, rule, status: 403 };
    } else {
      const fronting = this.hostHeaderProblem(req, target.host);
      d = fronting
        ? { allowed: false, host: target.host, port: target.port, rule: fronting, status: 403 }
        : await this.connector.decide(target.host, target.port);
    }
    if (!d.allowed) this.connector.auditDenied('http', d, started);
    return d;
  }

  private async onConnect(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const started = Date.now();
    this.gotHead(socket);
    socket.on('error', () => {});
    const refuse = (status: number, reason: string, body: string, rule: string): void => {
      if (!socket.destroyed) socket.end(rawResponse(status, reason, body, { 'X-Stockade-Rule': headerSafe(rule) }));
    };
    let host: string;
    let port: number | undefined;
    try {
      ({ host, port } = splitHostPort(req.url ?? ''));
      if (port === undefined) throw new HostError(req.url ?? '', 'CONNECT target needs a port');
    } catch (err) {
      const rule = (err as Error).message;
      this.connector.audit({ via: 'connect', host: req.url ?? '', port: 0, decision: 'deny', rule, durationMs: 0 });
      return refuse(400, 'Bad Request', `stockade: ${rule}\n`, rule);
    }
    const fronting = this.hostHeaderProblem(req, host);
    const d: Decision = fronting ? { allowed: false, host, port, rule: fronting, status: 403 } : await this.connector.decide(host, port);
    if (!d.allowed) {
      this.connector.auditDenied('connect', d, started);
      return d.status === 403
        ? refuse(403, 'Forbidden', denialBody(d.host, d.port, d.rule), d.rule)
        : refuse(502, 'Bad Gateway', `stockade: ${d.rule}\n`, d.rule);
    }
    await this.connector.forward('connect', socket, d, head, started, {
      inspect: true,
      ready: () => socket.write('HTTP/1.1 200 Connection Established\r\n\r\n'),
      failed: (err) => {
        const code = (err as NodeJS.ErrnoException).code ?? err.message;
        const rule = `upstream ${d.host}:${d.port} (${d.address}) failed: ${code}`;
        refuse(502, 'Bad Gateway', `stockade: ${rule}\n`, rule);
      },
    });
  }

  private async onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const started = Date.now();
    this.gotHead(socket);
    socket.on('error', () => {});
    const refuse = (status: number, reason: string, body: string, rule: string): void => {
      if (!socket.destroyed) socket.end(rawResponse(status, reason, body, { 'X-Stockade-Rule': headerSafe(rule) }));
    };
    let target: ReturnType<typeof parseAbsoluteTarget>;
    try {
      target = parseAbsoluteTarget(req.url ?? '');
    } catch (err) {
      const rule = (err as Error).message;
      return refuse(400, 'Bad Request', `stockade: ${rule}\n`, rule);
    }
    const d = await this.decideRequest(req, target, started);
    if (!d.allowed) {
      return d.status === 403
        ? refuse(403, 'Forbidden', denialBody(d.host, d.port, d.rule), d.rule)
        : refuse(502, 'Bad Gateway', `stockade: ${d.rule}\n`, d.rule);
    }
    // The upgrade request is replayed in origin-form, hop-by-hop proxy fields removed but the
    // Connection/Upgrade pair kept: it is what asks the origin to switch protocols.
    const lines = [`${req.method} ${target.path} HTTP/1.1`];
    let sawHost = false;
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i].toLowerCase();
      if (name.startsWith('proxy-')) continue;
      if (name === 'host') sawHost = true;
      lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    }
    if (!sawHost) lines.push(`Host: ${target.authority}`);
    const replay = Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]);
    await this.connector.forward('http', socket, d, replay, started, {
      inspect: false,
      ready: () => {},
      failed: (err) => {
        const code = (err as NodeJS.ErrnoException).code ?? err.message;
        const rule = `upstream ${d.host}:${d.port} (${d.address}) failed: ${code}`;
        refuse(502, 'Bad Gateway', `stockade: ${rule}\n`, rule);
      },
    });
  }
}

/** Headers to forward: hop-by-hop ones and those named in Connection removed, repeats kept. */
function forwardHeaders(raw: string[], connection: string | undefined): OutgoingHttpHeaders {
  const drop = new Set(HOP_BY_HOP);
  for (const token of (connection ?? '').split(',')) if (token.trim()) drop.add(token.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const lower = name.toLowerCase();
    if (drop.has(lower) || lower === 'host') continue;
    const prev = out[name];
    out[name] = prev === undefined ? raw[i + 1] : Array.isArray(prev) ? [...prev, raw[i + 1]] : [prev, raw[i + 1]];
  }
  return out;
}
