// The pure decision pipeline every front-end (HTTP proxy, SOCKS, transparent) shares: may host:port
// be reached? normalize -> allowlist -> resolve -> SSRF guard -> not the proxy itself; and do the
// SNI / Host a tunnel carries agree with the target it was opened for? Nothing here opens a
// socket: the I/O that carries a decision out is ./connector.ts (upstream connect, audit) and
// ./tunnel.ts (the relay, the plaintext guard, the kernel hand-off).
import type { Socket } from 'node:net';
import type { Allowlist } from './allowlist';
import type { Budget } from './budget';
import { type NormalizedHost, normalizeHost, splitHostPort } from './hostname';
import { type IpAddress, parseIp } from './ip';
import type { Resolver } from './resolve';
import type { sniff } from './sniff';
import { checkAddress, embeddedIPv4 } from './ssrf';

export type Via = 'http' | 'connect' | 'socks' | 'transparent' | 'dns';

/** One audit record: emitted as a pino line and as the EgressProxy 'egress' event. */
export interface EgressRecord {
  event: 'egress';
  sandbox: string;
  via: Via;
  host: string;
  port: number;
  /** The address connected to (allowed connections). */
  address?: string;
  decision: 'allow' | 'deny';
  /** The allowlist entry that matched, or the reason for the denial. */
  rule: string;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  /** Set when an allowed connection then failed (DNS, refused, timeout, reset). */
  error?: string;
  /** Set when the connection was handed to the credential interceptor. */
  intercepted?: boolean;
  /**
   * Set when a budget was reached during an allowed connection and changed how it was carried
   * (e.g. no room for kernel relay pipes: relayed in JavaScript), naming the budget.
   */
  budget?: string;
  /**
   * The MCP tool calls in flight when the decision was made (per-tool grants, GrantScope): the
   * calls whose grant allowed it, or, for a refusal, every call in flight.
   */
  calls?: CallRef[];
}

/** One tools/call request in flight: its JSON-RPC id and tool. */
export interface CallRef {
  id: string | number | null;
  tool: string;
}

/** A scope's answer: allowed or not, why, and the calls the decision is joined to. */
export interface ScopeVerdict {
  allowed: boolean;
  /** The rule that allowed it ('tool fetch_a (call 3): a.test'), or the refusal. */
  rule: string;
  calls: CallRef[];
  /** Allowed by the grant of a call in flight, not by the base grant: the connection is held. */
  scoped?: boolean;
}

/**
 * A grant that changes while the sandbox runs (per-tool grants, lib/mcp/tool-grants.ts). The
 * allowlist the proxy is built from is the union of everything the sandbox may ever reach; the
 * scope narrows it, per decision, to what the calls in flight now are granted. Consulted at
 * connect time (and per request for plain HTTP and for secrets); a connection allowed by a
 * call's grant is held, and cut once no call in flight grants its host any more.
 */
export interface GrantScope {
  /** After the allowlist matched host:port: may it be reached now? */
  checkHost(host: NormalizedHost, port: number): ScopeVerdict;
  /** May the secret `name` be injected now? */
  checkSecret(name: string): ScopeVerdict;
  /**
   * A connection a scoped verdict allowed: `cut` is called (once) when no call in flight grants
   * host:port any more, at once if that is already so. Returns the function that forgets it.
   */
  hold?(host: string, port: number, cut: (reason: string) => void): () => void;
}

