// The intercepting half of the egress proxy: for a connection to a host that carries a secret, it
// terminates the sandbox's TLS with a per-run-CA leaf, checks every request for placeholders,
// rebuilds the configured header (or query parameter) from the trusted format with the real value,
// and forwards the request over a freshly verified TLS connection to the upstream server.
//
// The proxy (lib/net/) decides *whether* a connection may go out at all (allowlist, SSRF guard) and
// hands us only connections to hosts for which wants() said yes. Everything we refuse is answered
// with a clear 403 naming the rule, an audit event, and a 'violation' event; upstream trouble is a
// 502/504 with a message, never a hang.
//
// One HTTP/2 server object (never listening) exists per connection target; connections are fed to
// it with emit('connection'), so node does TLS, ALPN (h2, http/1.1) and both HTTP versions for us,
// and the request handler knows the target through its closure.
import http = require('node:http');
import http2 = require('node:http2');
import https = require('node:https');
import zlib = require('node:zlib');

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type * as tls from 'node:tls';
import type { Logger } from 'pino';
import type { Budget } from '../net/budget';
import type { CallRef, GrantScope, PlaintextGuard } from '../net/decision';
import { type RunCa, readCaFiles, upstreamSecureContext } from './ca';
import { ResponseError } from './h1-response';
import type { BodyFraming, H1Exchange, H1Response } from './h1-upstream';
import { makeScrubber, PlaceholderSet, redactNeedles, StreamRedactor, scrubDeep, secretForms } from './placeholder';
import {
  type HeaderPairs,
  type InterceptTarget,
  NOT_COPIED,
  rawPairs,
  rewriteRequest,
  type SecretViolation,
  type UpstreamRequest,
  Violation,
} from './rewrite';
import { placeholderEnv, type ResolvedSecret, secretIsFor } from './spec';
import { BudgetError, targetKey, UPSTREAM_SOCKETS, UpstreamError, UpstreamPool } from './upstream';

export type { InterceptTarget, SecretViolation, ViolationRule } from './rewrite';

export interface SecretInterceptorOptions {
  secrets: readonly ResolvedSecret[];
  ca: RunCa;
  /** Extra CA files (PEM) trusted for upstream servers, on top of node's and the host's roots. */
  upstreamCa?: readonly string[];
  /** Extra CA certificates as PEM text (same purpose, for callers that hold them in memory). */
  upstreamCaPem?: readonly string[];
  /** Audit log. Default: silent. */
  logger?: Logger;
  /** Milliseconds to wait for the upstream's response headers. Default 120000 (slow APIs exist). */
  upstreamTimeout?: number;
  /** Milliseconds the sandbox gets to complete its TLS handshake. Default 10000. */
  handshakeTimeout?: number;
  /**
   * Per-tool grants (lib/mcp/tool-grants.ts): a secret scoped to some tools is injected only
   * while a call of one of them is in flight; its placeholder at any other time is refused.
   */
  scope?: GrantScope;
}

const TLS_VERIFY_CODE = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED|SELF_SIGNED_CERT|ERR_TLS_CERT_ALTNAME|HOSTNAME_MISMATCH|ERR_SSL_)/;

/**
 * Budgets of one sandbox's interceptor (there is one per sandbox): what a sandbox can make it
 * hold at once. Requests in flight on one HTTP/1.1 connection (pipelining: Node parses and
 * dispatches every pipelined request it has read, and each would open an upstream connection);
 * concurrent streams of one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS, enforced by
 * nghttp2); upstream HTTP/1.1 connections in all (further requests wait in the agent's queue).
 * Every upstream socket (HTTP/1.1, HTTP/2, upgrades) also takes an fd from the sandbox's fd
 * budget (limits.maxFds) and the host's (lib/net/budget.ts): a request that finds one of them
 * full is a 503, audited as 'secret-proxy-budget' with the budget's name.
 */
export const INTERCEPT_LIMITS = { pipelined: 32, streams: 100, upstreamSockets: UPSTREAM_SOCKETS } as const;

/** Hop-by-hop fields rewriteRequest keeps per client version: `te` (trailers) is end to end in HTTP/2. */
const KEEP_H2: ReadonlySet<string> = new Set(['te']);
const KEEP_NONE: ReadonlySet<string> = new Set();

