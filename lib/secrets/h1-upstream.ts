// HTTP/1.1 to upstream servers over pooled TLS connections, without node's client machinery
// (ClientRequest, Agent, IncomingMessage cost as much per request as the rest of the interceptor
// together): the request head is written as one string, the response read by ./h1-response.ts.
// One exchange at a time per connection, never pipelined; a connection goes back to the pool only
// after a complete response to a completely sent request, and is closed on anything else.
// Pool limits as node's agent had them here: all connections of the pool (busy and idle) at most
// `maxSockets`, further requests wait in order; at most `maxIdle` idle connections per target.
import { EventEmitter } from 'node:events';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { Readable } from 'node:stream';
import type * as tls from 'node:tls';
import { ResponseError, ResponseParser, type ResponseSink } from './h1-response';
import type { HeaderPairs, InterceptTarget } from './rewrite';

/** How the request body goes upstream: none, exactly `length` bytes, or chunked. */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' };

export interface H1Response {
  status: number;
  pairs: HeaderPairs;
  body: Readable;
}

// What node's ClientRequest refuses in a path (ERR_UNESCAPED_CHARACTERS) and a method (a token).
const BAD_PATH = /[^\u0021-\u00ff]/;
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/**
 * The request head: request line, Host, the headers (names and values checked as node's client
 * checks them: no CR, LF or other control character can start a second request), framing.
 */