export interface EgressLimits {
  /** Concurrent client connections per proxy (all listeners together). Default 1024. */
  maxConnections?: number;
  /**
   * File descriptors this sandbox's proxy may hold: client and upstream sockets, kernel relay
   * pipes (./budget.ts counts them). Default 4096. Every proxy of the process also draws from
   * one host budget, half the process's RLIMIT_NOFILE.
   */
  maxFds?: number;
  /**
   * Bytes this sandbox's proxy may hold queued for a peer that does not read (tunnels relayed in
   * JavaScript: a write the kernel did not take waits in Node). Default 67108864 (64 MiB). A
   * tunnel whose queue does not fit is closed, with `budget` in its record. Every proxy of the
   * process also draws from one host budget (an eighth of the memory, at most 1 GiB).
   */
  maxBufferedBytes?: number;
  /** Names the DNS responder keeps an address for (least recently used recycled). Default 4096. */
  dnsNames?: number;
  /** Largest request head (request line + headers) in bytes. Default 16384. */
  maxHeaderSize?: number;
  /** Close a connection after this long without traffic in either direction (ms). Default 300000. */
  idleTimeout?: number;
  /** Time allowed for a complete request head or SOCKS/TLS handshake to arrive (ms). Default 10000. */
  headersTimeout?: number;
  /** Time allowed for the upstream TCP connect (ms). Default 10000. */
  connectTimeout?: number;
}

export type ResolvedLimits = Required<EgressLimits>;

/** The keys of EgressLimits, for the options check (lib/plan.ts refuses others). */
export const EGRESS_LIMIT_KEYS = [
  'maxConnections',
  'maxFds',
  'dnsNames',
  'maxHeaderSize',
  'idleTimeout',
  'headersTimeout',
  'connectTimeout',
] as const satisfies readonly (keyof EgressLimits)[];

export function resolveLimits(l: EgressLimits = {}): ResolvedLimits {
  const out: ResolvedLimits = {
    maxConnections: l.maxConnections ?? 1024,
    maxFds: l.maxFds ?? 4096,
    maxBufferedBytes: l.maxBufferedBytes ?? 64 * 2 ** 20,
    dnsNames: l.dnsNames ?? 4096,
    maxHeaderSize: l.maxHeaderSize ?? 16384,
    idleTimeout: l.idleTimeout ?? 300_000,
    headersTimeout: l.headersTimeout ?? 10_000,
    connectTimeout: l.connectTimeout ?? 10_000,
  };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new TypeError(`invalid limits.${k}: ${JSON.stringify(v)} (must be a positive integer)`);
  }
  return out;
}

/** What a connection hands to the credential interceptor (lib/secrets). */
export interface EgressTarget {
  host: string;
  port: number;
  address: string;
  /** Port to connect to when the resolver override moves it; `port` otherwise. */
  connectPort?: number;
}

export interface Interceptor {
  wants(host: string, port: number): boolean;
  handle(client: Socket, target: EgressTarget, head: Buffer): void;
  /** The sandbox's fd budget: the interceptor's upstream sockets are charged to it (./budget.ts). */
  useFdBudget?(fds: Budget): void;
}

/**
 * Placeholders of secrets must not leave in plaintext (lib/secrets provides this): the proxy
 * passes every byte a sandbox sends unencrypted — plain HTTP requests, non-TLS tunnels — through
 * it, and refuses the connection at the first placeholder, before that chunk is forwarded.
 * TLS to hosts without a secret passes untouched: it is opaque to the proxy, and a placeholder
 * is worthless anyway; the rule is about plaintext, which any network hop can read.
 */
export interface PlaintextGuard {
  /** The name of the secret whose placeholder occurs in `data`, if any. */
  find(data: Buffer | string): string | undefined;
  /**
   * A scanner for a stream: `forward` is safe to send now; a split placeholder is held back, and
   * a tail that is only the start of the public prefix is let go by release() (StreamScanner).
   */
  stream(): {
    push(chunk: Buffer): { forward: Buffer; match: { name: string } | null };
    readonly releasable: number;
    release(): Buffer;
    end(): Buffer;
  };
  /** Reports a refusal (an audit event and a 'violation' on the sandbox). */
  violation(info: { secret: string; host: string; port: number; via: Via }): void;
}

export type Decision =
  | {
      allowed: true;
      host: string;
      port: number;
      rule: string;
      address: string;
      isName: boolean;
      connectPort?: number;
      calls?: CallRef[];
      /** Allowed by a tool call's grant (GrantScope.hold applies). */
      scoped?: boolean;
    }
  | { allowed: false; host: string; port: number; rule: string; status: 403 | 502; calls?: CallRef[] };

