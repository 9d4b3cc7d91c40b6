// SSRF guard: classifies a resolved address and refuses every one that is not globally routable
// (loopback, private, link-local with the cloud metadata endpoint 169.254.169.254, CGNAT,
// multicast, unspecified, documentation, benchmarking, reserved...) unless the policy names it.
// "Named" means an allowlist IP/CIDR entry covers it, or the address came from the resolver
// override (the user pointed the name there on purpose). IPv6 forms that embed an IPv4 address
// (::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16, ::a.b.c.d) are judged by that IPv4.
import { type Cidr, cidrContains, type IpAddress, parseCidr, parseIp } from './ip';

export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'cgnat'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'documentation'
  | 'benchmarking'
  | 'ietf-protocol'
  | 'unique-local'
  | 'site-local'
  | 'invalid';

// Parsed on first use, not at load: every `stockade run` loads this module (lib/plan.ts), and
// node:net's isIPv6 regular expression is compiled twice (bytecode, then native code) on its
// first calls, ~5-13 ms of a cold start that a sandbox without network never needs back.
const TABLE_TEXT: [string, AddressClass][] = [
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'ietf-protocol'],
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['100::/64', 'reserved'],
  ['2001::/23', 'ietf-protocol'],
  ['2001:db8::/32', 'documentation'],
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
];

const EMBEDDING_V4_TEXT: [string, number][] = [
  ['::ffff:0:0/96', 12],
  ['64:ff9b::/96', 12],
  ['64:ff9b:1::/48', 12],
  ['::/96', 12],
  ['2002::/16', 2],
];

let tables: { classes: [Cidr, AddressClass][]; embedding: [Cidr, number][] } | undefined;

function parsedTables(): NonNullable<typeof tables> {
  tables ??= {
    classes: TABLE_TEXT.map(([c, k]) => [parseCidr(c), k]),
    embedding: EMBEDDING_V4_TEXT.map(([c, offset]) => [parseCidr(c), offset]),
  };
  return tables;
}

/** The IPv4 address an IPv6 address embeds (mapped, NAT64, 6to4, compatible), if any. */
export function embeddedIPv4(ip: IpAddress): IpAddress | null {
  if (ip.family !== 6) return null;
  for (const [cidr, offset] of parsedTables().embedding) {
    if (cidrContains(cidr, ip)) return { family: 4, bytes: ip.bytes.slice(offset, offset + 4) };
  }
  return null;
}

export function classifyAddress(address: string): AddressClass {
  const ip = parseIp(address);
  if (!ip) return 'invalid';
  // '::' and '::1' fall inside ::/96 but are classes of their own.
  const { classes } = parsedTables();
  for (const [cidr, kind] of classes) {
    if (cidr.family === 6 && cidr.prefix === 128 && cidrContains(cidr, ip)) return kind;
  }
  const v4 = embeddedIPv4(ip);
  const target = v4 ?? ip;
  for (const [cidr, kind] of classes) if (cidrContains(cidr, target)) return kind;
  return 'public';
}

export interface SsrfVerdict {
  allowed: boolean;
  class: AddressClass;
  /** Why: 'public address', the naming rule, or the refusal. */
  rule: string;
}

/**
 * Decides whether the proxy may connect to `address`. `namedBy` is the allowlist entry or
 * resolver-override entry that names this address, if any.
 */
export function checkAddress(address: string, namedBy: string | undefined): SsrfVerdict {
  const kind = classifyAddress(address);
  if (kind === 'invalid') return { allowed: false, class: kind, rule: `ssrf: ${address} is not an IP address` };
  if (namedBy !== undefined) return { allowed: true, class: kind, rule: namedBy };
  if (kind === 'public') return { allowed: true, class: kind, rule: 'public address' };
  return {
    allowed: false,
    class: kind,
    rule: `ssrf: ${address} is a ${kind} address and no allowlist or resolve entry names it`,
  };
}