export function requestHead(method: string, path: string, authority: string, headers: HeaderPairs, framing: BodyFraming): string {
  if (!METHOD.test(method)) throw Object.assign(new TypeError('Method must be a valid HTTP token'), { code: 'ERR_INVALID_HTTP_TOKEN' });
  if (BAD_PATH.test(path))
    throw Object.assign(new TypeError('Request path contains unescaped characters'), { code: 'ERR_UNESCAPED_CHARACTERS' });
  validateHeaderValue('host', authority);
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${authority}\r\n`;
  let cookie: string | undefined;
  for (const [k, v] of headers) {
    validateHeaderName(k);
    validateHeaderValue(k, v);
    const l = k.toLowerCase();
    if (l === 'content-length') continue;
    // Cookies are one field upstream, as node's client joined them (RFC 6265 5.4).
    if (l === 'cookie') cookie = cookie === undefined ? v : `${cookie}; ${v}`;
    else head += `${k}: ${v}\r\n`;
  }
  if (cookie !== undefined) head += `cookie: ${cookie}\r\n`;
  if (framing.kind === 'length') head += `content-length: ${framing.length}\r\n`;
  if (framing.kind === 'chunked') head += 'transfer-encoding: chunked\r\n';
  return `${head}connection: keep-alive\r\n\r\n`;
}

interface Conn {
  socket: tls.TLSSocket;
  key: string;
  current: H1Exchange | null;
}

/**
 * One request and its response. Emits 'response' (H1Response) once, 'error' at most once, and
 * 'drain' after a write() that returned false. Writes after the end or after a failure are dropped.
 */
export class H1Exchange extends EventEmitter {
  destroyed = false;
  private conn: Conn | null = null;
  /** The request head until it is written (with the first body bytes, or at the end). */
  private pendingHead: string | null;
  private queued: Buffer[] = [];
  private sent = 0;
  private requestDone = false;
  private responseDone = false;
  private reusable = false;
  private body: Readable | null = null;
  private readonly parser: ResponseParser;

  constructor(
    private readonly pool: H1Pool,
    method: string,
    head: string,
    private readonly framing: BodyFraming,
  ) {
    super();
    this.pendingHead = head;
    const sink: ResponseSink = {
      head: (status, pairs) => this.onHead(status, pairs),
      body: (chunk) => this.onBody(chunk),
      end: (reusable) => this.onEnd(reusable),
    };
    this.parser = new ResponseParser(method, sink);
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.requestDone) return true;
    if (chunk.length === 0) return true;
    this.sent += chunk.length;
    if (this.framing.kind === 'length' && this.sent > this.framing.length) {
      this.destroy(new ResponseError('request body longer than its content-length'));
      return true;
    }
    if (this.framing.kind === 'none') {
      this.destroy(new ResponseError('request body without framing'));
      return true;
    }
    const framed =
      this.framing.kind === 'chunked' ? [Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')] : [chunk];
    if (!this.conn) {
      // Waiting for a connection: held (one chunk per write() that returned false), not read on.
      this.queued.push(...framed);
      return false;
    }
    return this.send(framed);
  }

  end(chunk?: Buffer): void {
    if (chunk?.length) this.write(chunk);
    if (this.destroyed || this.requestDone) return;
    if (this.responseDone) {
      // The whole body was out (requestSent) when the response ended; its connection moved on.
      this.requestDone = true;
      return;
    }
    if (this.framing.kind === 'length' && this.sent !== this.framing.length) {
      this.destroy(new ResponseError('request body shorter than its content-length'));
      return;
    }
    this.requestDone = true;
    const last = this.framing.kind === 'chunked' ? [LAST_CHUNK] : [];
    if (!this.conn) this.queued.push(...last);
    else this.send(last);
  }

  /** Fails the exchange (an 'error', as node's client emits one) and closes its connection. */
  destroy(err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const conn = this.conn;
    this.conn = null;
    if (conn) {
      conn.current = null;
      conn.socket.destroy();
    } else this.pool.forget(this);
    this.body?.destroy();
    this.emit('error', err ?? Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
  }

  /** Called by the pool: the connection this exchange runs on. */
  attach(conn: Conn): void {
    if (this.destroyed) {
      this.pool.release(conn, true);
      return;
    }
    this.conn = conn;
    conn.current = this;
    conn.socket.resume();
    const queued = this.queued;
    this.queued = [];
    // Before the first write, or the end of a body-less request, nothing was sent: wait for it.
    if ((queued.length > 0 || this.requestDone) && !this.send(queued)) return;
    this.emit('drain');
  }

  onData(data: Buffer): void {
    try {
      this.parser.push(data);
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  onEof(): void {
    try {
      this.parser.eof();
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  // ---- what the parser found ----

  private onHead(status: number, pairs: HeaderPairs): void {
    this.body = new Readable({ read: () => this.conn?.socket.resume() });
    this.emit('response', { status, pairs, body: this.body } satisfies H1Response);
  }

  private onBody(chunk: Buffer): void {
    if (this.body && !this.body.push(chunk)) this.conn?.socket.pause();
  }

  private onEnd(reusable: boolean): void {
    this.responseDone = true;
    this.reusable = reusable;
    this.body?.push(null);
    // A response that came before the request was sent whole (an early 413, say): this
    // connection is in the middle of a request and cannot carry another.
    if (!this.requestSent) this.reusable = false;
    this.release();
  }

  /** Every byte of the request is written: its end, or as many body bytes as its length says. */
  private get requestSent(): boolean {
    return this.requestDone || (this.framing.kind === 'length' && this.sent === this.framing.length && this.pendingHead === null);
  }

  private release(): void {
    const conn = this.conn;
    if (!conn) return;
    this.conn = null;
    conn.current = null;
    this.pool.release(conn, this.reusable);
  }

  /** Writes the head (once) and `parts` as one batch; false when the socket asks to wait. */
  private send(parts: Buffer[]): boolean {
    const socket = (this.conn as Conn).socket;
    socket.cork();
    if (this.pendingHead !== null) {
      socket.write(this.pendingHead, 'latin1');
      this.pendingHead = null;
    }
    let ok = true;
    for (const p of parts) ok = socket.write(p);
    socket.uncork();
    if (!ok) socket.once('drain', () => this.emit('drain'));
    return ok;
  }
}

export class H1Pool {
  private readonly idle = new Map<string, Conn[]>();
  private readonly all = new Set<Conn>();
  private readonly waiting: { target: InterceptTarget; key: string; x: H1Exchange }[] = [];

  constructor(
    /** Opens a connection (charged to the fd budgets); throws BudgetError when they are full. */
    private readonly connect: (target: InterceptTarget, key: string) => tls.TLSSocket,
    private readonly maxSockets: number,
    private readonly maxIdle: number,
  ) {}

  /** Starts an exchange; its connection is an idle one, a new one, or the next one free. */
  request(target: InterceptTarget, key: string, method: string, head: string, framing: BodyFraming): H1Exchange {
    const x = new H1Exchange(this, method, head, framing);
    this.assign(target, key, x);
    return x;
  }

  /** Takes a waiting exchange out of the queue (it was destroyed before it got a connection). */
  forget(x: H1Exchange): void {
    const i = this.waiting.findIndex((w) => w.x === x);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  /** An exchange is over: its connection is kept for the next request, or closed. */
  release(conn: Conn, reusable: boolean): void {
    const socket = conn.socket;
    if (!reusable || socket.destroyed || !socket.writable) {
      socket.destroy();
      return;
    }
    const w = this.waiting.findIndex((q) => q.key === conn.key);
    if (w >= 0) {
      const [next] = this.waiting.splice(w, 1);
      next.x.attach(conn);
      return;
    }
    const list = this.idle.get(conn.key) ?? [];
    // Idle connections count toward maxSockets: one is closed for a request to another target.
    if (this.waiting.length > 0 || list.length >= this.maxIdle) {
      socket.destroy();
      return;
    }
    socket.resume();
    list.push(conn);
    this.idle.set(conn.key, list);
  }

  /** Closes every connection; waiting exchanges fail. */
  close(): void {
    for (const w of this.waiting.splice(0)) w.x.destroy();
    for (const c of this.all) c.socket.destroy();
    this.idle.clear();
  }

  private assign(target: InterceptTarget, key: string, x: H1Exchange): void {
    // Most recently used first: it is the one least likely to have been closed by the server.
    const idle = this.idle.get(key)?.pop();
    if (idle) {
      x.attach(idle);
      return;
    }
    if (this.all.size >= this.maxSockets) {
      this.waiting.push({ target, key, x });
      return;
    }
    let socket: tls.TLSSocket;
    try {
      socket = this.connect(target, key);
    } catch (err) {
      // After the caller has attached its listeners.
      process.nextTick(() => x.destroy(err as Error));
      return;
    }
    const conn: Conn = { socket, key, current: null };
    this.all.add(conn);
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      if (conn.current) conn.current.onData(d);
      else socket.destroy(); // bytes on an idle connection: nothing asked for them
    });
    socket.on('end', () => {
      if (conn.current) conn.current.onEof();
      socket.destroy();
    });
    socket.on('error', (err) => conn.current?.destroy(err));
    socket.on('close', () => {
      this.all.delete(conn);
      const list = this.idle.get(key);
      const i = list ? list.indexOf(conn) : -1;
      if (list && i >= 0) list.splice(i, 1);
      if (list?.length === 0) this.idle.delete(key);
      conn.current?.destroy();
      this.dispatch();
    });
    x.attach(conn);
  }

  /** A connection closed: the first waiting exchange may open one. */
  private dispatch(): void {
    if (this.all.size >= this.maxSockets) return;
    const next = this.waiting.shift();
    if (next) this.assign(next.target, next.key, next.x);
  }
}