export interface DeciderOptions {
  allowlist: Allowlist;
  resolver: Resolver;
  /** The proxy's own listening endpoints (refused as targets). */
  ownEndpoints: () => { address: string; port: number }[];
  /**
   * The host's interface addresses (os.networkInterfaces): where an endpoint bound to 0.0.0.0
   * or :: answers besides loopback. Asked only when such an endpoint has the port in question.
   */
  localAddresses: () => string[];
  /** Narrows the allowlist to the grant of the tool calls in flight (per-tool grants). */
  scope?: GrantScope;
}

/** The decision pipeline of one sandbox's proxy. */
export class Decider {
  constructor(readonly opts: DeciderOptions) {}

  /** Policy decision for a raw host (any spelling) and port. Never throws. */
  async decide(rawHost: string, port: number): Promise<Decision> {
    let host: NormalizedHost;
    try {
      host = normalizeHost(rawHost);
    } catch (err) {
      return { allowed: false, host: rawHost, port, rule: (err as Error).message, status: 403 };
    }
    return this.decideNormalized(host, port);
  }

  async decideNormalized(host: NormalizedHost, port: number): Promise<Decision> {
    const deny = (rule: string, status: 403 | 502 = 403): Decision => ({ allowed: false, host: host.host, port, rule, status });
    if (host.kind === 'ip') {
      const self = this.isSelf(host.host, port);
      if (self) return deny(self);
    }
    const match = this.opts.allowlist.matchNormalized(host, port);
    if (!match.allowed) return deny(match.rule);
    // Per-tool grants: the union allowed it; is it in the grant of what runs now?
    const scoped = this.opts.scope?.checkHost(host, port);
    if (scoped && !scoped.allowed) return { ...deny(scoped.rule), calls: scoped.calls };
    const calls = scoped ? { calls: scoped.calls, ...(scoped.scoped ? { scoped: true as const } : {}) } : {};
    const rule = scoped ? scoped.rule : match.rule;
    if (host.kind === 'ip') {
      // Allowed by an address/CIDR entry, which also names it for the SSRF guard.
      return { allowed: true, host: host.host, port, rule, address: host.host, isName: false, ...calls };
    }
    let addresses: { address: string; override?: string; connectPort?: number }[];
    try {
      addresses = await this.opts.resolver.resolve(host.host, port);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      return deny(`cannot resolve ${host.host}: ${code}`, 502);
    }
    if (addresses.length === 0) return deny(`cannot resolve ${host.host}: no addresses`, 502);
    let firstRefusal = '';
    for (const a of addresses) {
      // The port connected to: an override that moves it ('127.0.0.1:8443') moves the check too.
      const self = this.isSelf(a.address, a.connectPort ?? port);
      if (self) return deny(self);
      const namedBy = a.override ?? this.opts.allowlist.namesAddress(a.address, port)?.text;
      const verdict = checkAddress(a.address, namedBy);
      if (verdict.allowed) {
        return { allowed: true, host: host.host, port, rule, address: a.address, isName: true, connectPort: a.connectPort, ...calls };
      }
      firstRefusal ||= `${verdict.rule} (${host.host} resolved to it)`;
    }
    return { ...deny(firstRefusal), ...calls };
  }