type Req = http.IncomingMessage | http2.Http2ServerRequest;
/** Where pumpBody sends a request body: an HTTP/1.1 exchange or an HTTP/2 stream upstream. */
type BodySink = { write(chunk: Buffer): boolean; end(chunk: Buffer): void; once(event: 'drain', f: () => void): unknown };

/**
 * How a request's body goes upstream: as long as its Content-Length says (checked there), none
 * (HTTP/1.1 without Content-Length or Transfer-Encoding, RFC 9112 6.3; HTTP/2 ended with its
 * headers), or chunked, whatever framing it came in (its Transfer-Encoding is hop-by-hop).
 */
function bodyFraming(req: Req): BodyFraming {
  const cl = req.headers['content-length'];
  // Node's parsers checked the value: digits only, and one value however often it was sent.
  if (cl !== undefined) return { kind: 'length', length: Number(cl) };
  if (req.httpVersionMajor === 2) return (req as http2.Http2ServerRequest).stream.endAfterHeaders ? { kind: 'none' } : { kind: 'chunked' };
  return req.headers['transfer-encoding'] === undefined ? { kind: 'none' } : { kind: 'chunked' };
}
type Res = http.ServerResponse | http2.Http2ServerResponse;
/** Dispatches TLS connections for secret-carrying hosts; see the file header. */
export class SecretInterceptor extends EventEmitter {
  /** Env entries for the sandbox: each secret's name mapped to its placeholder. */
  readonly placeholders: Readonly<Record<string, string>>;
  private readonly secrets: readonly ResolvedSecret[];
  private readonly byName = new Map<string, ResolvedSecret>();
  private readonly set: PlaceholderSet;
  private readonly ca: RunCa;
  /** None: nothing is logged (pino itself is not loaded for that: ~20 ms of a start). */
  private readonly log: Logger | undefined;
  private readonly scrubText: (s: string) => string;
  private readonly upstream: UpstreamPool;
  private readonly upstreamTimeout: number;
  private readonly handshakeTimeout: number;
  private readonly scope: GrantScope | undefined;
  private readonly servers = new Map<string, Promise<http2.Http2SecureServer>>();
  private readonly sockets = new Set<Duplex>();
  /** Requests in flight per HTTP/1.1 connection from the sandbox (INTERCEPT_LIMITS.pipelined). */
  private readonly inFlight = new WeakMap<object, number>();
  private closed = false;
  private formsCache: string[] | undefined;
  private needlesCache: Buffer[] | undefined;

  constructor(options: SecretInterceptorOptions) {
    super();
    this.secrets = options.secrets;
    for (const s of this.secrets) this.byName.set(s.name, s);
    this.placeholders = placeholderEnv(this.secrets);
    this.set = new PlaceholderSet(this.secrets);
    this.ca = options.ca;
    this.log = options.logger;
    this.scrubText = makeScrubber(
      this.secrets.map((s) => ({ name: s.name, value: s.value, basicUser: s.inject.kind === 'basic' ? s.inject.username : undefined })),
    );
    const extra = [...readCaFiles(options.upstreamCa ?? []), ...(options.upstreamCaPem ?? [])];
    this.upstreamTimeout = options.upstreamTimeout ?? 120_000;
    this.upstream = new UpstreamPool(
      () => upstreamSecureContext(extra),
      this.upstreamTimeout,
      (target, err) => this.audit('warn', { event: 'secret-upstream-error', host: target.host, err }, 'upstream HTTP/2 session error'),
    );
    this.handshakeTimeout = options.handshakeTimeout ?? 10_000;
    this.scope = options.scope;
  }

  /**
   * Called by the sandbox's egress proxy (lib/net/connector.ts): upstream sockets draw from its
   * fd budget (limits.maxFds, and through it the host's) from now on.
   */
  useFdBudget(fds: Budget): void {
    this.upstream.useFdBudget(fds);
  }

  /** Upstream sockets this interceptor holds open now (each one fd of the budgets). */
  get upstreamSockets(): number {
    return this.upstream.socketsInUse;
  }

  /** Whether a connection to host:port must be intercepted (some secret is for it). */
  wants(host: string, port: number): boolean {
    return this.secrets.some((s) => secretIsFor(s, host, port));
  }

