// Name resolution for the proxy: the resolver override first (curl's --resolve convention,
// 'name:port:address[,address...]', or { 'name:port': 'address' } / { name: 'address' }), then
// dns.lookup() for all addresses. The caller checks every address with the SSRF guard and then
// connects to exactly the address it checked, so there is no second lookup to rebind.
import { lookup } from 'node:dns/promises';
import { type HostError, normalizeHost, splitAuthority } from './hostname';
import { canonicalIp } from './ip';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
  /** Port to connect to instead of the requested one (override 'name:443:127.0.0.1:8443'). */
  connectPort?: number;
  /** The override entry that produced it (counts as naming it for the SSRF guard). */
  override?: string;
}

interface OverrideEntry {
  text: string;
  name: string;
  port: number | '*';
  addresses: { address: string; connectPort?: number }[];
}

export type LookupFn = (name: string) => Promise<{ address: string; family: number }[]>;

const defaultLookup: LookupFn = (name) => lookup(name, { all: true, verbatim: true });

export class Resolver {
  private readonly overrides: OverrideEntry[];

  constructor(
    resolve: string[] | Record<string, string> | undefined,
    private readonly lookupFn: LookupFn = defaultLookup,
  ) {
    this.overrides = parseOverrides(resolve);
  }

  /** The override entry for name:port, if any; lets DNS answer overridden names too. */
  override(name: string, port: number): OverrideEntry | undefined {
    return this.overrides.find((o) => o.name === name && (o.port === '*' || o.port === port));
  }

  /** All addresses for a normalized name; throws ENOTFOUND-style errors from dns.lookup. */
  async resolve(name: string, port: number): Promise<ResolvedAddress[]> {
    const o = this.override(name, port);
    if (o) return o.addresses.map((a) => ({ ...a, family: a.address.includes(':') ? 6 : 4, override: o.text }));
    const found = await this.lookupFn(name);
    const out: ResolvedAddress[] = [];
    for (const { address } of found) {
      const c = canonicalIp(address);
      if (c) out.push({ address: c, family: c.includes(':') ? 6 : 4 });
    }
    return out;
  }
}

function parseOverrides(resolve: string[] | Record<string, string> | undefined): OverrideEntry[] {
  if (resolve === undefined) return [];
  const pairs: [string, string, string][] = [];
  if (Array.isArray(resolve)) {
    for (const text of resolve) {
      if (typeof text !== 'string') throw new TypeError(`invalid resolve entry ${JSON.stringify(text)}: not a string`);
      // name:port:address; the address may be an IPv6 literal full of colons, so split twice.
      const first = text.indexOf(':');
      const second = text.indexOf(':', first + 1);
      if (first < 0 || second < 0) {
        throw new TypeError(
          `invalid resolve entry '${text}': expected NAME:PORT:ADDRESS, e.g. api.example.com:443:127.0.0.1 (or :127.0.0.1:8443 to connect to another port)`,
        );
      }
      pairs.push([text, `${text.slice(0, first)}:${text.slice(first + 1, second)}`, text.slice(second + 1)]);
    }
  } else if (resolve && typeof resolve === 'object') {
    for (const [key, value] of Object.entries(resolve)) pairs.push([`${key}=${value}`, key, value]);
  } else {
    throw new TypeError('resolve must be an array of NAME:PORT:ADDRESS strings or an object');
  }
  return pairs.map(([text, key, value]) => parsePair(text, key, value));
}

/** Why a key of the object form (`name:port`, or a bare `name` for every port) is invalid, or null. */
export function resolveKeyReason(key: string): string | null {
  try {
    parseKey(key, key);
    return null;
  } catch (err) {
    return (err as Error).message.replace(/^invalid resolve entry '[^']*': /, '');
  }
}

function parseKey(text: string, key: string): { name: string; port: number | '*' } {
  let split: ReturnType<typeof splitAuthority>;
  try {
    split = splitAuthority(key);
  } catch (err) {
    throw new TypeError(`invalid resolve entry '${text}': ${(err as HostError).reason}`);
  }
  const portText = split.portText ?? '*';
  if (portText !== '*' && !(/^\d{1,5}$/.test(portText) && +portText >= 1 && +portText <= 65535)) {
    throw new TypeError(`invalid resolve entry '${text}': invalid port '${portText}'`);
  }
  let name: string;
  try {
    const n = normalizeHost(split.host);
    if (n.kind !== 'name') throw new Error('an IP address cannot be overridden');
    name = n.host;
  } catch (err) {
    throw new TypeError(`invalid resolve entry '${text}': ${(err as Error).message}`);
  }
  return { name, port: portText === '*' ? '*' : Number(portText) };
}

/** Why a value of the object form (`address[,address...]`, each with an optional port) is invalid, or null. */
export function resolveAddressReason(value: string): string | null {
  try {
    parseAddresses(value, value);
    return null;
  } catch (err) {
    return (err as Error).message.replace(/^invalid resolve entry '[^']*': /, '');
  }
}

function parsePair(text: string, key: string, value: string): OverrideEntry {
  const { name, port } = parseKey(text, key);
  return { text, name, port, addresses: parseAddresses(text, value) };
}

function parseAddresses(text: string, value: string): OverrideEntry['addresses'] {
  if (typeof value !== 'string') throw new TypeError(`invalid resolve entry '${text}': the address is not a string`);
  // An address may carry the port to connect to instead ('127.0.0.1:8443', '[::1]:8443'), so
  // that a local stand-in on an unprivileged port can answer for a name on 443.
  return value.split(',').map((a) => {
    let split: ReturnType<typeof splitAuthority>;
    try {
      split = splitAuthority(a.trim());
    } catch {
      throw new TypeError(`invalid resolve entry '${text}': '${a}' is not an IP address`);
    }
    const bare = split.host.startsWith('[') ? split.host.slice(1, -1) : split.host;
    const c = canonicalIp(bare);
    if (!c || (split.portText !== undefined && !/^\[|^\d+\.\d+\.\d+\.\d+$/.test(split.host))) {
      throw new TypeError(`invalid resolve entry '${text}': '${a}' is not an IP address`);
    }
    if (split.portText === undefined) return { address: c };
    if (!/^\d{1,5}$/.test(split.portText) || +split.portText < 1 || +split.portText > 65535) {
      throw new TypeError(`invalid resolve entry '${text}': invalid port '${split.portText}'`);
    }
    return { address: c, connectPort: Number(split.portText) };
  });
}
