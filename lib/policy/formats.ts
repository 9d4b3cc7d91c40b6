// String formats used by stockade.schema.json ("format": "host-pattern", ...). Each checker
// returns null when the value is fine, or the reason it is not: the reason ends up verbatim in
// the error a user reads, so it names the offending part and, where one exists, the fix.
// The same functions are registered with ajv, so the schema and our messages never disagree.
import { isIP, isIPv4, isIPv6 } from 'node:net';

export type FormatCheck = (value: string) => string | null;

// Control characters (NUL, newlines, escapes) have no place in a path or a host name.
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

export function checkAbsolutePath(p: string): string | null {
  if (p.length === 0) return 'the path is empty';
  if (hasControl(p)) return 'the path contains a control character';
  if (p.startsWith('~')) return '`~` is not expanded; write the absolute path';
  if (!p.startsWith('/')) return 'the path is relative; policies take absolute paths only';
  if (p.split('/').includes('..')) return 'the path contains `..`; write the normalized path';
  return null;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** A DNS name without wildcard or port: labels of letters, digits and inner hyphens. */
export function checkDnsName(name: string): string | null {
  if (name.length === 0) return 'the host name is empty';
  if (hasControl(name) || /\s/.test(name)) return 'the host name contains whitespace or a control character';
  if (name.endsWith('.')) return 'drop the trailing dot';
  if (name.length > 253) return 'the host name is longer than 253 characters';
  const labels = name.split('.');
  for (const label of labels) {
    if (label === '') return 'the host name has an empty label (`..`)';
    if (label.includes('*')) return 'a wildcard must be the whole first label, as in `*.example.com`';
    if (!LABEL.test(label)) return `\`${label}\` is not a valid DNS label (letters, digits, inner hyphens; at most 63)`;
  }
  // A name whose last label is numeric or hex is an IP literal in disguise (127.1, 0x7f000001,
  // 2130706433): resolvers and URL parsers disagree on those, which is how allowlists get fooled.
  const last = labels[labels.length - 1];
  if (/^\d+$/.test(last) || /^0x[0-9a-f]*$/i.test(last)) {
    return 'this looks like an IP address but is not a plain dotted quad; write the address in full (e.g. 127.0.0.1)';
  }
  return null;
}

function checkPort(port: string): string | null {
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    return `\`${port}\` is not a port number (1-65535)`;
  }
  return null;
}

/** Allowlist entry: host, *.suffix, IPv4/IPv6 literal, CIDR, each with an optional :port. */
export function checkHostPattern(entry: string): string | null {
  if (entry.length === 0) return 'the entry is empty';
  if (hasControl(entry) || /\s/.test(entry)) return 'the entry contains whitespace or a control character';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) return 'write a host name, not a URL (drop the scheme and path)';
  if (entry === '*' || entry === '*.*') return 'a bare `*` would allow everything; use network "host" if that is really meant';
  if (entry.includes('@')) return 'the entry contains `@`; write a host name only';
  if (entry.includes('/')) {
    const [addr, bits, ...rest] = entry.split('/');
    const max = isIPv4(addr) ? 32 : isIPv6(addr) ? 128 : -1;
    if (rest.length > 0 || max < 0 || !/^\d{1,3}$/.test(bits) || Number(bits) > max) {
      return 'a CIDR range is an IP address and a prefix length, e.g. 10.0.0.0/8 or fd00::/8';
    }
    return null;
  }
  if (entry.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(entry);
    if (!m || !isIPv6(m[1])) return 'a bracketed entry must be an IPv6 address, e.g. [::1]:8080';
    return m[2] === undefined ? null : checkPort(m[2]);
  }
  if (isIPv6(entry)) return null;
  let host = entry;
  const colon = entry.lastIndexOf(':');
  if (colon >= 0) {
    if (entry.indexOf(':') !== colon) return 'an IPv6 address with a port must be bracketed: [::1]:8080';
    const portReason = checkPort(entry.slice(colon + 1));
    if (portReason) return portReason;
    host = entry.slice(0, colon);
  }
  if (isIPv4(host)) return null;
  if (host.startsWith('*.')) {
    const suffix = host.slice(2);
    const reason = checkDnsName(suffix);
    if (reason) return reason;
    if (!suffix.includes('.')) return `\`${host}\` covers a whole top-level domain; name the domain (\`*.example.${suffix}\`)`;
    return null;
  }
  return checkDnsName(host);
}

/** `name:port` (a key of the object form of network.resolve). */
export function checkHostPort(entry: string): string | null {
  const colon = entry.lastIndexOf(':');
  if (colon < 0) return 'expected `name:port`';
  return checkDnsName(entry.slice(0, colon)) ?? checkPort(entry.slice(colon + 1));
}

/**
 * curl's --resolve form, `name:port:address`, where the address may carry a port to connect to
 * instead (`api.example.com:443:127.0.0.1:8443`). The egress proxy's own parser decides, so the
 * policy accepts exactly what the proxy will use.
 */