  /** Whether any placeholder of this run occurs in `data`: for the proxy's plain-HTTP checks. */
  containsPlaceholder(data: Buffer | string): boolean {
    return this.set.contains(data);
  }

  /** What the egress proxy applies to plaintext: placeholders there are refused and reported. */
  plaintextGuard(): PlaintextGuard {
    return {
      find: (data) => this.set.find(data)?.name,
      stream: () => this.set.stream(),
      violation: ({ secret, host, port, via }) =>
        this.violation(null, {
          rule: 'placeholder-in-plaintext',
          secret,
          host,
          port,
          message: `stockade: the placeholder of secret ${secret} was sent in plaintext (${via}) to ${host}:${port}; secrets only travel over TLS to their hosts`,
        }),
    };
  }

  /** Names of the secrets whose placeholders occur in `data`. */
  placeholderNames(data: Buffer | string): string[] {
    return this.set.names(data);
  }

  /** Removes every real value (and its URL/base64 forms) from a string. */
  scrub(text: string): string {
    return this.scrubText(text);
  }

  /**
   * Takes over `client`, a connection from the sandbox to `target` (past CONNECT, or transparent),
   * of which `head` was already read. The caller must have removed its own 'data' listeners.
   */
  handle(client: Socket, target: InterceptTarget, head: Buffer): void {
    if (this.closed) {
      client.destroy();
      return;
    }
    client.pause();
    // Requests and responses are whole messages written at once: Nagle's algorithm would only
    // hold the next one back for the ACK of the last (the tunnel sets the same, lib/net/tunnel.ts).
    client.setNoDelay(true);
    this.track(client);
    client.on('error', (err) =>
      this.audit('warn', { event: 'secret-proxy-client-error', host: target.host, err }, 'client connection error'),
    );
    this.serverFor(target).then(
      (server) => {
        if (client.destroyed) return;
        if (head.length) client.unshift(head);
        server.emit('connection', client);
      },
      (err) => {
        this.audit('error', { event: 'secret-proxy-error', host: target.host, err }, 'cannot prepare interception');
        client.destroy();
      },
    );
  }

