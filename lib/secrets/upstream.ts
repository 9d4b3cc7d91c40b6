// The upstream side of credential injection: one verified TLS context for upstream servers
// (system and Node roots plus --upstream-ca), a pool of keep-alive HTTP/1.1 connections
// (./h1-upstream.ts), and one shared HTTP/2 session per target (or the note that the target only
// speaks HTTP/1.1).
import http2 = require('node:http2');
import https = require('node:https');
import tls = require('node:tls');

import type * as http from 'node:http';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { Budget, hostBudget } from '../net/budget';
import { type BodyFraming, type H1Exchange, H1Pool, requestHead } from './h1-upstream';
import type { InterceptTarget, UpstreamRequest } from './rewrite';

/** An upstream failure with the status the sandbox gets (502, 504) and an error kind. */
export class UpstreamError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * No upstream connection could be opened because a file descriptor budget is full: a 503 to the
 * sandbox, audited as 'secret-proxy-budget' with the budget's name.
 */
export class BudgetError extends UpstreamError {
  constructor(
    readonly budget: string,
    message: string,
  ) {
    super(503, 'budget', message);
  }
}

/** Upstream connections of one interceptor in all (INTERCEPT_LIMITS.upstreamSockets). */
export const UPSTREAM_SOCKETS = 256;
const UPSTREAM_BUDGET_NAME = `interceptor upstream connection budget (${UPSTREAM_SOCKETS})`;

/**
 * An https.Agent whose every socket is charged to the pool's fd budget before it is opened, and
 * given back when it closes. Node's Agent calls createConnection(options, oncreate) and waits
 * for oncreate when nothing is returned: a refusal goes there as the request's 'error'.
 */
class BudgetedAgent extends https.Agent {
  constructor(
    options: https.AgentOptions,
    private readonly pool: UpstreamPool,
  ) {
    super(options);
  }

  override createConnection(
    options: http.RequestOptions,
    oncreate?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    let release: () => void;
    try {
      release = this.pool.charge((options as tls.ConnectionOptions).servername ?? options.host ?? '', Number(options.port));
    } catch (err) {
      // Agent.createSocket passes oncreate always; it turns the error into the request's 'error'.
      oncreate?.(err as Error, undefined as unknown as Duplex);
      return undefined;
    }
    let socket: Duplex | null | undefined;
    try {
      socket = super.createConnection(options);
    } catch (err) {
      // tls.connect throws on options it cannot use: that request fails, nothing escapes.
      release();
      oncreate?.(err as Error, undefined as unknown as Duplex);
      return undefined;
    }
    if (!socket) {
      release();
      return socket;
    }
    socket.once('close', release);
    return socket;
  }
}

export function targetKey(t: InterceptTarget): string {
  return `${t.host.toLowerCase()}\0${t.port}\0${t.address}`;
}

/** Entries kept per target in UpstreamPool's caches before they start over. */
const PER_TARGET_MAX = 256;

export class UpstreamPool {
  // UPSTREAM_SOCKETS: a sandbox's requests may not open upstream connections without end (each
  // is an fd of the launcher); those past it wait for a free connection (see INTERCEPT_LIMITS).
  private readonly h1 = new H1Pool((target, key) => this.connectH1(target, key), UPSTREAM_SOCKETS, 16);
  /**
   * The last TLS session of each target's HTTP/1.1 connections: the next one resumes it. Both
   * per-target maps are bounded like the authority memo (rewrite.ts): a wildcard grant lets the
   * sandbox name targets without end.
   */
  private readonly tlsSessions = new Map<string, Buffer>();
  /** For WebSocket and other upgrades: one connection per request, never pooled, charged the same. */
  readonly oneShot: https.Agent = new BudgetedAgent({ keepAlive: false }, this);
  /**
   * Every upstream socket (pooled HTTP/1.1, HTTP/2 sessions and their ALPN probes, upgrades)
   * takes one fd from here: UPSTREAM_SOCKETS for the interceptor, drawn from the sandbox's fd
   * budget (limits.maxFds, set by useFdBudget when the sandbox's proxy is made) and through it
   * from the host's. Alone (no proxy yet), it draws from the host budget directly.
   */
  private fds = new Budget(UPSTREAM_BUDGET_NAME, () => UPSTREAM_SOCKETS, hostBudget.fds);
  private readonly sessions = new Map<string, Promise<http2.ClientHttp2Session | null>>();
  private readonly h1Only = new Set<string>();

  private context?: tls.SecureContext;

  /** `upstreamContext` makes the roots upstream servers are verified against, at the first connection. */
  constructor(
    private readonly upstreamContext: () => tls.SecureContext,
    private readonly upstreamTimeout: number,
    private readonly onSessionError: (target: InterceptTarget, err: Error) => void,
  ) {}

  /** Makes upstream sockets draw from `sandbox` (the proxy's fd budget) from now on. */
  useFdBudget(sandbox: Budget): void {
    // Sockets charged before keep the budget they were charged to (their release holds it).
    this.fds = new Budget(UPSTREAM_BUDGET_NAME, () => UPSTREAM_SOCKETS, sandbox);
  }

  /** Upstream sockets open now (charged and not yet closed). */
  get socketsInUse(): number {
    return this.fds.used;
  }

