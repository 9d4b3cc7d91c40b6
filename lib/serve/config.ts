// `stockade serve CONFIG`: the gateway's configuration. One document (JSON or YAML, read with the
// policy loader's caps and YAML rules) names where to listen, how principals authenticate, the
// limits per principal and in total, and the servers, each a policy (inline or a file beside the
// config). Every server's policy goes through the policy validator, so a server runs under the
// gateway exactly as it would under `stockade run --policy`.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { checkSize, parseSize } from '../policy/formats';
import { loadPolicy, parsePolicyText } from '../policy/load';
import type { Policy } from '../policy/types';
import { type PolicyIssue, validatePolicy } from '../policy/validate';

export class ServeConfigError extends Error {
  readonly code = 'ERR_STOCKADE_SERVE_CONFIG';
  constructor(
    readonly issues: PolicyIssue[],
    readonly file?: string,
  ) {
    super(`${file ? `invalid serve config ${file}` : 'invalid serve config'}:\n${issues.map((i) => `  ${i.message}`).join('\n')}`);
    this.name = 'ServeConfigError';
  }
}

export interface OAuthConfig {
  /** The authorization server's issuer; the `iss` claim must equal it. */
  issuer: string;
  /** The audience (RFC 8707 resource indicator) tokens must carry in `aud`. */
  audience: string;
  /** Where the signing keys are: a JWKS file (path) or an https URL (fetched and cached by jose). */
  jwks: string;
  /** Public URL of this gateway, advertised in the protected-resource metadata. Default: from Host. */
  resource?: string;
  /** Accepted signature algorithms. Default: RS256, ES256, EdDSA (never 'none', never HS*). */
  algorithms?: string[];
}

export interface ServeLimits {
  /** Live sandboxes one principal may hold across all servers. */
  sandboxesPerPrincipal: number;
  /** Live sandboxes in total. */
  sandboxes: number;
  /** A sandbox with no request for this long is stopped (seconds). */
  idleSeconds: number;
  /** Largest request body (bytes). */
  requestBytes: number;
  /** Requests per minute per principal (token bucket, burst = this number). */
  requestsPerMinute: number;
}

export interface ServeConfig {
  listen: { host: string; port: number };
  tls?: { cert: string; key: string };
  /** Origins a browser-based client may call from; any other Origin header is refused (403). */
  origins: string[];
  /** Per principal and server: the sandbox's persistent HOME lives below here. */
  stateDir: string;
  /**
   * Per-principal credentials: a server's secret NAME comes from secretsDir/PRINCIPAL/NAME (the
   * principal's name percent-encoded) instead of the gateway's environment, so each tenant's
   * sandbox carries that tenant's token and no one else's. A missing file refuses the session.
   */
  secretsDir?: string;
  auth: { tokens?: { file: string } | { env: string }; oauth?: OAuthConfig };
  limits: ServeLimits;
  servers: Record<string, Policy>;
  /**
   * The policy file of each server given as `{ policy: FILE }`: its approval (lib/approval.ts)
   * and tool pins apply to every session, as they do to `stockade run --policy FILE`.
   */
  policyFiles: Record<string, string>;
  /** The file it was read from (relative paths in it are relative to its directory). */
  file?: string;
}

export const DEFAULT_SERVE_LIMITS: ServeLimits = {
  sandboxesPerPrincipal: 4,
  sandboxes: 64,
  idleSeconds: 600,
  requestBytes: 4 * 1024 * 1024,
  requestsPerMinute: 600,
};

const SERVER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const TOP_KEYS = ['listen', 'tls', 'origins', 'stateDir', 'secretsDir', 'auth', 'limits', 'servers'];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads and validates a serve config file; throws ServeConfigError listing every problem. */
export function loadServeConfig(file: string): ServeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ServeConfigError([{ path: '', message: `cannot read the config: ${e.code ?? e.message}` }], file);
  }
  if (text.length > 1024 * 1024) throw new ServeConfigError([{ path: '', message: 'the file is larger than 1 MiB' }], file);
  const lower = file.toLowerCase();
  const format = lower.endsWith('.json') ? 'json' : lower.endsWith('.yaml') || lower.endsWith('.yml') ? 'yaml' : 'auto';
  let doc: unknown;
  try {
    doc = parsePolicyText(text, format, file);
  } catch (err) {
    throw new ServeConfigError((err as { issues?: PolicyIssue[] }).issues ?? [{ path: '', message: String(err) }], file);
  }
  return parseServeConfig(doc, dirname(resolve(file)), file);
}

