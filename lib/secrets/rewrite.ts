// The request rewrite of credential injection, pure: checks one intercepted request's authority,
// headers and URL for placeholders, and builds what goes upstream, with the configured header
// (or query parameter) rebuilt from the trusted format and the real value. Any placeholder
// outside the place its secret is configured for throws a Violation. The I/O around it is
// ./intercept.ts (the sandbox side) and ./upstream.ts (the upstream connections).

import { HOP_BY_HOP } from '../net/headers';
import { normalizeHost, splitHostPort } from '../net/hostname';
import type { PlaceholderSet } from './placeholder';
import { type ResolvedSecret, secretIsFor } from './spec';

/** Where the sandbox's connection was going, as the proxy established it. */
export interface InterceptTarget {
  /** Host name (from CONNECT, SNI or the DNS pool): what the leaf is for and the upstream SNI. */
  host: string;
  port: number;
  /** The already SSRF-checked address to connect to. */
  address: string;
  /** Port to connect to when the resolver override moves it; `port` otherwise. */
  connectPort?: number;
}

export type ViolationRule =
  | 'placeholder-in-plaintext'
  | 'placeholder-wrong-host'
  | 'placeholder-in-header'
  | 'placeholder-in-url'
  | 'placeholder-in-body'
  | 'host-mismatch'
  | 'sni-mismatch'
  | 'secret-out-of-call';

export interface SecretViolation {
  rule: ViolationRule;
  /** The secret whose placeholder was misused, if any. */
  secret?: string;
  host: string;
  port: number;
  method?: string;
  /** Request path without the query string (it may hold other secrets of the client). */
  path?: string;
  message: string;
  /** Per-tool grants: the tool calls in flight when it happened. */
  calls?: { id: string | number | null; tool: string }[];
}

// Never copied from one side to the other: the hop-by-hop fields (lib/net/headers.ts, RFC 9110
// 7.6.1), and what HTTP/2 forbids or this side answers itself (RFC 9113 8.2.2): node's HTTP/2
// layer throws on connection-specific fields, :authority replaces host, and 100-continue was
// answered to the client already.
export const NOT_COPIED: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'http2-settings', 'host', 'expect']);

export type HeaderPairs = Array<[string, string]>;

/** What goes upstream for one intercepted request: origin-form path, authority, rebuilt headers. */
export interface UpstreamRequest {
  path: string;
  authority: string;
  headers: HeaderPairs;
  injected: string[];
}

export class Violation extends Error {
  constructor(readonly info: SecretViolation) {
    super(info.message);
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/** Splits an :authority / Host value into host and port (default 443); handles [v6]:port. */
export function parseAuthority(value: string): { host: string; port: number } | null {
  // The proxy's own splitter and normalization (lib/net/hostname.ts), so that the authority is
  // compared with the connection's target spelled the same way (case, trailing dot, IDN).
  try {
    const { host, port } = splitHostPort(value.trim());
    return { host: normalizeHost(host).host, port: port ?? 443 };
  } catch {
    return null;
  }
}

/**
 * parseAuthority of the Host values seen lately: a client sends the same one on every request of
 * a connection. The answer depends on the string alone; bounded in entries and in key length.
 */
const authorities = new Map<string, { host: string; port: number } | null>();
function parseAuthorityMemo(value: string): { host: string; port: number } | null {
  let a = authorities.get(value);
  if (a === undefined) {
    a = parseAuthority(value);
    if (value.length <= 300) {
      if (authorities.size >= 256) authorities.clear();
      authorities.set(value, a);
    }
  }
  return a;
}

export function rawPairs(raw: string[]): HeaderPairs {
  const out: HeaderPairs = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i], raw[i + 1]]);
  return out;
}

/** The secrets of one run, as the rewrite looks them up. */
export interface RewriteSecrets {
  set: PlaceholderSet;
  byName: ReadonlyMap<string, ResolvedSecret>;
}

/**
 * Checks one request's authority, headers and URL, and builds what goes upstream. Throws a
 * Violation for any placeholder outside the place its secret is configured for.
 */
