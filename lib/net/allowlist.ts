// The egress allowlist: which hosts and ports a sandbox may reach.
//
// Entry syntax (see docs/network.md):
//   example.com            exact name (the apex only; no subdomains)
//   *.example.com          every name strictly below example.com (NOT example.com itself)
//   203.0.113.7, [2001:db8::1], 10.0.0.0/8, [fd00::/8]   addresses and CIDRs
//   any of the above with ':PORT' (one port) or ':*' (every port)
//
// Port decision: an entry without a port allows 80 and 443 only. Most allowlists are about web
// APIs, and "api.example.com" silently opening ssh, SMTP or a database port on that host would
// surprise the person who wrote it. Other ports must be named ('db.example.com:5432'), or opened
// wholesale with ':*'.
import { HostError, type NormalizedHost, normalizeHost, parsePort, splitAuthority } from './hostname';
import { type Cidr, cidrContains, parseCidr, parseIp } from './ip';

export const DEFAULT_PORTS: readonly number[] = [80, 443];

export interface AllowEntry {
  /** The entry as written, reported as the matching rule. */
  text: string;
  kind: 'exact' | 'suffix' | 'cidr';
  /** Normalized name (exact), the suffix with its leading dot ('.example.com'), or undefined. */
  name?: string;
  cidr?: Cidr;
  /** Allowed ports; 'any' for ':*'. */
  ports: readonly number[] | 'any';
}

export interface MatchResult {
  allowed: boolean;
  /** The entry text that matched, or the reason for the denial. */
  rule: string;
  /** Normalized host (set when the host was valid). */
  host?: NormalizedHost;
}

/**
 * Parses one allowlist entry; throws a TypeError naming the entry when it is not valid. The one
 * grammar of allow entries: the API's network.allow, a policy's (its schema format
 * `host-pattern` calls this), --allow-net and the hosts of a secret all come through here.
 * Names are normalized as the proxy normalizes what it is asked for (lib/net/hostname.ts):
 * case folded, one trailing dot dropped, IDN turned into punycode.
 */
export function parseAllowEntry(text: string): AllowEntry {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new TypeError(`invalid allowlist entry ${JSON.stringify(text)}: empty`);
  }
  try {
    const trimmed = text.trim();
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) throw new TypeError('write a host name, not a URL (drop the scheme and path)');
    if (trimmed.includes('@')) throw new TypeError('the entry contains `@`; write a host name only');
    let ports: readonly number[] | 'any' = DEFAULT_PORTS;
    const split = splitAuthority(trimmed);
    let rest = split.host;
    if (split.portText !== undefined) ports = split.portText === '*' ? 'any' : [parsePort(split.portText, text)];
    if (rest === '*' || rest === '*.*') {
      throw new TypeError('a bare `*` would allow everything; use network "host" if that is really meant');
    }
    if (rest.startsWith('[') && rest.endsWith(']')) rest = rest.slice(1, -1);
    if (rest.includes('/')) return { text, kind: 'cidr', cidr: parseCidr(rest), ports };
    if (rest.startsWith('*.')) {
      const suffix = normalizeHost(rest.slice(2));
      if (suffix.kind !== 'name') throw new TypeError('a wildcard needs a name after "*.", not an address');
      return { text, kind: 'suffix', name: `.${suffix.host}`, ports };
    }
    if (rest.includes('*')) throw new TypeError('a wildcard must be the whole first label, as in `*.example.com` (or `:*` for every port)');
    const host = normalizeHost(rest);
    if (host.kind === 'ip') {
      const ip = parseIp(host.host);
      if (!ip) throw new TypeError('unparseable address');
      return { text, kind: 'cidr', cidr: { ...ip, prefix: ip.family === 4 ? 32 : 128 }, ports };
    }
    return { text, kind: 'exact', name: host.host, ports };
  } catch (err) {
    const reason = err instanceof HostError ? err.reason : (err as Error).message;
    throw new TypeError(`invalid allowlist entry ${JSON.stringify(text)}: ${reason}`);
  }
}

