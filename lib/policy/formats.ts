// String formats used by stockade.schema.json ("format": "host-pattern", ...). Each checker
// returns null when the value is fine, or the reason it is not: the reason ends up verbatim in
// the error a user reads, so it names the offending part and, where one exists, the fix.
// The same functions are registered with ajv, so the schema and our messages never disagree, and
// they are the API's own validators (lib/fields.ts, lib/net/allowlist.ts, lib/net/resolve.ts), so
// a policy `stockade check` accepts is one `stockade run` and spawnSandboxed() accept (issue #12).
import {
  absolutePathReason,
  countReason,
  envNameReason,
  hostnameReason,
  parseSize,
  sandboxFileReason,
  sizeReason,
  timeoutSecondsReason,
} from '../fields';
import { allowEntryReason } from '../net/allowlist';

export { parseSize };

// biome-ignore lint/suspicious/noExplicitAny: a string format, or a number format (timeout)
export type FormatCheck = (value: any) => string | null;

export function checkAbsolutePath(p: string): string | null {
  return absolutePathReason(p);
}

/** Allowlist entry: the API's grammar (lib/net/allowlist.ts); policy-only lint is a warning (lint.ts). */
export function checkHostPattern(entry: string): string | null {
  return allowEntryReason(entry);
}

/** `name:port` (a key of the object form of network.resolve), as the proxy's resolver reads it. */
export function checkHostPort(entry: string): string | null {
  return resolveModule().resolveKeyReason(entry);
}

/**
 * curl's --resolve form, `name:port:address`, where the address may carry a port to connect to
 * instead (`api.example.com:443:127.0.0.1:8443`). The egress proxy's own parser decides, so the
 * policy accepts exactly what the proxy will use.
 */
/** The proxy's resolver, loaded with the first resolve entry (and node:dns with it): a plain run never checks one. */
function resolveModule(): typeof import('../net/resolve') {
  return require('../net/resolve') as typeof import('../net/resolve');
}

export function checkResolveEntry(entry: string): string | null {
  try {
    new (resolveModule().Resolver)([entry]);
    return null;
  } catch (err) {
    return (err as Error).message.replace(/^invalid resolve entry '[^']*': /, '');
  }
}

/** A value of the object form of network.resolve: addresses, each with an optional port to connect to. */
export function checkResolveAddress(value: string): string | null {
  return resolveModule().resolveAddressReason(value);
}

export function checkEnvName(name: string): string | null {
  return envNameReason(name);
}

export function checkSize(value: string): string | null {
  return sizeReason(value);
}

/** limits.timeout (seconds): positive, and within what a Node timer can hold (lib/fields.ts). */
export function checkTimeout(value: number): string | null {
  return timeoutSecondsReason(value);
}

export function checkHeaderName(name: string): string | null {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name) ? null : 'not a valid HTTP header name';
}

export function checkSecretFormat(format: string): string | null {
  if (/[\r\n]/.test(format)) return 'the format contains a line break';
  return format.includes('{secret}') ? null : 'the format must contain `{secret}`, e.g. `Bearer {secret}`';
}

export function checkUtsHostname(name: string): string | null {
  return hostnameReason(name);
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

/** Formats that apply to numbers (ajv needs to know; the rest are string formats). */
export const NUMBER_FORMATS: ReadonlySet<string> = new Set(['timeout', 'count', 'bytes']);

/** format name -> [checker, what a user should have written, the same in the plural]. */
export const FORMATS: Record<string, [FormatCheck, string, string]> = {
  'absolute-path': [checkAbsolutePath, 'an absolute path', 'absolute paths'],
  'sandbox-file': [sandboxFileReason, 'a normalized absolute file path inside the sandbox', 'file paths inside the sandbox'],
  'host-pattern': [
    checkHostPattern,
    'a host pattern (example.com, *.example.com, example.com:8443, 10.0.0.0/8)',
    'host patterns (example.com, *.example.com, example.com:8443, 10.0.0.0/8)',
  ],
  'host-port': [checkHostPort, '`name:port`', '`name:port` entries'],
  'resolve-entry': [checkResolveEntry, '`name:port:address`', '`name:port:address` entries'],
  'resolve-address': [checkResolveAddress, 'an address (`127.0.0.1`, `[::1]:8443`, comma-separated)', 'addresses'],
  'env-name': [checkEnvName, 'an environment variable name', 'environment variable names'],
  size: [checkSize, 'a size (bytes, or e.g. 64m)', 'sizes'],
  timeout: [checkTimeout, 'a positive number of seconds', 'numbers of seconds'],
  count: [countReason, 'a positive integer', 'positive integers'],
  bytes: [sizeReason, 'a positive number of bytes', 'numbers of bytes'],
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
