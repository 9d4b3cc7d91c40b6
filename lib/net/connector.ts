// The I/O half every front-end (HTTP proxy, SOCKS, transparent) shares: it owns the sockets of
// one sandbox's proxy, asks the decision pipeline (./decision.ts) whether host:port may be
// reached, opens the upstream connection to exactly the address that was checked, hands an
// allowed connection to the credential interceptor or to a tunnel (./tunnel.ts), and writes one
// audit record per decision. Front-ends only speak their protocol.
import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import type { NativeRelay } from '../native';
import type { Allowlist } from './allowlist';
import { Budget, hostBudget } from './budget';
import {
  Decider,
  type Decision,
  type EgressRecord,
  type EgressTarget,
  type GrantScope,
  type Interceptor,
  type PlaintextGuard,
  type ResolvedLimits,
  type Via,
} from './decision';
import type { NormalizedHost } from './hostname';
import type { Resolver } from './resolve';
import type { sniff } from './sniff';
import { spliceTunnel } from './tunnel';

export {
  type CallRef,
  type Decision,
  type EgressLimits,
  type EgressRecord,
  type EgressTarget,
  type GrantScope,
  hostOfHeader,
  type Interceptor,
  type PlaintextGuard,
  type ResolvedLimits,
  resolveLimits,
  type ScopeVerdict,
  safeName,
  type Via,
} from './decision';

export interface ConnectorOptions {
  sandbox: string;
  allowlist: Allowlist;
  resolver: Resolver;
  limits: ResolvedLimits;
  interceptor?: Interceptor;
  /** The proxy's own listening endpoints (refused as targets). */
  ownEndpoints: () => { address: string; port: number }[];
  /** The host's interface addresses (./decision.ts DeciderOptions.localAddresses). */
  localAddresses: () => string[];
  /** Placeholders in plaintext are refused (credential injection on). */
  guard?: PlaintextGuard;
  audit: (record: EgressRecord) => void;
  /** Relay inspected tunnels with splice(2) in the kernel when possible. Default true. */
  kernelRelay?: boolean;
  /** Per-tool grants (./decision.ts GrantScope). */
  scope?: GrantScope;
}

/** An upstream socket reading through the shared buffer; bytes go to the sink once it is set. */
export interface TunnelUpstream {
  socket: Socket;
  setSink(fn: (chunk: Buffer) => boolean): void;
}

let readBuffer: Buffer | undefined;
function sharedReadBuffer(): Buffer {
  readBuffer ??= Buffer.allocUnsafe(1024 * 1024);
  return readBuffer;
}

/**
 * What queues bytes for a peer: a socket, or an http.ServerResponse (which queues in itself
 * while an earlier pipelined response holds the socket). 'drain' and 'close' end a charge.
 */
export interface QueueHolder {
  readonly writableLength: number;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  removeListener(event: 'drain' | 'close', listener: () => void): unknown;
}

export class Connector {
  get guard(): PlaintextGuard | undefined {
    return this.opts.guard;
  }

  /** Every socket the proxy owns (clients and upstreams), destroyed by close(). */
  readonly sockets = new Set<Socket>();
  /** Every kernel relay running (they own sockets Node no longer has), closed by close(). */
  readonly relays = new Set<NativeRelay>();
  /** Client sockets handed to a kernel relay -> who waits for the connection's real end. */
  readonly handedOff = new WeakMap<Socket, (() => void)[]>();
  closed = false;

  private readonly decider: Decider;
  /** This sandbox's file descriptors (./budget.ts), drawn from the host budget too. */
  readonly fds: Budget;
  /** Bytes queued in Node's sockets for peers that do not read (./budget.ts), drawn from the host's. */
  readonly buffered: Budget;
  /** What each socket has charged to `buffered` until its next 'drain' or 'close'. */
  private readonly charged = new WeakMap<QueueHolder, number>();

  constructor(readonly opts: ConnectorOptions) {
    this.decider = new Decider(opts);
    this.fds = new Budget(`sandbox file descriptor budget (limits.maxFds)`, () => opts.limits.maxFds, hostBudget.fds);
    this.buffered = new Budget(
      'sandbox buffered bytes budget (limits.maxBufferedBytes)',
      () => opts.limits.maxBufferedBytes,
      hostBudget.bufferedBytes,
    );
    // The credential interceptor's upstream sockets are fds of this process too: the same budget.
    opts.interceptor?.useFdBudget?.(this.fds);
  }