/** Why `text` is not an allow entry (the reason of parseAllowEntry's error), or null. */
export function allowEntryReason(text: string): string | null {
  try {
    parseAllowEntry(text);
    return null;
  } catch (err) {
    return (err as Error).message.replace(/^invalid allowlist entry "(?:[^"\\]|\\.)*": /, '');
  }
}

/**
 * Policy lint on a valid entry: what is allowed but rarely meant. A warning from `stockade check`
 * and `stockade run`, never an error, and nothing at all through the API (a program that builds
 * its allowlist knows what it asked for).
 */
export function lintAllowEntry(text: string): string | null {
  let entry: AllowEntry;
  try {
    entry = parseAllowEntry(text);
  } catch {
    return null;
  }
  if (entry.kind === 'suffix' && !(entry.name as string).slice(1).includes('.')) {
    return `\`${text}\` covers a whole top-level domain; name the domain (\`*.example${entry.name}\`)`;
  }
  // '127.1', '0x7f000001', '2130706433': an IPv4 address in a spelling resolvers disagree on.
  const host = splitAuthority(text.trim()).host;
  if (entry.kind === 'cidr' && !host.includes('/') && !host.includes(':')) {
    const address = normalizeHost(host).host;
    if (address !== host) return `\`${host}\` is read as the address ${address}; write it in full`;
  }
  return null;
}

export class Allowlist {
  readonly entries: readonly AllowEntry[];

  constructor(entries: readonly string[]) {
    if (!Array.isArray(entries)) throw new TypeError('allow must be an array of strings');
    this.entries = entries.map(parseAllowEntry);
  }

  /**
   * Is `host` (raw: it is normalized here) allowed on `port`? A name is matched only by name
   * entries and an address only by address/CIDR entries: a CIDR never admits a name, whatever it
   * resolves to (the SSRF guard checks resolved addresses separately).
   */
  match(host: string, port: number): MatchResult {
    let normalized: NormalizedHost;
    try {
      normalized = normalizeHost(host);
    } catch (err) {
      return { allowed: false, rule: (err as Error).message };
    }
    return this.matchNormalized(normalized, port);
  }

  matchNormalized(host: NormalizedHost, port: number): MatchResult {
    const candidates = this.entries.filter((e) => entryCovers(e, host));
    const hit = candidates.find((e) => e.ports === 'any' || e.ports.includes(port));
    if (hit) return { allowed: true, rule: hit.text, host };
    if (candidates.length > 0) {
      const ports = candidates.map((e) => `"${e.text}" allows port${e.ports.length > 1 ? 's' : ''} ${(e.ports as number[]).join(', ')}`);
      return { allowed: false, rule: `port ${port} not allowed for ${host.host} (${ports.join('; ')})`, host };
    }
    return { allowed: false, rule: `no allowlist entry matches ${host.host}`, host };
  }

  /** Does some entry name this exact address (IP or CIDR) on this port? Used by the SSRF guard. */
  namesAddress(address: string, port: number): AllowEntry | undefined {
    const ip = parseIp(address);
    if (!ip) return undefined;
    return this.entries.find((e) => e.kind === 'cidr' && cidrContains(e.cidr as Cidr, ip) && (e.ports === 'any' || e.ports.includes(port)));
  }

  /** Is this name allowed on any port? (The DNS responder answers such names.) */
  allowsName(name: string): AllowEntry | undefined {
    const host: NormalizedHost = { kind: 'name', host: name };
    return this.entries.find((e) => entryCovers(e, host));
  }
}

/** Does `entry` cover the (normalized) host, whatever the port? */
export function entryCovers(entry: AllowEntry, host: NormalizedHost): boolean {
  if (host.kind === 'ip') {
    if (entry.kind !== 'cidr') return false;
    const ip = parseIp(host.host);
    return ip !== null && cidrContains(entry.cidr as Cidr, ip);
  }
  if (entry.kind === 'exact') return entry.name === host.host;
  if (entry.kind === 'suffix') return host.host.endsWith(entry.name as string);
  return false;
}
