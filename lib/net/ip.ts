// IP address parsing, canonical formatting and CIDR matching, over 4- or 16-byte arrays.
// Kept free of DNS and policy so that the allowlist, the SSRF guard and the DNS pool share one
// notion of "the same address" (an IPv4 address and its ::ffff: mapped form stay distinct here;
// ssrf.ts unwraps mapped addresses explicitly).

// node:net on first use, not at load: `stockade run` parses no address before its spawn in most
// policies, and loading node:net was 2.5 ms of the launcher's start (bench/coldstart.ts).
let nodeNet: typeof import('node:net') | undefined;
const net = () => (nodeNet ??= require('node:net') as typeof import('node:net'));

export interface IpAddress {
  family: 4 | 6;
  bytes: Uint8Array;
}

/** Parses a canonical dotted-quad IPv4 or an IPv6 literal (no brackets, no zone). Null otherwise. */
export function parseIp(text: string): IpAddress | null {
  if (net().isIPv4(text)) {
    return { family: 4, bytes: Uint8Array.from(text.split('.').map(Number)) };
  }
  if (net().isIPv6(text) && !text.includes('%')) return { family: 6, bytes: parseIPv6(text) };
  return null;
}

function parseIPv6(text: string): Uint8Array {
  const bytes = new Uint8Array(16);
  // An embedded dotted quad ("::ffff:1.2.3.4") is rewritten as its two hex groups first.
  const lastColon = text.lastIndexOf(':');
  let tail = text;
  if (text.slice(lastColon + 1).includes('.')) {
    const q = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail = `${text.slice(0, lastColon + 1)}${((q[0] << 8) | q[1]).toString(16)}:${((q[2] << 8) | q[3]).toString(16)}`;
  }
  const [head, rest] = tail.includes('::') ? tail.split('::') : [tail, undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups =
    rest === undefined
      ? headGroups
      : [...headGroups, ...new Array<string>(8 - headGroups.length - restGroups.length).fill('0'), ...restGroups];
  groups.forEach((g, i) => {
    const n = Number.parseInt(g, 16);
    bytes[i * 2] = n >> 8;
    bytes[i * 2 + 1] = n & 0xff;
  });
  return bytes;
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return Array.from(ip.bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((ip.bytes[i] << 8) | ip.bytes[i + 1]);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Canonical form of an IP literal, or null when `text` is not one. */
export function canonicalIp(text: string): string | null {
  const ip = parseIp(text);
  return ip ? formatIp(ip) : null;
}

export interface Cidr {
  family: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
}

/** Parses 'a.b.c.d/n' or 'v6/n'; throws a TypeError naming the input when it is not valid. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1);
  if (!ip) throw new TypeError(`invalid CIDR '${text}': not an IP address`);
  const max = ip.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) {
    throw new TypeError(`invalid CIDR '${text}': prefix must be a number`);
  }
  if (prefix > max) throw new TypeError(`invalid CIDR '${text}': prefix longer than ${max}`);
  return { family: ip.family, bytes: ip.bytes, prefix };
}

export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.family !== ip.family) return false;
  let bits = cidr.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((cidr.bytes[i] & mask) !== (ip.bytes[i] & mask)) return false;
  }
  return true;
}

/**
 * inet_aton(3) semantics, which many resolvers and libcs still apply to host names: 1 to 4 parts,
 * each decimal, octal (leading 0) or hex (0x), the last part filling the remaining bytes. So
 * '2130706433', '0x7f.1', '017700000001' and '127.1' are all 127.0.0.1. Returns the dotted quad,
 * or null when `text` is not such a number (or overflows, which inet_aton also rejects).
 */
export function parseInetAton(text: string): string | null {
  const parts = text.split('.');
  if (parts.length > 4) return null;
  const values: number[] = [];
  for (const part of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/i.test(part)) n = part.length === 2 ? 0 : Number.parseInt(part.slice(2), 16);
    else if (/^0[0-7]*$/.test(part)) n = part.length === 1 ? 0 : Number.parseInt(part.slice(1), 8);
    else if (/^[1-9][0-9]*$/.test(part)) n = Number(part);
    else return null;
    if (!Number.isSafeInteger(n)) return null;
    values.push(n);
  }
  const last = values.pop() as number;
  if (values.some((v) => v > 255)) return null;
  if (last >= 2 ** (8 * (4 - values.length))) return null;
  const bytes = [...values];
  for (let i = 4 - values.length - 1; i >= 0; i--) bytes.push(Math.floor(last / 2 ** (8 * i)) % 256);
  return bytes.join('.');
}
