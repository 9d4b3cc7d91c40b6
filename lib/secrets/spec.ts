// Secret declarations: the CLI form (`--secret NAME@HOST[,HOST...][:HEADER=FORMAT]`), the
// SecretOptions of the API, and their resolution to real values on the host. Everything here runs
// before the sandbox exists, so a missing env var or unreadable file fails the launch with an error
// naming it instead of starting a server that cannot authenticate.
import { type AllowEntry, DEFAULT_PORTS, entryCovers, parseAllowEntry } from '../net/allowlist';
import { type NormalizedHost, normalizeHost } from '../net/hostname';
import type { SecretOptions } from '../options';
import { makePlaceholder } from './placeholder';
import { readSecretSource, type SourceContext } from './sources';

/** Thrown for a bad declaration or an unavailable source. Never carries the secret's value. */
export class SecretError extends Error {
  readonly code: 'ESECRETSPEC' | 'ESECRETENV' | 'ESECRETFILE' | 'ESECRETCOMMAND' | 'ESECRETVALUE';
  /** The secret's declared name (the env var the server expects). */
  readonly secret: string | undefined;
  /** For ESECRETENV the variable, for ESECRETFILE the path, for ESECRETCOMMAND the program. */
  readonly path: string | undefined;

  constructor(code: SecretError['code'], message: string, secret?: string, path?: string) {
    super(message);
    this.name = 'SecretError';
    this.code = code;
    this.secret = secret;
    this.path = path;
  }
}

/** Where a secret goes on the wire. The format is trusted: it comes from the launcher, never the sandbox. */
export type SecretInjection =
  | { kind: 'header'; header: string; format: string }
  | { kind: 'query'; param: string }
  | { kind: 'basic'; username: string };

/**
 * One of a secret's hosts: an allowlist entry (lib/net/allowlist.ts, the one grammar: names,
 * `*.suffix`, addresses, CIDRs, `:PORT`, `:*`), and the ports it is for. Without a port a secret
 * is for 443 only, not the allowlist's 80 and 443: a credential is never sent in plaintext.
 */
export interface HostPattern {
  readonly entry: AllowEntry;
  readonly ports: readonly number[] | 'any';
}

/** A secret ready for the interceptor: value loaded, placeholder drawn. */
export interface ResolvedSecret {
  readonly name: string;
  readonly hosts: readonly HostPattern[];
  readonly inject: SecretInjection;
  /** The real value. Lives only in the parent process. */
  readonly value: string;
  /** What the sandbox sees in env var `name`. */
  readonly placeholder: string;
  /** Human description of the source ('env GITHUB_TOKEN', 'file /run/token', 'value'). */
  readonly source: string;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
// RFC 9110 token: what a header field name may be.
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Headers the proxy itself owns; letting a secret format set them would desynchronise framing.
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'te',
  'trailer',
]);
const SECRET_TOKEN = '{secret}';

function specError(message: string, secret?: string): SecretError {
  return new SecretError('ESECRETSPEC', message, secret);
}

/** Parses one of a secret's hosts ('api.github.com', '*.example.com', 'example.com:8443'). */
export function parseHostPattern(entry: string, secret?: string): HostPattern {
  let parsed: AllowEntry;
  try {
    parsed = parseAllowEntry(entry);
  } catch (err) {
    throw specError(`secret ${secret ?? ''}: ${(err as Error).message}`, secret);
  }
  return { entry: parsed, ports: parsed.ports === DEFAULT_PORTS ? [443] : parsed.ports };
}

/** Whether `host:port` is covered by `pattern`. A pattern without a port matches 443 only. */
export function hostMatches(pattern: HostPattern, host: string, port: number): boolean {
  if (pattern.ports !== 'any' && !pattern.ports.includes(port)) return false;
  let normalized: NormalizedHost;
  try {
    normalized = normalizeHost(host);
  } catch {
    return false;
  }
  return entryCovers(pattern.entry, normalized);
}

/** Whether any of a secret's hosts covers `host:port`. */
export function secretIsFor(secret: Pick<ResolvedSecret, 'hosts'>, host: string, port: number): boolean {
  return secret.hosts.some((p) => hostMatches(p, host, port));
}

function validateInjection(name: string, inject: SecretOptions['inject']): SecretInjection {
  if (inject === undefined) return { kind: 'header', header: 'authorization', format: 'Bearer {secret}' };
  if ('header' in inject) {
    const header = inject.header.toLowerCase();
    if (!TOKEN_RE.test(header)) throw specError(`secret ${name}: invalid header name '${inject.header}'`, name);
    if (RESERVED_HEADERS.has(header)) throw specError(`secret ${name}: header '${inject.header}' is managed by the proxy`, name);
    if (/[\r\n\0]/.test(inject.format)) throw specError(`secret ${name}: header format contains CR, LF or NUL`, name);
    const count = inject.format.split(SECRET_TOKEN).length - 1;
    if (count !== 1) {
      throw specError(`secret ${name}: header format must contain {secret} exactly once (found ${count})`, name);
    }
    return { kind: 'header', header, format: inject.format };
  }
  if ('query' in inject) {
    if (!/^[A-Za-z0-9._~-]+$/.test(inject.query)) throw specError(`secret ${name}: invalid query parameter '${inject.query}'`, name);
    return { kind: 'query', param: inject.query };
  }
  if ('basic' in inject) {
    const username = inject.basic.username;
    // RFC 7617: the user-id cannot contain a colon; control characters would corrupt the header.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
    if (/[:\x00-\x1f\x7f]/.test(username)) throw specError(`secret ${name}: basic auth username contains ':' or a control character`, name);
    return { kind: 'basic', username };
  }
  throw specError(`secret ${name}: unknown injection ${JSON.stringify(inject)}`, name);
}