  /**
   * After a write() to `socket` that said "full": charges what waits in its queue to the
   * buffered-bytes budget until 'drain' (or 'close') gives it back. The writer stops feeding
   * the socket until then (backpressure), so a queue is one read's worth at most; the budget
   * bounds the sum over all the sandbox's connections. Returns the refusal when it does not
   * fit (the caller closes the connection), undefined otherwise.
   */
  chargeQueued(socket: QueueHolder): string | undefined {
    const queued = socket.writableLength;
    const had = this.charged.get(socket);
    const more = queued - (had ?? 0);
    if (more <= 0) return undefined;
    if (!this.buffered.take(more)) return `budget: ${this.buffered.refusal(more)} reached`;
    this.charged.set(socket, queued);
    if (had === undefined) {
      const release = (): void => {
        socket.removeListener('drain', release);
        socket.removeListener('close', release);
        this.buffered.give(this.charged.get(socket) ?? 0);
        this.charged.delete(socket);
      };
      socket.once('drain', release);
      socket.once('close', release);
    }
    return undefined;
  }

  get limits(): ResolvedLimits {
    return this.opts.limits;
  }

  track(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /**
   * Calls `fn` once the client connection is over: when its socket closes or, if a kernel relay
   * took it over, when that relay ends. (The connection limit counts relayed tunnels too.)
   */
  whenGone(socket: Socket, fn: () => void): void {
    socket.once('close', () => {
      const waiters = this.handedOff.get(socket);
      if (waiters) waiters.push(fn);
      else fn();
    });
  }

  /** Policy decision for a raw host (any spelling) and port. Never throws. */
  decide(rawHost: string, port: number): Promise<Decision> {
    return this.decider.decide(rawHost, port);
  }

  decideNormalized(host: NormalizedHost, port: number): Promise<Decision> {
    return this.decider.decideNormalized(host, port);
  }

  /** Undefined when the sniffed name agrees with `host`, else the refusal. */
  checkAgreement(r: ReturnType<typeof sniff>, host: string): string | undefined {
    return this.decider.checkAgreement(r, host);
  }

  /**
   * Opens the upstream TCP connection to the checked address, with the connect timeout. With
   * `tunnel`, the socket reads through one shared 1 MiB buffer (net `onread`) instead of emitting
   * 'data': fewer, larger reads and writes, about 1.45x the bulk throughput of a 64 KiB pipe on
   * this host's loopback. Tunnel bytes are then delivered through the returned `setSink`.
   */
  connect(d: Extract<Decision, { allowed: true }>): Promise<Socket>;
  connect(d: Extract<Decision, { allowed: true }>, tunnel: true): Promise<TunnelUpstream>;
  connect(d: Extract<Decision, { allowed: true }>, tunnel?: true): Promise<Socket | TunnelUpstream> {
    return new Promise((resolve, reject) => {
      let sink: ((chunk: Buffer) => boolean) | undefined;
      const queued: Buffer[] = [];
      const onread = tunnel
        ? {
            buffer: sharedReadBuffer(),
            // Called synchronously with the bytes of one read: copy them out before the next
            // read (on any socket) reuses the buffer. Returning false pauses this socket.
            callback: (n: number, buf: Uint8Array): boolean => {
              const chunk = Buffer.allocUnsafe(n);
              chunk.set(buf.subarray(0, n));
              if (!sink) {
                queued.push(chunk);
                return false;
              }
              return sink(chunk);
            },
          }
        : undefined;
      if (!this.fds.take(1)) {
        const why = this.fds.refusal(1);
        reject(new Error(`budget: ${why} reached`));
        return;
      }
      const upstream = tcpConnect({
        host: d.address,
        port: d.connectPort ?? d.port,
        family: isIP(d.address),
        ...(onread ? { onread } : {}),
      });
      this.track(upstream);
      upstream.once('close', () => this.fds.give(1));
      const timer = setTimeout(() => {
        upstream.destroy();
        reject(Object.assign(new Error(`connect ETIMEDOUT ${d.address}:${d.port}`), { code: 'ETIMEDOUT' }));
      }, this.limits.connectTimeout);
      upstream.once('connect', () => {
        clearTimeout(timer);
        upstream.removeListener('error', reject);
        if (!tunnel) return resolve(upstream);
        resolve({
          socket: upstream,
          setSink: (fn) => {
            sink = fn;
            let ok = true;
            for (const chunk of queued.splice(0)) ok = fn(chunk) && ok;
            if (ok) upstream.resume();
          },
        });
      });
      upstream.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /**
   * Runs a front-end's async handler so that nothing it throws reaches the process: an
   * exception caused by what a sandbox or an upstream sent closes that connection and is
   * audited as a denial (`internal error: ...`), the other connections and sandboxes go on.
   */
  fence(work: Promise<void> | void, socket: Socket, via: Via): void {
    if (!work) return;
    work.catch((err: unknown) => {
      socket.destroy();
      this.audit({
        via,
        host: '',
        port: 0,
        decision: 'deny',
        rule: `internal error: ${(err as Error)?.message ?? String(err)}`,
        durationMs: 0,
      });
    });
  }

  /** A socket listener fenced like fence(): a throw closes `socket` and is audited. */
  fenced<A extends unknown[]>(socket: Socket, via: Via, fn: (...args: A) => void): (...args: A) => void {
    return (...args: A) => {
      try {
        fn(...args);
      } catch (err) {
        this.fence(Promise.reject(err), socket, via);
      }
    };
  }

  audit(partial: Omit<EgressRecord, 'event' | 'sandbox' | 'bytesUp' | 'bytesDown'> & { bytesUp?: number; bytesDown?: number }): void {
    this.opts.audit({ event: 'egress', sandbox: this.opts.sandbox, bytesUp: 0, bytesDown: 0, ...partial });
  }

  /** Audits an allowed decision: its end (bytes, error) or its hand-off to the interceptor. */
  auditAllowed(
    via: Via,
    d: Extract<Decision, { allowed: true }>,
    started: number,
    outcome: Partial<Pick<EgressRecord, 'bytesUp' | 'bytesDown' | 'error' | 'intercepted' | 'budget'>> = {},
  ): void {
    this.audit({
      via,
      host: d.host,
      port: d.port,
      address: d.address,
      decision: 'allow',
      rule: d.rule,
      durationMs: Date.now() - started,
      ...outcome,
      ...(d.calls ? { calls: d.calls } : {}),
    });
  }

  /** Audits a denial made before any upstream exists. */
  auditDenied(via: Via, d: Extract<Decision, { allowed: false }>, started: number): void {
    this.audit({
      via,
      host: d.host,
      port: d.port,
      decision: 'deny',
      rule: d.rule,
      durationMs: Date.now() - started,
      ...(d.calls ? { calls: d.calls } : {}),
    });
  }

  /**
   * Hands an allowed connection on: to the interceptor if it wants the host, else upstream.
   * `ready` is called once the client may be told "connected" (HTTP 200, SOCKS success) and
   * receives the upstream socket (undefined when intercepted); `failed` when the upstream connect
   * fails (the front-end answers 502 / a SOCKS error). `inspect` checks that the first bytes the
   * client sends (TLS SNI, HTTP Host) name the same host as the decision.
   */
  async forward(
    via: Via,
    client: Socket,
    d: Extract<Decision, { allowed: true }>,
    head: Buffer,
    started: number,
    hooks: { ready: (upstream?: Socket) => void; failed: (err: Error) => void; inspect: boolean },
  ): Promise<void> {
    const interceptor = this.opts.interceptor;
    if (interceptor?.wants(d.host, d.port)) {
      this.auditAllowed(via, d, started, { intercepted: true });
      const forget = this.hold(d, () => client.destroy());
      client.once('close', forget);
      hooks.ready(undefined);
      const target: EgressTarget = { host: d.host, port: d.port, address: d.address };
      if (d.connectPort !== undefined) target.connectPort = d.connectPort;
      interceptor.handle(client, target, head);
      return;
    }
    let upstream: TunnelUpstream;
    try {
      upstream = await this.connect(d, true);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      this.auditAllowed(via, d, started, { error: e.code ?? e.message });
      hooks.failed(e);
      return;
    }
    if (client.destroyed) {
      upstream.socket.destroy();
      this.auditAllowed(via, d, started, { error: 'client went away' });
      return;
    }
    hooks.ready(upstream.socket);
    spliceTunnel(this, via, client, upstream, d, head, started, hooks.inspect);
  }

  /**
   * A connection allowed by a tool call's grant (not the base grant) is cut when no call in
   * flight grants it any more (lib/mcp/tool-grants.ts). Returns the function that forgets it.
   */
  hold(d: Extract<Decision, { allowed: true }>, cut: (reason: string) => void): () => void {
    const scope = this.opts.scope;
    if (!d.scoped || scope?.hold === undefined) return () => {};
    return scope.hold(d.host, d.port, cut);
  }

  destroyAll(): void {
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    // Each close() reports at once, which records the tunnel and removes it from the set.
    for (const r of this.relays) r.close();
    this.relays.clear();
  }
}