export function checkResolveEntry(entry: string): string | null {
  try {
    // Loaded with the first resolve entry (and with it node:dns): a plain run never checks one.
    const { Resolver } = require('../net/resolve') as typeof import('../net/resolve');
    new Resolver([entry]);
    return null;
  } catch (err) {
    return (err as Error).message.replace(/^invalid resolve entry '[^']*': /, '');
  }
}

export function checkIpAddress(addr: string): string | null {
  return isIP(addr) ? null : `\`${addr}\` is not an IPv4 or IPv6 address`;
}

export function checkEnvName(name: string): string | null {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)
    ? null
    : 'an environment variable name is letters, digits and `_`, not starting with a digit';
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i;
const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Parses '512m', '1.5G', '64KiB', '4096' to bytes (binary units, as tmpfs and ulimit do). */
export function parseSize(value: number | string): number {
  if (typeof value === 'number') return value;
  const m = SIZE.exec(value.trim());
  if (!m) throw new TypeError(`invalid size \`${value}\`: expected bytes or a number with k, m, g or t`);
  return Math.floor(Number(m[1]) * UNITS[m[2].toLowerCase()]);
}

export function checkSize(value: string): string | null {
  const m = SIZE.exec(value.trim());
  if (!m) return 'expected bytes or a number with a unit k, m, g or t (e.g. 512m)';
  if (parseSize(value) < 1) return 'the size must be at least one byte';
  return null;
}

export function checkHeaderName(name: string): string | null {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name) ? null : 'not a valid HTTP header name';
}

export function checkSecretFormat(format: string): string | null {
  if (/[\r\n]/.test(format)) return 'the format contains a line break';
  return format.includes('{secret}') ? null : 'the format must contain `{secret}`, e.g. `Bearer {secret}`';
}

export function checkUtsHostname(name: string): string | null {
  if (name.length > 64) return 'a hostname is at most 64 characters';
  if (name.endsWith('.')) return 'drop the trailing dot';
  for (const label of name.split('.')) {
    if (!LABEL.test(label)) return `\`${label}\` is not a valid hostname label`;
  }
  return null;
}

/** Tool names (MCP: letters, digits, `_ - . /`) with `*` as the only wildcard. */
export function checkToolPattern(pattern: string): string | null {
  if (pattern.length === 0 || pattern.length > 128) return 'a tool name is 1 to 128 characters';
  if (/[?[\]{}!]/.test(pattern)) return 'only `*` is supported as a wildcard (matching any run of characters)';
  if (pattern.includes('**')) return '`**` is not meaningful here; use a single `*`';
  if (!/^[A-Za-z0-9_\-./*]+$/.test(pattern)) return 'a tool name is letters, digits and `_ - . /`';
  return null;
}

/** A keyring attribute name for `secret-tool lookup`: never an option (no leading `-`). */
export function checkKeyringAttribute(name: string): string | null {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(name)) return 'an attribute name is letters, digits and `_ . -`, not starting with `-`';
  return null;
}

/** format name -> [checker, what a user should have written, the same in the plural]. */
export const FORMATS: Record<string, [FormatCheck, string, string]> = {
  'absolute-path': [checkAbsolutePath, 'an absolute path', 'absolute paths'],
  'host-pattern': [
    checkHostPattern,
    'a host pattern (example.com, *.example.com, example.com:8443, 10.0.0.0/8)',
    'host patterns (example.com, *.example.com, example.com:8443, 10.0.0.0/8)',
  ],
  'host-port': [checkHostPort, '`name:port`', '`name:port` entries'],
  'resolve-entry': [checkResolveEntry, '`name:port:address`', '`name:port:address` entries'],
  'ip-address': [checkIpAddress, 'an IP address', 'IP addresses'],
  'env-name': [checkEnvName, 'an environment variable name', 'environment variable names'],
  size: [checkSize, 'a size (bytes, or e.g. 64m)', 'sizes'],
  'header-name': [checkHeaderName, 'an HTTP header name', 'HTTP header names'],
  'secret-format': [checkSecretFormat, 'a header format containing {secret}', 'header formats'],
  'uts-hostname': [checkUtsHostname, 'a hostname', 'hostnames'],
  'tool-pattern': [checkToolPattern, 'a tool name or pattern', 'tool names or patterns'],
  'keyring-attribute': [checkKeyringAttribute, 'a keyring attribute name', 'keyring attribute names'],
};

/** Glob match for tool patterns: `*` matches any run of characters, nothing else is special. */
export function toolMatches(pattern: string, name: string): boolean {
  return toolMatcher(pattern)(name);
}

/** toolMatches with the pattern compiled once, for callers that test many names. */
export function toolMatcher(pattern: string): (name: string) => boolean {
  if (!pattern.includes('*')) return (name) => pattern === name;
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&'))
      .join('.*')}$`,
  );
  return (name) => re.test(name);
}