/** Validates a parsed config document; `base` resolves relative paths (policy files, state, tls). */
export function parseServeConfig(doc: unknown, base: string, file?: string): ServeConfig {
  const issues: PolicyIssue[] = [];
  const bad = (path: string, message: string) => issues.push({ path, message: `${path || '/'}: ${message}` });
  if (!isObj(doc)) throw new ServeConfigError([{ path: '', message: '/: expected an object' }], file);
  for (const k of Object.keys(doc)) if (!TOP_KEYS.includes(k)) bad(`/${k}`, `unknown key (expected one of ${TOP_KEYS.join(', ')})`);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const str = (v: unknown, path: string): string | undefined => {
    if (typeof v === 'string' && v.length > 0) return v;
    bad(path, `expected a non-empty string, found ${JSON.stringify(v)}`);
    return undefined;
  };
  const int = (v: unknown, path: string, min: number, max: number): number | undefined => {
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    bad(path, `expected an integer from ${min} to ${max}, found ${JSON.stringify(v)}`);
    return undefined;
  };

  const listen = { host: '127.0.0.1', port: 8080 };
  if (doc.listen !== undefined) {
    if (!isObj(doc.listen)) bad('/listen', 'expected { host, port }');
    else {
      if (doc.listen.host !== undefined) listen.host = str(doc.listen.host, '/listen/host') ?? listen.host;
      if (doc.listen.port !== undefined) listen.port = int(doc.listen.port, '/listen/port', 0, 65535) ?? listen.port;
    }
  }

  let tls: ServeConfig['tls'];
  if (doc.tls !== undefined) {
    if (!isObj(doc.tls)) bad('/tls', 'expected { cert, key } (PEM file paths)');
    else {
      const cert = str(doc.tls.cert, '/tls/cert');
      const key = str(doc.tls.key, '/tls/key');
      if (cert && key) tls = { cert: abs(cert), key: abs(key) };
    }
  }

  const origins: string[] = [];
  if (doc.origins !== undefined) {
    if (!Array.isArray(doc.origins)) bad('/origins', 'expected an array of origins such as "https://app.example.com"');
    else
      doc.origins.forEach((o, i) => {
        let ok = false;
        try {
          ok = typeof o === 'string' && new URL(o).origin === o;
        } catch {}
        if (ok) origins.push(o as string);
        else bad(`/origins/${i}`, `expected an origin (scheme://host[:port], no path), found ${JSON.stringify(o)}`);
      });
  }

  const stateDir = abs(doc.stateDir === undefined ? 'state' : (str(doc.stateDir, '/stateDir') ?? 'state'));

  const secretsDir = doc.secretsDir === undefined ? undefined : str(doc.secretsDir, '/secretsDir');

  const auth: ServeConfig['auth'] = {};
  if (!isObj(doc.auth)) bad('/auth', 'expected { tokens, oauth }: a gateway never serves unauthenticated');
  else {
    for (const k of Object.keys(doc.auth)) if (k !== 'tokens' && k !== 'oauth') bad(`/auth/${k}`, 'unknown key (tokens, oauth)');
    const t = doc.auth.tokens;
    if (t !== undefined) {
      if (isObj(t) && typeof t.file === 'string' && Object.keys(t).length === 1) auth.tokens = { file: abs(t.file) };
      else if (isObj(t) && typeof t.env === 'string' && Object.keys(t).length === 1) auth.tokens = { env: t.env };
      else bad('/auth/tokens', 'expected { file: PATH } or { env: NAME }');
    }
    const o = doc.auth.oauth;
    if (o !== undefined) {
      if (!isObj(o)) bad('/auth/oauth', 'expected { issuer, audience, jwks }');
      else {
        const issuer = str(o.issuer, '/auth/oauth/issuer');
        const audience = str(o.audience, '/auth/oauth/audience');
        const jwks = str(o.jwks, '/auth/oauth/jwks');
        const algorithms = o.algorithms;
        if (
          algorithms !== undefined &&
          (!Array.isArray(algorithms) || !algorithms.every((a) => /^(RS|PS|ES)(256|384|512)$|^EdDSA$/.test(a)))
        )
          bad('/auth/oauth/algorithms', 'expected asymmetric JWS algorithms (RS256, PS256, ES256, EdDSA, ...)');
        if (o.resource !== undefined) str(o.resource, '/auth/oauth/resource');
        if (issuer && audience && jwks) {
          auth.oauth = {
            issuer,
            audience,
            jwks: /^https?:\/\//.test(jwks) ? jwks : abs(jwks),
            ...(typeof o.resource === 'string' ? { resource: o.resource } : {}),
            ...(Array.isArray(algorithms) ? { algorithms: algorithms as string[] } : {}),
          };
        }
      }
    }
    if (!auth.tokens && !auth.oauth && issues.length === 0)
      bad('/auth', 'give tokens, oauth or both: a gateway never serves unauthenticated');
  }

  const limits = { ...DEFAULT_SERVE_LIMITS };
  if (doc.limits !== undefined) {
    if (!isObj(doc.limits)) bad('/limits', 'expected an object');
    else
      for (const [k, v] of Object.entries(doc.limits)) {
        const path = `/limits/${k}`;
        if (k === 'requestBytes') {
          const problem =
            typeof v === 'number'
              ? Number.isInteger(v) && v > 0
                ? null
                : 'a positive integer'
              : typeof v === 'string'
                ? checkSize(v)
                : 'a size';
          if (problem) bad(path, `expected a size such as "4m", found ${JSON.stringify(v)}`);
          else limits.requestBytes = parseSize(v as number | string);
        } else if (k in limits) {
          const n = int(v, path, 1, 1_000_000);
          if (n !== undefined) (limits as Record<string, number>)[k] = n;
        } else bad(path, `unknown limit (expected one of ${Object.keys(limits).join(', ')})`);
      }
  }

  const servers: Record<string, Policy> = {};
  const policyFiles: Record<string, string> = {};
  if (!isObj(doc.servers) || Object.keys(doc.servers).length === 0)
    bad('/servers', 'expected { NAME: policy or { policy: FILE } } with at least one server');
  else
    for (const [name, entry] of Object.entries(doc.servers)) {
      const path = `/servers/${name}`;
      if (!SERVER_NAME.test(name)) {
        bad(path, 'a server name is lowercase letters, digits, - and _ (it becomes the URL path /mcp/NAME)');
        continue;
      }
      if (isObj(entry) && typeof entry.policy === 'string' && Object.keys(entry).length === 1) {
        try {
          servers[name] = loadPolicy(abs(entry.policy));
          policyFiles[name] = abs(entry.policy);
        } catch (err) {
          for (const i of (err as { issues?: PolicyIssue[] }).issues ?? [{ path: '', message: String(err) }])
            bad(path, `${entry.policy}: ${i.message}`);
        }
        continue;
      }
      const policyIssues = validatePolicy(entry);
      for (const i of policyIssues) issues.push({ path: `${path}${i.path}`, message: `${path}${i.message}` });
      if (policyIssues.length === 0) {
        const p = entry as Policy;
        if (!p.command?.length) bad(`${path}/command`, 'a server needs a command');
        else servers[name] = p;
      }
    }

  if (issues.length > 0) throw new ServeConfigError(issues, file);
  return {
    listen,
    ...(tls ? { tls } : {}),
    origins,
    stateDir,
    ...(secretsDir ? { secretsDir: abs(secretsDir) } : {}),
    auth,
    limits,
    servers,
    policyFiles,
    ...(file ? { file } : {}),
  };
}