/**
 * The hosts of the CLI form and what follows them: hosts are comma-separated allowlist entries,
 * each a name, a bracketed IPv6 address or CIDR, or an IPv4 address or CIDR, with an optional
 * `:PORT` or `:*`; they end at '?' or at a ':' that does not start a port. Null when malformed.
 */
function splitHosts(right: string): { hosts: string[]; tail: string } | null {
  const hosts: string[] = [];
  let i = 0;
  for (;;) {
    let j = i;
    if (right[j] === '[') {
      const close = right.indexOf(']', j);
      if (close < 0) return null;
      j = close + 1;
    } else {
      while (j < right.length && !':,?'.includes(right[j])) j++;
    }
    const port = /^:(?:\d+|\*)(?=$|[,?:])/.exec(right.slice(j));
    if (port) j += port[0].length;
    hosts.push(right.slice(i, j));
    if (right[j] !== ',') return { hosts, tail: right.slice(j) };
    i = j + 1;
  }
}

/**
 * Parses the CLI form into SecretOptions:
 *   NAME@HOST[,HOST...]                    Authorization: Bearer {secret}
 *   NAME@HOSTS:HEADER=FORMAT               e.g. BRAVE_API_KEY@api.search.brave.com:X-Subscription-Token={secret}
 *   NAME@HOSTS?PARAM                       the URL query parameter PARAM
 *   NAME@HOSTS:basic:USERNAME              Authorization: Basic base64(USERNAME:secret)
 * The value comes from the launcher's env var NAME, or from NAME=env:OTHER@... / NAME=file:PATH@...
 * (a path cannot contain '@'). A literal value is deliberately not accepted: argv is world-readable.
 * Hosts are allowlist entries and may carry a port ('example.com:8443', ':*'); header names cannot contain ':'.
 */
export function parseSecretSpec(spec: string): SecretOptions {
  const at = spec.indexOf('@');
  if (at < 0) throw specError(`--secret '${spec}': expected NAME@HOST[,HOST...]`);
  const left = spec.slice(0, at);
  const right = spec.slice(at + 1);
  const eq = left.indexOf('=');
  const name = eq < 0 ? left : left.slice(0, eq);
  if (!NAME_RE.test(name)) throw specError(`--secret '${spec}': invalid name '${name}' (expected an env var name)`);
  let source: SecretOptions['source'];
  if (eq >= 0) {
    const src = left.slice(eq + 1);
    if (src.startsWith('env:') && NAME_RE.test(src.slice(4))) source = { env: src.slice(4) };
    else if (src.startsWith('file:') && src.length > 5) source = { file: src.slice(5) };
    else throw specError(`--secret '${spec}': source must be env:VAR or file:PATH`, name);
  }
  const split = splitHosts(right);
  if (split === null) throw specError(`--secret '${spec}': expected NAME@HOST[,HOST...][:HEADER=FORMAT|?PARAM|:basic:USER]`, name);
  const { hosts, tail } = split;
  for (const h of hosts) parseHostPattern(h, name);
  let inject: SecretOptions['inject'];
  if (tail.startsWith('?')) {
    inject = { query: tail.slice(1) };
  } else if (tail.startsWith(':')) {
    const rest = tail.slice(1);
    if (rest.startsWith('basic:')) {
      inject = { basic: { username: rest.slice(6) } };
    } else {
      const e = rest.indexOf('=');
      if (e <= 0) throw specError(`--secret '${spec}': expected HEADER=FORMAT after the hosts`, name);
      inject = { header: rest.slice(0, e), format: rest.slice(e + 1) };
    }
  }
  const options: SecretOptions = { name, hosts };
  if (source) options.source = source;
  if (inject) options.inject = inject;
  validateInjection(name, inject);
  return options;
}

/**
 * Validates declarations, loads every value and draws a placeholder for each. Throws SecretError
 * on the first problem, naming the secret and the variable or file, never the value.
 */
export function resolveSecrets(
  list: readonly SecretOptions[],
  env: NodeJS.ProcessEnv = process.env,
  context: Omit<SourceContext, 'env'> = {},
): ResolvedSecret[] {
  const seen = new Set<string>();
  const out: ResolvedSecret[] = [];
  for (const opt of list) {
    if (typeof opt?.name !== 'string' || !NAME_RE.test(opt.name)) throw specError(`secret name '${opt?.name}' is not a valid env var name`);
    if (seen.has(opt.name)) throw specError(`secret ${opt.name} is declared twice`, opt.name);
    seen.add(opt.name);
    if (!Array.isArray(opt.hosts) || opt.hosts.length === 0)
      throw specError(`secret ${opt.name}: hosts must list at least one host`, opt.name);
    const hosts = opt.hosts.map((h) => parseHostPattern(h, opt.name));
    const inject = validateInjection(opt.name, opt.inject);
    const { value, source } = readSecretSource(opt.name, opt.source ?? { env: opt.name }, { ...context, env });
    if (value.length === 0) throw new SecretError('ESECRETVALUE', `secret ${opt.name}: the value from ${source} is empty`, opt.name);
    // The value is written into a header or a URL: a CR/LF would let it split the request.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
    if (/[\x00-\x1f\x7f]/.test(value)) {
      throw new SecretError('ESECRETVALUE', `secret ${opt.name}: the value from ${source} contains a control character`, opt.name);
    }
    out.push({ name: opt.name, hosts, inject, value, placeholder: makePlaceholder(opt.name), source });
  }
  return out;
}

/** The sandbox's environment entries for `secrets`: each name mapped to its placeholder. */
export function placeholderEnv(secrets: readonly ResolvedSecret[]): Readonly<Record<string, string>> {
  return Object.freeze(Object.fromEntries(secrets.map((s) => [s.name, s.placeholder])));
}
