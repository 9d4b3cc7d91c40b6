// Host name normalization and validation: every host the proxy sees (CONNECT target, absolute
// URL, Host header, SNI, SOCKS domain, DNS question) goes through normalizeHost() before any
// policy decision, so that two spellings of one host can never get two different answers.
import { domainToASCII } from 'node:url';
import { canonicalIp, parseInetAton } from './ip';

export type NormalizedHost = { kind: 'name'; host: string } | { kind: 'ip'; host: string; family: 4 | 6 };

export class HostError extends TypeError {
  readonly code = 'ERR_STOCKADE_BAD_HOST';
  constructor(
    readonly input: string,
    readonly reason: string,
  ) {
    super(`invalid host ${JSON.stringify(input)}: ${reason}`);
  }
}

const MAX_NAME = 253;
const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Lowercases, strips one trailing dot, converts IDN to punycode, and recognises IP literals in
 * every spelling a resolver might accept (dotted quad, bracketed or bare IPv6, and the inet_aton
 * forms 2130706433, 0x7f.1, 017700000001, 127.1, plus full-width digits) so they are judged as
 * addresses, never as names. Throws HostError naming the input otherwise.
 */
export function normalizeHost(input: string): NormalizedHost {
  if (input.length === 0) throw new HostError(input, 'empty');
  if (input.length > 1024) throw new HostError(`${input.slice(0, 64)}...`, 'too long');
  // Before anything else: control characters, whitespace and NUL have no place in a host, and
  // "evil.com\0.good.com" must not survive into a comparison or a C string.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find them
  if (/[\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]/.test(input)) {
    throw new HostError(input, 'contains a control character or whitespace');
  }
  let host = input;
  if (host.startsWith('[') && host.endsWith(']')) {
    const ip6 = canonicalIp(host.slice(1, -1));
    if (!ip6 || !host.includes(':')) throw new HostError(input, 'bracketed but not an IPv6 address');
    return { kind: 'ip', host: ip6, family: 6 };
  }
  if (host.includes(':')) {
    const ip6 = canonicalIp(host);
    if (!ip6) throw new HostError(input, 'contains ":" but is not an IPv6 address');
    return { kind: 'ip', host: ip6, family: 6 };
  }
  // Anything ASCII outside letters, digits, '-', '_' and '.' is refused before the WHATWG host
  // parser sees it: domainToASCII would percent-decode 'a%2eb' into 'a.b'.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: any ASCII left over is refused
  if (/[\u0000-\u007f]/.test(host.replace(/[A-Za-z0-9._-]/g, ''))) {
    throw new HostError(input, 'contains a character not allowed in a host name');
  }
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  const numeric = asNumericIPv4(host, input);
  if (numeric) return numeric;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: an all-ASCII test, controls were refused above
  const ascii = /^[\u0000-\u007f]*$/.test(host) ? host : domainToASCII(host);
  if (ascii === '') throw new HostError(input, 'not a valid internationalized domain name');
  // UTS 46 mapping can turn full-width digits and dots into an IPv4 literal: check again.
  const mapped = asNumericIPv4(ascii, input);
  if (mapped) return mapped;
  if (ascii.length > MAX_NAME) throw new HostError(input, `longer than ${MAX_NAME} characters`);
  for (const label of ascii.split('.')) {
    if (label === '') throw new HostError(input, 'empty label');
    if (label.length > 63) throw new HostError(input, 'label longer than 63 characters');
    if (!LABEL.test(label)) throw new HostError(input, `invalid label '${label}'`);
  }
  return { kind: 'name', host: ascii };
}

/**
 * A name whose last label is numeric is an IPv4 address to the WHATWG URL parser and to
 * inet_aton-based resolvers ('127.1', '0x7f.1'). Such a host is either a valid encoding of an
 * address, which we return canonically, or refused: it is never treated as a name.
 */
function asNumericIPv4(host: string, input: string): NormalizedHost | null {
  const labels = host.split('.');
  const last = labels[labels.length - 1];
  if (!/^(0x[0-9a-f]*|[0-9]+)$/i.test(last)) return null;
  const ip = parseInetAton(host);
  if (!ip) throw new HostError(input, 'numeric host that is not a valid IPv4 address');
  return { kind: 'ip', host: ip, family: 4 };
}

/**
 * The one `host:port` splitter (allow entries, resolve entries and their addresses, CONNECT
 * targets, Host headers): 'host:port', '[v6]:port', '[v6]', a bare host, or a bare IPv6 literal,
 * whose colons are never read as a port ('::1:80' is an address). The port is returned as
 * written ('*' included) for the caller to judge; undefined when there is none.
 */
export function splitAuthority(authority: string): { host: string; portText: string | undefined } {
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) throw new HostError(authority, 'unterminated "["');
    const host = authority.slice(0, close + 1);
    const after = authority.slice(close + 1);
    if (after === '') return { host, portText: undefined };
    if (!after.startsWith(':')) throw new HostError(authority, 'garbage after "]"');
    return { host, portText: after.slice(1) };
  }
  const colon = authority.lastIndexOf(':');
  // A bare IPv6 literal has several colons and no port.
  if (colon >= 0 && authority.indexOf(':') === colon) {
    return { host: authority.slice(0, colon), portText: authority.slice(colon + 1) };
  }
  return { host: authority, portText: undefined };
}

/** Splits 'host:port', '[v6]:port' or a bare host. Port is a number, or undefined if absent. */
export function splitHostPort(authority: string): { host: string; port: number | undefined } {
  const { host, portText } = splitAuthority(authority);
  if (portText === undefined) return { host, port: undefined };
  return { host, port: parsePort(portText, authority) };
}

export function parsePort(text: string, context: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new HostError(context, `invalid port '${text}'`);
  }
  return Number(text);
}