  /**
   * Takes one fd for an upstream socket about to be opened to host:port; returns the release,
   * which gives it back once however often it is called. Throws a BudgetError when a budget
   * (the interceptor's, the sandbox's, the host's) is full.
   */
  charge(host: string, port: number): () => void {
    const fds = this.fds;
    if (!fds.take(1)) {
      const which = fds.refusal(1) ?? fds.name;
      throw new BudgetError(which, `stockade: no upstream connection to ${host}:${port}: budget: ${which} reached`);
    }
    let given = false;
    return () => {
      if (given) return;
      given = true;
      fds.give(1);
    };
  }

  /**
   * Sends one request over HTTP/1.1 (a pooled connection). Throws what node's client threw for a
   * field it cannot send (ERR_INVALID_CHAR, ERR_INVALID_HTTP_TOKEN, ERR_UNESCAPED_CHARACTERS).
   */
  h1Request(target: InterceptTarget, method: string, plan: UpstreamRequest, framing: BodyFraming): H1Exchange {
    const head = requestHead(method, plan.path, plan.authority, plan.headers, framing);
    return this.h1.request(target, targetKey(target), method, head, framing);
  }

  private connectH1(target: InterceptTarget, key: string): tls.TLSSocket {
    const release = this.charge(target.host, target.port);
    let socket: tls.TLSSocket;
    try {
      socket = tls.connect({ ...this.tlsOptions(target), session: this.tlsSessions.get(key) });
    } catch (err) {
      release();
      throw err;
    }
    socket.once('close', release);
    socket.on('session', (session: Buffer) => {
      if (this.tlsSessions.size >= PER_TARGET_MAX && !this.tlsSessions.has(key)) this.tlsSessions.clear();
      this.tlsSessions.set(key, session);
    });
    // As node's agent does: a session of a connection that failed is not offered again.
    socket.once('error', () => this.tlsSessions.delete(key));
    return socket;
  }

  /** Whether the target answered ALPN with HTTP/1.1 only before. */
  isH1Only(target: InterceptTarget): boolean {
    return this.h1Only.has(targetKey(target));
  }

  /** Per target, made once: asked for on every request. */
  private readonly tlsByTarget = new Map<string, tls.ConnectionOptions>();

  tlsOptions(target: InterceptTarget): tls.ConnectionOptions {
    const key = targetKey(target);
    let options = this.tlsByTarget.get(key);
    if (!options) {
      options = this.makeTlsOptions(target);
      if (this.tlsByTarget.size >= PER_TARGET_MAX) this.tlsByTarget.clear();
      this.tlsByTarget.set(key, options);
    }
    return options;
  }

  private makeTlsOptions(target: InterceptTarget): tls.ConnectionOptions {
    this.context ??= this.upstreamContext();
    return {
      host: target.address,
      port: target.connectPort ?? target.port,
      // SNI must be a name; for an IP target none is sent and the certificate is checked for the IP.
      servername: isIP(target.host) ? undefined : target.host,
      secureContext: this.context,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(target.host, cert),
    };
  }

  /** An upstream HTTP/2 session per target, or null when the upstream only speaks HTTP/1.1. */
  sessionFor(target: InterceptTarget): Promise<http2.ClientHttp2Session | null> {
    const key = targetKey(target);
    const cached = this.sessions.get(key);
    if (cached) {
      // A session that got GOAWAY or died between requests must not take the next request with it.
      const alive = cached.then((s) => (s === null || (!s.closed && !s.destroyed) ? s : undefined));
      return alive.then((s) => {
        if (s !== undefined) return s;
        if (this.sessions.get(key) === cached) this.sessions.delete(key);
        return this.sessionFor(target);
      });
    }
    const p = new Promise<http2.ClientHttp2Session | null>((resolve, reject) => {
      let release: () => void;
      try {
        release = this.charge(target.host, target.port);
      } catch (err) {
        reject(err);
        return;
      }
      const socket = tls.connect({ ...this.tlsOptions(target), ALPNProtocols: ['h2', 'http/1.1'] });
      // Given back on close: after an error, a timeout, the end of the session (it owns the socket).
      socket.once('close', release);
      const timer = setTimeout(
        () => socket.destroy(new UpstreamError(504, 'upstream-timeout', `stockade: TLS to ${target.host} timed out`)),
        this.upstreamTimeout,
      );
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        if (socket.alpnProtocol !== 'h2') {
          // Remember, so HTTP/2 clients of this target go straight to the HTTP/1.1 pool next time.
          this.h1Only.add(key);
          socket.destroy();
          // destroy() closed the fd already; 'close' comes a tick later, after the requests
          // waiting for this answer have asked the HTTP/1.1 pool for their sockets.
          release();
          resolve(null);
          return;
        }
        const session = http2.connect(`https://${target.host}:${target.port}`, { createConnection: () => socket });
        session.on('error', (err) => this.onSessionError(target, err));
        const drop = () => {
          if (this.sessions.get(key) === p) this.sessions.delete(key);
        };
        session.on('close', drop);
        session.on('goaway', drop);
        resolve(session);
      });
    });
    p.catch(() => this.sessions.delete(key));
    this.sessions.set(key, p);
    return p;
  }

  /** Destroys every session and pooled socket. */
  async close(): Promise<void> {
    const sessions = await Promise.all([...this.sessions.values()].map((p) => p.catch(() => null)));
    for (const s of sessions) s?.destroy();
    this.sessions.clear();
    this.h1.close();
    this.oneShot.destroy();
  }
}
