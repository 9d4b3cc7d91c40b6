// EgressProxy: one sandbox's way out. It serves listening sockets it is given (the spawner binds
// them inside the sandbox's netns and passes the fds up; tests pass ordinary 127.0.0.1
// listeners) and composes the allowlist, resolver override, SSRF guard, DNS responder and the
// HTTP / SOCKS5 / transparent front-ends. It never listens by itself.
//
// Audit: every decision is exactly one record, logged with pino at info level
// ({ event: 'egress', sandbox, via, host, port, address, rule, decision, bytesUp, bytesDown,
// durationMs }) and emitted as 'egress' on this object. A denial is recorded when it is made; an
// allowed connection (or HTTP request) when it ends, so the record carries its byte counts and
// duration. DNS answers are recorded the same way with via 'dns'.
import { EventEmitter } from 'node:events';
import type { Server, Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type { EgressOptions } from '../options';
import { Allowlist } from './allowlist';
import { Connector, type EgressRecord, type GrantScope, type Interceptor, type PlaintextGuard, resolveLimits } from './connector';
import { DEFAULT_DNS_POOL, DnsPool, DnsResponder, serveDnsTcp } from './dns';
import { HttpProxy } from './http-proxy';
import { type LookupFn, Resolver } from './resolve';
import { serveSocksConnection } from './socks';
import { serveTransparentConnection } from './transparent';

export type { CallRef, EgressLimits, EgressRecord, EgressTarget, GrantScope, Interceptor, ScopeVerdict } from './connector';

export interface EgressProxyExtras {
  /** Credential interceptor (lib/secrets): takes over allowed connections to hosts it wants. */
  interceptor?: Interceptor;
  /** Refuses placeholders in plaintext (lib/secrets), for every connection not intercepted. */
  guard?: PlaintextGuard;
  /** Address pool for DNS answers. Default 198.18.0.0/15. */
  dnsPool?: string;
  /** Host resolver used when no override matches. Default dns.lookup (all addresses). */
  lookup?: LookupFn;
  /**
   * Move the bytes of inspected tunnels (CONNECT, SOCKS, transparent, WebSocket upgrades) with
   * splice(2) in the kernel instead of through JavaScript. Default true; false keeps every byte
   * in JavaScript (e.g. to compare the two).
   */
  kernelRelay?: boolean;
  /**
   * Per-tool grants (lib/mcp/tool-grants.ts): `options.allow` is everything the sandbox may ever
   * reach; the scope narrows each decision to the grant of the tool calls in flight.
   */
  scope?: GrantScope;
}

type Kind = 'http' | 'socks' | 'transparent' | 'dns-tcp';

export interface EgressProxyEvents {
  egress: [EgressRecord];
}

export class EgressProxy extends EventEmitter<EgressProxyEvents> {
  readonly sandbox: string;
  readonly allowlist: Allowlist;
  readonly dnsPool: DnsPool;
  private readonly connector: Connector;
  private readonly http: HttpProxy;
  private readonly dns: DnsResponder;
  private readonly servers = new Map<Server, Kind>();
  private readonly acceptors = new Map<Server, (socket: Socket) => void>();
  private readonly logger?: Logger;
  private clients = 0;
  private closing = false;

  /** Throws a TypeError naming the bad entry when the options are invalid. */
  constructor(options: EgressOptions, sandbox: string, logger?: Logger, extras: EgressProxyExtras = {}) {
    super();
    if (!options || typeof options !== 'object') throw new TypeError('egress options must be an object');
    if (typeof sandbox !== 'string' || sandbox === '') throw new TypeError('sandbox id must be a non-empty string');
    this.sandbox = sandbox;
    this.logger = logger;
    this.allowlist = new Allowlist(options.allow);
    const resolver = new Resolver(options.resolve, extras.lookup);

    const limits = resolveLimits(options.limits);
    this.dnsPool = new DnsPool(extras.dnsPool ?? DEFAULT_DNS_POOL, limits.dnsNames);
    this.connector = new Connector({
      sandbox,
      allowlist: this.allowlist,
      resolver,
      limits,
      interceptor: extras.interceptor,
      guard: extras.guard,
      ownEndpoints: () => this.ownEndpoints(),
      localAddresses,
      audit: (record) => this.record(record),
      kernelRelay: extras.kernelRelay ?? true,
      ...(extras.scope ? { scope: extras.scope } : {}),
    });
    this.http = new HttpProxy(this.connector);
    this.dns = new DnsResponder(this.allowlist, this.dnsPool, (d) =>
      this.record({
        event: 'egress',
        sandbox,
        via: 'dns',
        host: d.name,
        port: 53,
        decision: d.allowed ? 'allow' : 'deny',
        rule: d.rule,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: 0,
        ...(d.address ? { address: d.address } : {}),
      }),
    );
  }

  /** Client connections currently open, across all served listeners. */
  get connections(): number {
    return this.clients;
  }

  /** Bytes queued in this proxy's sockets for peers that do not read (limits.maxBufferedBytes). */
  get bufferedBytes(): number {
    return this.connector.buffered.used;
  }

  /**
   * File descriptors this proxy holds against limits.maxFds: client sockets, upstream sockets,
   * kernel relays, and the credential interceptor's upstream connections.
   */
  get fdsInUse(): number {
    return this.connector.fds.used;
  }

  /** Tunnels currently relayed in the kernel (also counted in `connections`). */
  get kernelRelays(): number {
    return this.connector.relays.size;
  }

  /** Serves an HTTP proxy (CONNECT and absolute-form) on an already-listening server. */
  serveHttpProxy(server: Server): void {
    this.serve(server, 'http', (s) => this.http.accept(s));
  }

  /** Serves SOCKS5 on an already-listening server. */
  serveSocks(server: Server): void {
    this.serve(server, 'socks', (s) => serveSocksConnection(this.connector, s));
  }

  /** Serves transparent interception: accepted sockets' local address/port is the destination. */
  serveTransparent(server: Server): void {
    this.serve(server, 'transparent', (s) => serveTransparentConnection(this.connector, this.dnsPool, s));
  }

  /** Serves DNS over TCP (length-prefixed) on an already-listening server. */
  serveDnsTcp(server: Server): void {
    this.serve(server, 'dns-tcp', (s) => serveDnsTcp(s, (m) => this.dns.handleQuery(m), this.connector.limits.headersTimeout));
  }

  /** Answers one DNS query message (UDP payload); null means drop it. Never throws. */
  handleDnsQuery(msg: Buffer): Buffer | null {
    try {
      return this.dns.handleQuery(msg);
    } catch {
      return null;
    }
  }

  /**
   * Stops serving: closes the served listeners, destroys every client and upstream socket and
   * closes every kernel relay. Resolves once the listeners are closed.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closes: Promise<void>[] = [];
    for (const [server, listener] of this.acceptors) {
      server.removeListener('connection', listener);
      closes.push(new Promise((resolve) => server.close(() => resolve())));
    }
    this.acceptors.clear();
    this.connector.destroyAll();
    this.http.server.closeAllConnections?.();
    await Promise.all(closes);
    this.servers.clear();
  }

  private serve(server: Server, kind: Kind, handle: (socket: Socket) => void): void {
    if (this.closing) throw new Error(`EgressProxy for sandbox ${this.sandbox} is closed`);
    if (this.servers.has(server)) throw new Error(`server already served as ${this.servers.get(server)}`);
    this.servers.set(server, kind);
    const limits = this.connector.limits;
    const listener = (socket: Socket): void => {
      if (this.closing) {
        socket.destroy();
        return;
      }
      const over =
        this.clients >= limits.maxConnections
          ? `limit: more than ${limits.maxConnections} concurrent connections`
          : this.connector.fds.take(1)
            ? undefined
            : `budget: ${this.connector.fds.refusal(1)} reached`;
      if (over) {
        this.record({
          event: 'egress',
          sandbox: this.sandbox,
          via: kind === 'http' ? 'http' : kind === 'dns-tcp' ? 'dns' : kind,
          host: '',
          port: 0,
          decision: 'deny',
          rule: over,
          bytesUp: 0,
          bytesDown: 0,
          durationMs: 0,
        });
        socket.on('error', () => {});
        socket.resetAndDestroy();
        return;
      }
      this.clients++;
      // Not 'close': a tunnel handed to a kernel relay outlives its Node socket.
      this.connector.whenGone(socket, () => {
        this.clients--;
        this.connector.fds.give(1);
      });
      socket.on('error', () => {});
      this.connector.track(socket);
      try {
        handle(socket);
      } catch (err) {
        this.connector.fence(Promise.reject(err), socket, kind === 'http' ? 'http' : kind === 'dns-tcp' ? 'dns' : kind);
      }
    };
    this.acceptors.set(server, listener);
    server.on('connection', listener);
  }

  private ownEndpoints(): { address: string; port: number }[] {
    const out: { address: string; port: number }[] = [];
    for (const [server, kind] of this.servers) {
      // Transparent listeners are not "the proxy": they stand in for every address on their port.
      if (kind !== 'http' && kind !== 'socks') continue;
      const a = server.address();
      if (a && typeof a === 'object') out.push({ address: a.address, port: a.port });
    }
    return out;
  }

  private record(record: EgressRecord): void {
    // Denials at warn, so a log filtered by level still shows them.
    this.logger?.[record.decision === 'deny' ? 'warn' : 'info'](
      record,
      `egress ${record.decision} ${record.host}:${record.port} (${record.rule})`,
    );
    this.emit('egress', record);
  }
}

/** Every address of the host's interfaces, loopback's included. */
function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address));
}