  /** Closes every connection and session, both sides, and drops the caches. */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await this.upstream.close();
    const servers = await Promise.all([...this.servers.values()].map((p) => p.catch(() => null)));
    for (const s of servers) s?.removeAllListeners();
    this.servers.clear();
  }

  private track(s: Duplex): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  private audit(level: 'info' | 'warn' | 'error', record: Record<string, unknown>, msg: string): void {
    // Scrubbing walks the whole record: not for a line the logger drops (every injection is one).
    const log = this.log;
    if (log === undefined || !log.isLevelEnabled(level)) return;
    log[level](scrubDeep(record, this.scrubText), this.scrubText(msg));
  }

  private serverFor(target: InterceptTarget): Promise<http2.Http2SecureServer> {
    const key = targetKey(target);
    let p = this.servers.get(key);
    if (!p) {
      p = this.createServer({ ...target, host: target.host.toLowerCase().replace(/\.$/, '') });
      p.catch(() => this.servers.delete(key));
      this.servers.set(key, p);
    }
    return p;
  }

  private async createServer(target: InterceptTarget): Promise<http2.Http2SecureServer> {
    const leaf = await this.ca.leaf(target.host);
    const server = http2.createSecureServer({
      allowHTTP1: true,
      key: leaf.keyPem,
      cert: `${leaf.certPem}\n${this.ca.certPem}`,
      handshakeTimeout: this.handshakeTimeout,
      settings: { maxConcurrentStreams: INTERCEPT_LIMITS.streams },
      // The SNI must name the host the proxy let through: a client that connected for one host
      // and asks TLS for another is trying to make us mint (and route) for a name we did not check.
      SNICallback: (servername, cb) => {
        if (servername.toLowerCase().replace(/\.$/, '') === target.host) return cb(null, leaf.context);
        this.violation(null, {
          rule: 'sni-mismatch',
          host: target.host,
          port: target.port,
          message: `stockade: TLS server name '${servername}' does not match the connection's host ${target.host}`,
        });
        cb(new Error('SNI mismatch'));
      },
    });
    server.on('secureConnection', (s: tls.TLSSocket) => this.track(s));
    server.on('tlsClientError', (err) =>
      this.audit('warn', { event: 'secret-proxy-tls-error', host: target.host, err }, 'sandbox TLS handshake failed'),
    );
    server.on('session', (session: http2.ServerHttp2Session) => session.on('error', () => {}));
    server.on('request', (req: Req, res: Res) => this.onRequest(target, req, res));
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(target, req, socket, head));
    return server;
  }

  // ---- decisions -------------------------------------------------------------------------------

  private violation(res: Res | null, info: SecretViolation): void {
    const clean = scrubDeep(info, this.scrubText);
    this.audit('warn', { event: 'secret-violation', ...clean }, clean.message);
    this.emit('violation', clean);
    if (res) this.reply(res, 403, { error: 'secret-violation', rule: clean.rule, secret: clean.secret, message: clean.message });
  }

  private reply(res: Res, status: number, body: Record<string, unknown>): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const text = `${JSON.stringify(body)}\n`;
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'x-stockade-error': String(body.rule ?? body.error),
    };
    // An HTTP/1.1 request whose body we stopped reading cannot be followed by another on the same
    // connection; HTTP/2 forbids the header and does not need it.
    if (!(res instanceof http2.Http2ServerResponse)) headers.connection = 'close';
    (res as http.ServerResponse).writeHead(status, headers);
    res.end(text);
  }

  /**
   * Per-tool grants: every secret about to be injected must be in the grant of the calls in
   * flight. Returns the calls each injection is joined to, or the violation that refuses them all.
   */
  private scopeInjections(
    target: InterceptTarget,
    names: string[],
    method: string,
    url: string,
  ): { calls: Map<string, CallRef[]> } | { violation: SecretViolation } {
    const calls = new Map<string, CallRef[]>();
    if (this.scope === undefined) return { calls };
    for (const secret of names) {
      const v = this.scope.checkSecret(secret);
      if (!v.allowed) {
        return {
          violation: {
            rule: 'secret-out-of-call',
            secret,
            host: target.host,
            port: target.port,
            method,
            path: url.split('?')[0],
            calls: v.calls,
            message: `stockade: secret ${secret} not injected: ${v.rule}`,
          },
        };
      }
      calls.set(secret, v.calls);
    }
    return { calls };
  }

  private noteInjected(target: InterceptTarget, names: string[], calls: Map<string, CallRef[]>): void {
    for (const secret of names) {
      const joined = calls.get(secret);
      const tag = joined ? { calls: joined } : {};
      this.audit('info', { event: 'secret-injected', secret, host: target.host, ...tag }, 'secret injected');
      this.emit('injected', { secret, host: target.host, ...tag });
    }
  }

  // ---- requests --------------------------------------------------------------------------------

  private onRequest(target: InterceptTarget, req: Req, res: Res): void {
    req.on('error', () => {});
    res.on('error', () => {});
    const h2 = req.httpVersionMajor === 2;
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const authority = h2 ? ((req.headers[':authority'] as string | undefined) ?? req.headers.host) : req.headers.host;
    if (method === 'CONNECT') {
      this.reply(res, 501, { error: 'not-supported', message: 'stockade: CONNECT inside an intercepted connection is not supported' });
      return;
    }
    if (!h2) {
      const conn = (req as http.IncomingMessage).socket;
      const n = this.inFlight.get(conn) ?? 0;
      if (n >= INTERCEPT_LIMITS.pipelined) {
        const message = `stockade: more than ${INTERCEPT_LIMITS.pipelined} requests in flight on one connection to ${target.host}:${target.port}; the connection is closed after this answer`;
        this.audit('warn', { event: 'secret-proxy-budget', host: target.host, port: target.port, budget: 'pipelined' }, message);
        this.reply(res, 503, { error: 'budget', message });
        return;
      }
      this.inFlight.set(conn, n + 1);
      res.once('close', () => this.inFlight.set(conn, (this.inFlight.get(conn) ?? 1) - 1));
    }
    let plan: UpstreamRequest;
    try {
      plan = rewriteRequest(
        { set: this.set, byName: this.byName },
        target,
        method,
        url,
        authority,
        rawPairs(req.rawHeaders),
        h2 ? KEEP_H2 : KEEP_NONE,
      );
    } catch (err) {
      if (err instanceof Violation) this.violation(res, err.info);
      // Not expected; but an exception in a request handler would take the whole launcher down.
      else this.upstreamFailed(target, res, err);
      return;
    }
    const scoped = this.scopeInjections(target, plan.injected, method, url);
    if ('violation' in scoped) {
      req.resume();
      this.violation(res, scoped.violation);
      return;
    }
    this.noteInjected(target, plan.injected, scoped.calls);
    const useH2 = h2 && !this.upstream.isH1Only(target);
    const forward = useH2
      ? this.upstream
          .sessionFor(target)
          .then((s) => (s ? this.forwardH2(target, s, req, res, plan) : this.forwardH1(target, req, res, plan)))
      : this.forwardH1(target, req, res, plan);
    forward.catch((err) => this.upstreamFailed(target, res, err));
  }

  private upstreamFailed(target: InterceptTarget, res: Res, err: unknown): void {
    if (err instanceof BudgetError) {
      this.budgetRefused(target, err);
      this.reply(res, 503, { error: 'budget', message: err.message });
      return;
    }
    const e = err as NodeJS.ErrnoException;
    let status = 502;
    let kind = 'upstream-error';
    let message: string;
    if (err instanceof UpstreamError) {
      status = err.status;
      kind = err.kind;
      message = err.message;
    } else if (err instanceof ResponseError) {
      kind = 'upstream-malformed';
      message = `stockade: ${target.host}:${target.port} sent a response the proxy cannot read: ${e.message}`;
    } else if (e.code && TLS_VERIFY_CODE.test(e.code)) {
      kind = 'upstream-tls-verification-failed';
      message = `stockade: upstream certificate verification failed for ${target.host}:${target.port}: ${e.code}: ${e.message}`;
    } else {
      message = `stockade: upstream ${target.host}:${target.port} (${target.address}) failed: ${e.code ? `${e.code}: ` : ''}${e.message}`;
    }
    message = this.scrubText(message);
    this.audit('warn', { event: 'secret-upstream-error', host: target.host, port: target.port, kind, message }, message);
    this.reply(res, status, { error: kind, message });
  }

  private budgetRefused(target: InterceptTarget, err: BudgetError): void {
    this.audit('warn', { event: 'secret-proxy-budget', host: target.host, port: target.port, budget: err.budget }, err.message);
  }

  /** Sends one request over HTTP/1.1 upstream (keep-alive pool); works for either client version. */
  private forwardH1(target: InterceptTarget, req: Req, res: Res, plan: UpstreamRequest): Promise<void> {
    return new Promise((resolve, reject) => {
      let up: H1Exchange;
      try {
        up = this.upstream.h1Request(target, req.method ?? 'GET', plan, bodyFraming(req));
      } catch (err) {
        reject(err);
        return;
      }
      // Set when we stop the request ourselves (a violation in the body): the errors that follow are ours.
      let aborted = false;
      let settled = false;
      const timer = setTimeout(
        () =>
          up.destroy(
            new UpstreamError(504, 'upstream-timeout', `stockade: ${target.host} sent no response within ${this.upstreamTimeout} ms`),
          ),
        this.upstreamTimeout,
      );
      up.on('error', (err) => {
        clearTimeout(timer);
        if (aborted) resolve();
        else if (!settled) {
          settled = true;
          reject(err);
        } else if (!res.writableEnded) res.destroy();
      });
      // Whether the upstream's response came to its end (its socket may go back to the pool).
      let upEnded = false;
      up.on('response', (upRes: H1Response) => {
        clearTimeout(timer);
        settled = true;
        this.relayResponse(res, upRes.status, upRes.pairs, upRes.body, req.method ?? 'GET');
        upRes.body.on('end', () => {
          upEnded = true;
          resolve();
        });
      });
      res.on('close', () => {
        clearTimeout(timer);
        // Not res.writableFinished: an HTTP/2 response whose stream the client reset (or whose
        // session went away) reads as finished, and its upstream socket, an fd of the sandbox's
        // budget, stayed open until the upstream timeout.
        if (!upEnded) up.destroy();
      });
      this.pumpBody(target, req, res, up, () => {
        aborted = true;
        up.destroy();
      });
    });
  }

  /** Sends one request over a shared HTTP/2 session upstream (streams, trailers: gRPC works). */
  private forwardH2(target: InterceptTarget, session: http2.ClientHttp2Session, req: Req, res: Res, plan: UpstreamRequest): Promise<void> {
    return new Promise((resolve, reject) => {
      const headers: http2.OutgoingHttpHeaders = {
        ':method': req.method,
        ':path': plan.path,
        ':authority': plan.authority,
        ':scheme': 'https',
      };
      for (const [k, v] of plan.headers) {
        const l = k.toLowerCase();
        const prev = headers[l];
        headers[l] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
      }
      let up: http2.ClientHttp2Stream;
      try {
        up = session.request(headers, { endStream: false });
      } catch (err) {
        reject(err);
        return;
      }
      let aborted = false;
      let settled = false;
      let upEnded = false;
      const timer = setTimeout(
        () =>
          up.destroy(
            new UpstreamError(504, 'upstream-timeout', `stockade: ${target.host} sent no response within ${this.upstreamTimeout} ms`),
          ),
        this.upstreamTimeout,
      );
      up.on('error', (err) => {
        clearTimeout(timer);
        if (aborted) resolve();
        else if (!settled) {
          settled = true;
          reject(err);
        } else if (!res.writableEnded) res.destroy();
      });
      up.on('close', () => {
        clearTimeout(timer);
        if (aborted) resolve();
        else if (!settled) {
          settled = true;
          reject(new UpstreamError(502, 'upstream-error', `stockade: ${target.host} reset the stream (code ${up.rstCode})`));
        }
      });
      up.on('response', (h) => {
        clearTimeout(timer);
        settled = true;
        const pairs: HeaderPairs = [];
        for (const [k, v] of Object.entries(h)) {
          if (k.startsWith(':') || v === undefined) continue;
          for (const one of Array.isArray(v) ? v : [v]) pairs.push([k, String(one)]);
        }
        up.on('trailers', (t) => {
          const clean: http.OutgoingHttpHeaders = {};
          for (const [k, v] of Object.entries(t)) if (!k.startsWith(':') && v !== undefined) clean[k] = this.redactHeader(String(v));
          (res as http2.Http2ServerResponse).addTrailers?.(clean);
        });
        this.relayResponse(res, Number(h[':status'] ?? 502), pairs, up, req.method ?? 'GET');
        up.on('end', () => {
          upEnded = true;
          resolve();
        });
      });
      res.on('close', () => {
        clearTimeout(timer);
        // As in forwardH1: not res.writableFinished, which a reset HTTP/2 stream reads as true.
        if (!upEnded && !up.destroyed) up.close(http2.constants.NGHTTP2_CANCEL);
      });
      this.pumpBody(target, req, res, up, () => {
        aborted = true;
        up.close(http2.constants.NGHTTP2_CANCEL);
      });
    });
  }

  /**
   * Copies the request body upstream through the placeholder scanner, with backpressure. A
   * placeholder (even split across chunks) stops the request: it never reaches the upstream.
   */
  private pumpBody(target: InterceptTarget, req: Req, res: Res, up: BodySink, abort: () => void): void {
    const scan = this.set.stream();
    let stopped = false;
    req.on('data', (chunk: Buffer) => {
      if (stopped) return;
      const r = scan.push(chunk);
      if (r.match) {
        stopped = true;
        req.pause();
        abort();
        this.violation(res, {
          rule: 'placeholder-in-body',
          secret: r.match.name,
          host: target.host,
          port: target.port,
          method: req.method,
          path: (req.url ?? '/').split('?')[0],
          message: `stockade: the placeholder of secret ${r.match.name} appears in the request body; secrets are only injected into ${this.describe(r.match.name)}`,
        });
        return;
      }
      if (r.forward.length && !up.write(r.forward)) {
        req.pause();
        up.once('drain', () => req.resume());
      }
    });
    req.on('end', () => {
      if (!stopped) up.end(scan.end());
    });
  }

  private describe(name: string): string {
    const inj = this.byName.get(name)?.inject;
    if (!inj) return 'their configured place';
    return inj.kind === 'header' ? `header ${inj.header}` : inj.kind === 'basic' ? 'basic authorization' : `query parameter ${inj.param}`;
  }

  /** Every form of every secret the proxy sends (secretForms), longest first. */
  private get forms(): string[] {
    this.formsCache ??= this.secrets
      .flatMap((s) => secretForms(s.value, s.inject.kind === 'basic' ? s.inject.username : undefined))
      .sort((a, b) => b.length - a.length);
    return this.formsCache;
  }

  /** The forms as the body redactors match them. */
  private get needles(): Buffer[] {
    this.needlesCache ??= redactNeedles(this.forms);
    return this.needlesCache;
  }

  private redactHeader(v: string): string {
    let out = v;
    for (const f of this.forms) if (out.includes(f)) out = out.split(f).join('*'.repeat(f.length));
    return out;
  }

  /**
   * Sends the upstream's response to the client, with every form of a real value masked out of
   * headers and body. The request asked for `accept-encoding: identity` (./rewrite.ts); an
   * upstream that compresses anyway is decoded here before the scan (gzip, deflate, br), and an
   * encoding the proxy cannot read is a 502, since a secret inside it could not be masked.
   */
  private relayResponse(res: Res, status: number, pairs: HeaderPairs, body: NodeJS.ReadableStream, method: string): void {
    const h2 = res instanceof http2.Http2ServerResponse;
    const headers: Record<string, string | string[]> = {};
    let encoding = '';
    for (const [k, v] of pairs) {
      const l = k.toLowerCase();
      if (NOT_COPIED.has(l)) continue;
      if (l === 'content-encoding') encoding = `${encoding}${encoding ? ',' : ''}${v}`.toLowerCase();
      // Location and friends are passed through as they are (only a real value is masked): which
      // host a redirect may lead to is the proxy's decision when the client follows it.
      const clean = this.redactHeader(v);
      const prev = headers[l];
      headers[l] = prev === undefined ? clean : Array.isArray(prev) ? [...prev, clean] : [prev, clean];
    }
    if (h2) delete headers['keep-alive'];
    const noBody = method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
    const codings = (encoding === '' ? [] : encoding.split(',')).map((c) => c.trim()).filter((c) => c && c !== 'identity');
    let source: NodeJS.ReadableStream = body;
    if (codings.length > 0 && !noBody) {
      const decoders: Duplex[] = [];
      for (const c of codings.reverse()) {
        const d =
          c === 'gzip' || c === 'x-gzip'
            ? zlib.createGunzip()
            : c === 'deflate'
              ? zlib.createInflate()
              : c === 'br'
                ? zlib.createBrotliDecompress()
                : null;
        if (!d) {
          (body as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
          this.reply(res, 502, {
            error: 'upstream-encoding',
            message: `stockade: the upstream answered with content-encoding ${encoding}, which the proxy cannot scan for secrets`,
          });
          return;
        }
        decoders.push(d);
      }
      delete headers['content-encoding'];
      delete headers['content-length'];
      for (const d of decoders) {
        d.on('error', () => res.destroy());
        source = (source as NodeJS.ReadableStream).pipe(d);
      }
    }
    try {
      (res as http.ServerResponse).writeHead(status, headers);
    } catch (err) {
      (body as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      this.reply(res, 502, {
        error: 'upstream-malformed',
        message: `stockade: the upstream sent a response the proxy cannot relay: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      });
      return;
    }
    const redact = new StreamRedactor(this.needles);
    source.on('data', (chunk: Buffer) => {
      const out = redact.push(chunk);
      if (out.length && !(res as http.ServerResponse).write(out)) {
        source.pause();
        res.once('drain', () => source.resume());
      }
    });
    source.on('end', () => res.end(redact.end()));
  }

  // ---- WebSocket and other HTTP/1.1 upgrades ---------------------------------------------------

  private onUpgrade(target: InterceptTarget, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const rawReply = (status: number, body: Record<string, unknown>) => {
      const text = `${JSON.stringify(body)}\n`;
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n` +
          `x-stockade-error: ${String(body.rule ?? body.error)}\r\nconnection: close\r\n\r\n${text}`,
      );
    };
    let plan: UpstreamRequest;
    try {
      plan = rewriteRequest(
        { set: this.set, byName: this.byName },
        target,
        req.method ?? 'GET',
        req.url ?? '/',
        req.headers.host,
        rawPairs(req.rawHeaders),
        new Set(['connection', 'upgrade']),
      );
    } catch (err) {
      if (!(err instanceof Violation)) {
        this.audit('error', { event: 'secret-proxy-error', host: target.host, err }, 'cannot plan upgrade request');
        rawReply(500, { error: 'internal-error', message: 'stockade: internal error while checking the request' });
        return;
      }
      const info = scrubDeep(err.info, this.scrubText);
      this.violation(null, info);
      rawReply(403, { error: 'secret-violation', rule: info.rule, secret: info.secret, message: info.message });
      return;
    }
    const scoped = this.scopeInjections(target, plan.injected, req.method ?? 'GET', req.url ?? '/');
    if ('violation' in scoped) {
      const info = scrubDeep(scoped.violation, this.scrubText);
      this.violation(null, info);
      rawReply(403, { error: 'secret-violation', rule: info.rule, secret: info.secret, message: info.message });
      return;
    }
    this.noteInjected(target, plan.injected, scoped.calls);
    const headers: http.OutgoingHttpHeaders = { host: plan.authority };
    for (const [k, v] of plan.headers) headers[k.toLowerCase()] = v;
    const up = https.request({
      ...this.upstream.tlsOptions(target),
      agent: this.upstream.oneShot,
      method: req.method,
      path: plan.path,
      headers,
    });
    up.on('upgrade', (upRes, upSocket, upHead) => {
      upSocket.on('error', () => socket.destroy());
      socket.on('error', () => upSocket.destroy());
      let text = `HTTP/1.1 ${upRes.statusCode} ${upRes.statusMessage}\r\n`;
      for (const [k, v] of rawPairs(upRes.rawHeaders)) text += `${k}: ${this.redactHeader(v)}\r\n`;
      socket.write(`${text}\r\n`);
      if (upHead.length) socket.write(upHead);
      if (head.length) upSocket.write(head);
      this.track(upSocket);
      upSocket.pipe(socket);
      socket.pipe(upSocket);
      socket.on('close', () => upSocket.destroy());
      upSocket.on('close', () => socket.destroy());
    });
    up.on('response', (upRes) => {
      // The upstream declined the upgrade: relay its answer and close, as it would have.
      let text = `HTTP/1.1 ${upRes.statusCode} ${upRes.statusMessage}\r\n`;
      for (const [k, v] of rawPairs(upRes.rawHeaders)) {
        if (!NOT_COPIED.has(k.toLowerCase()) && k.toLowerCase() !== 'content-length') text += `${k}: ${this.redactHeader(v)}\r\n`;
      }
      // Streamed, not collected: the upstream decides how long the body is.
      socket.write(`${text}connection: close\r\n\r\n`);
      const redact = new StreamRedactor(this.needles);
      upRes.on('data', (c: Buffer) => {
        const out = redact.push(c);
        if (out.length && !socket.write(out)) {
          upRes.pause();
          socket.once('drain', () => upRes.resume());
        }
      });
      upRes.on('end', () => socket.end(redact.end()));
    });
    up.on('error', (err) => {
      if (err instanceof BudgetError) {
        this.budgetRefused(target, err);
        if (socket.writable) rawReply(503, { error: 'budget', message: err.message });
        return;
      }
      const e = err as NodeJS.ErrnoException;
      const verify = e.code && TLS_VERIFY_CODE.test(e.code);
      const message = this.scrubText(
        verify
          ? `stockade: upstream certificate verification failed for ${target.host}:${target.port}: ${e.code}: ${e.message}`
          : `stockade: upstream ${target.host}:${target.port} (${target.address}) failed: ${e.code ? `${e.code}: ` : ''}${e.message}`,
      );
      this.audit('warn', { event: 'secret-upstream-error', host: target.host, port: target.port, message }, message);
      if (socket.writable) rawReply(502, { error: verify ? 'upstream-tls-verification-failed' : 'upstream-error', message });
    });
    socket.on('close', () => up.destroy());
    up.end();
  }
}