export function rewriteRequest(
  secrets: RewriteSecrets,
  target: InterceptTarget,
  method: string,
  url: string,
  authority: string | undefined,
  raw: HeaderPairs,
  keep: ReadonlySet<string>,
): UpstreamRequest {
  const base = { host: target.host, port: target.port, method, path: url.split('?')[0] };
  const fail = (rule: ViolationRule, message: string, secret?: string): never => {
    throw new Violation({ ...base, rule, secret, message: `stockade: ${message}` });
  };
  let auth = authority ?? (target.port === 443 ? target.host : `${target.host}:${target.port}`);
  // An absolute-form target (`GET https://other.example/ HTTP/1.1`) takes precedence over Host at
  // the upstream (RFC 9112 3.2.2), so its authority is what must agree; it is sent on in origin form.
  const abs = /^https?:\/\/([^/?#]*)([^#]*)/i.exec(url);
  if (abs) {
    if (/@/.test(abs[1])) fail('host-mismatch', 'request target with userinfo is not allowed');
    auth = abs[1];
    url = abs[2].startsWith('/') ? abs[2] : `/${abs[2]}`;
  } else if (!url.startsWith('/') && !(url === '*' && method === 'OPTIONS')) {
    fail('host-mismatch', `request target '${url.slice(0, 100)}' is not a path`);
  }
  const a = parseAuthorityMemo(auth);
  if (!a || a.host !== target.host || a.port !== target.port) {
    fail('host-mismatch', `request for '${auth}' on a connection to ${target.host}:${target.port}; host and connection must agree`);
  }
  const usable = (name: string, where: string): ResolvedSecret => {
    const s = secrets.byName.get(name) as ResolvedSecret;
    if (!secretIsFor(s, target.host, target.port)) {
      fail(
        'placeholder-wrong-host',
        `the placeholder of secret ${name} was sent to ${target.host}, which it is not for (in ${where})`,
        name,
      );
    }
    return s;
  };
  const injected: string[] = [];
  const headers: HeaderPairs = [];
  const rebuilt = new Set<string>();
  for (const [name, value] of raw) {
    const lname = name.toLowerCase();
    if (lname.startsWith(':') || (NOT_COPIED.has(lname) && !keep.has(lname))) continue;
    const inName = secrets.set.names(name);
    if (inName.length) fail('placeholder-in-header', `the placeholder of secret ${inName[0]} appears in a header name`, inName[0]);
    let names = secrets.set.names(value);
    // Basic credentials hide the placeholder in base64; look inside so they are rebuilt too.
    const basic = lname === 'authorization' ? /^\s*basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(value) : null;
    if (basic) names = [...new Set([...names, ...secrets.set.names(Buffer.from(basic[1], 'base64').toString('latin1'))])];
    if (names.length === 0) {
      // The response must come back in a form the proxy can scan for the real value: identity.
      if (lname === 'accept-encoding') continue;
      if (!rebuilt.has(lname)) headers.push([name, value]);
      continue;
    }
    if (names.length > 1) fail('placeholder-in-header', `header ${lname} carries placeholders of ${names.join(' and ')}`, names[0]);
    const s = usable(names[0], `header ${lname}`);
    const inj = s.inject;
    let rebuiltValue: string | undefined;
    if (inj.kind === 'header' && inj.header === lname) rebuiltValue = inj.format.replace('{secret}', () => s.value);
    if (inj.kind === 'basic' && lname === 'authorization') {
      rebuiltValue = `Basic ${Buffer.from(`${inj.username}:${s.value}`).toString('base64')}`;
    }
    if (rebuiltValue === undefined) {
      const where =
        inj.kind === 'header' ? `header ${inj.header}` : inj.kind === 'basic' ? 'basic authorization' : `query parameter ${inj.param}`;
      fail(
        'placeholder-in-header',
        `the placeholder of secret ${s.name} appears in header ${lname}; it is only injected into ${where}`,
        s.name,
      );
    }
    // The header is rebuilt from the trusted format, whatever the client wrapped around the
    // placeholder; a second copy of the same header is dropped so only the trusted one remains.
    for (let i = headers.length - 1; i >= 0; i--) if (headers[i][0].toLowerCase() === lname) headers.splice(i, 1);
    if (!rebuilt.has(lname)) headers.push([name, rebuiltValue as string]);
    rebuilt.add(lname);
    if (!injected.includes(s.name)) injected.push(s.name);
  }

  let path = url;
  const q = url.indexOf('?');
  const pathname = q < 0 ? url : url.slice(0, q);
  // Without a '%' decoding changes only '+' to ' ', neither of which a placeholder holds.
  const inPath = secrets.set.names(pathname).concat(pathname.includes('%') ? secrets.set.names(safeDecode(pathname)) : []);
  if (inPath.length) {
    usable(inPath[0], 'the URL path');
    fail('placeholder-in-url', `the placeholder of secret ${inPath[0]} appears in the URL path`, inPath[0]);
  }
  if (q >= 0) {
    const parts = url.slice(q + 1).split('&');
    for (let i = 0; i < parts.length; i++) {
      const eq = parts[i].indexOf('=');
      const k = safeDecode(eq < 0 ? parts[i] : parts[i].slice(0, eq));
      const v = eq < 0 ? '' : safeDecode(parts[i].slice(eq + 1));
      const found = [...new Set([...secrets.set.names(parts[i]), ...secrets.set.names(k), ...secrets.set.names(v)])];
      if (found.length === 0) continue;
      const s = usable(found[0], 'the URL query');
      if (found.length === 1 && s.inject.kind === 'query' && s.inject.param === k && v === s.placeholder) {
        parts[i] = `${parts[i].slice(0, eq)}=${encodeURIComponent(s.value)}`;
        if (!injected.includes(s.name)) injected.push(s.name);
        continue;
      }
      const where = s.inject.kind === 'query' ? `query parameter ${s.inject.param}` : 'a header';
      fail('placeholder-in-url', `the placeholder of secret ${s.name} appears in the URL query; it is only injected into ${where}`, s.name);
    }
    path = `${pathname}?${parts.join('&')}`;
  }
  headers.push(['accept-encoding', 'identity']);
  return { path, authority: auth, headers, injected };
}