  /**
   * Refuses an address:port that lands on one of the proxy's own listeners: a payload must not
   * have the proxy connect to itself (a loop, each hop holding two more of its sockets, and
   * requests whose client is the proxy rather than the sandbox). "Lands on" is the kernel's
   * rule, not a port match: a listener bound to 127.0.0.1:P takes connections to 127.0.0.1:P
   * only (127.0.0.2:P is another socket, another server's: test/net-load's upstream drew the
   * proxy's port there, and was refused), one bound to 0.0.0.0:P or [::]:P every local address
   * on P. Every spelling of an address counts (landingsOf).
   */
  private isSelf(address: string, port: number): string | undefined {
    let landings: IpAddress[] | undefined;
    let local: IpAddress[] | undefined;
    const refusal = `refused: ${address}:${port} is the proxy itself`;
    for (const own of this.opts.ownEndpoints()) {
      if (own.port !== port) continue;
      landings ??= landingsOf(address);
      const bound = asAddress(own.address);
      // An endpoint whose address we cannot read may be bound anywhere: fail closed.
      if (!bound) return refusal;
      if (!isUnspecified(bound)) {
        if (landings.some((l) => sameIp(l, bound))) return refusal;
        continue;
      }
      // Bound to 0.0.0.0 or '::': every local address of its family; '::' takes IPv4 too unless
      // the socket is IPV6_V6ONLY, which server.address() does not tell, so it counts as not.
      local ??= this.opts.localAddresses().flatMap((a) => asAddress(a) ?? []);
      for (const l of landings) {
        if (bound.family === 4 && l.family === 6) continue;
        if (isLoopback(l) || local.some((x) => sameIp(x, l))) return refusal;
      }
    }
    return undefined;
  }

  /** Undefined when the sniffed name agrees with `host`, else the refusal. */
  checkAgreement(r: ReturnType<typeof sniff>, host: string): string | undefined {
    if (r.kind === 'invalid') return `refused: malformed ${r.protocol} inside tunnel to ${host}: ${r.reason}`;
    if (r.kind === 'tls' && r.host !== null) {
      const sni = safeName(r.host);
      if (sni !== host) return `sni-mismatch: TLS SNI ${JSON.stringify(r.host)} does not match target ${host}`;
    }
    if (r.kind === 'http' && r.host !== null) {
      const h = safeName(hostOfHeader(r.host));
      if (h !== host) return `host-mismatch: Host header ${JSON.stringify(r.host)} does not match target ${host}`;
    }
    return undefined;
  }
}

const LOOPBACK4: IpAddress = { family: 4, bytes: Uint8Array.of(127, 0, 0, 1) };
const LOOPBACK6: IpAddress = { family: 6, bytes: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1) };

/**
 * Where a connect() to `address` may land, as Linux reads it: an IPv6 form that embeds an IPv4
 * address is that address (asAddress), and the unspecified address is loopback (0.0.0.0 is
 * connected to 127.0.0.1; '::' to ::1, or to 127.0.0.1 from a socket bound to a mapped
 * address, so both). Empty for what is not an address: the SSRF guard refuses that.
 */
function landingsOf(address: string): IpAddress[] {
  const ip = asAddress(address);
  if (!ip) return [];
  return isUnspecified(ip) ? [LOOPBACK4, LOOPBACK6] : [ip];
}

/**
 * Parses an address (a zone, which server.address() gives for link-local, dropped), as IPv4 when
 * it embeds one: ::ffff:127.0.0.1 is 127.0.0.1 to the kernel; the NAT64, 6to4 and compatible
 * forms are read the same way, as the SSRF guard reads them, which can only refuse more.
 */
function asAddress(text: string): IpAddress | null {
  const ip = parseIp(text.replace(/%.*$/, ''));
  if (!ip || ip.family === 4) return ip;
  // '::' and '::1' lie inside ::/96 (IPv4-compatible) but are IPv6's own.
  if (ip.bytes.subarray(0, 15).every((b) => b === 0) && ip.bytes[15] <= 1) return ip;
  return embeddedIPv4(ip) ?? ip;
}

function isUnspecified(ip: IpAddress): boolean {
  return ip.bytes.every((b) => b === 0);
}

function isLoopback(ip: IpAddress): boolean {
  return ip.family === 4 ? ip.bytes[0] === 127 : sameIp(ip, LOOPBACK6);
}

function sameIp(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.bytes.every((x, i) => x === b.bytes[i]);
}

/** Normalized name or a marker that never equals a valid name. */
export function safeName(raw: string): string {
  try {
    return normalizeHost(raw).host;
  } catch {
    return `\0invalid:${raw}`;
  }
}

export function hostOfHeader(value: string): string {
  try {
    return splitHostPort(value).host;
  } catch {
    return `\0invalid:${value}`;
  }
}
