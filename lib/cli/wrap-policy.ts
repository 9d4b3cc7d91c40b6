// The starting policy `stockade wrap` writes for one server: what the server needs to start and
// work (its profile, its own files, the paths its environment names, the hosts its credentials
// are for, the header each API takes), and nothing more. Pure: reads the host only to see what
// exists (lstat), never follows what it does not need to. Each concern is one function, and
// every decision is returned as a note for wrap to print.
import { existsSync, lstatSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import type { SecretOptions } from '../options';
import { guessProfile } from '../policy/profiles';
import type { Policy } from '../policy/types';

export const SCHEMA_URL = 'https://unpkg.com/stockade-sandbox/stockade.schema.json';
export const PLACEHOLDER_HOST = 'FILL-IN-HOST.invalid';

export interface WrapSecret {
  name: string;
  hosts: string[];
  /** True when the host is a placeholder the user must replace. */
  needsHost: boolean;
  /** The header (or query parameter) it is injected into, when not Authorization: Bearer. */
  inject?: SecretOptions['inject'];
}

export interface Grant {
  path: string;
  mode: 'ro' | 'rw';
  /** Why, for the user: "the script's package", "MEMORY_FILE_PATH's directory". */
  why: string;
}

export interface StartingPolicy {
  policy: Policy;
  secrets: WrapSecret[];
  grants: Grant[];
  /** Things the user should know: credentials passed in the clear, paths not granted. */
  warnings: string[];
}

/**
 * Where the reference and common MCP servers send their keys, by variable name: the host, and
 * how the API wants it when not `Authorization: Bearer`. From each API's documentation.
 */
const KNOWN_SECRETS: { name: RegExp; hosts: string[]; inject?: SecretOptions['inject'] }[] = [
  { name: /^(GITHUB|GH)_/, hosts: ['api.github.com'] },
  { name: /^GITLAB_/, hosts: ['gitlab.com'] },
  { name: /^SLACK_/, hosts: ['slack.com'] },
  { name: /^OPENAI_/, hosts: ['api.openai.com'] },
  { name: /^ANTHROPIC_/, hosts: ['api.anthropic.com'], inject: { header: 'x-api-key', format: '{secret}' } },
  { name: /^BRAVE_/, hosts: ['api.search.brave.com'], inject: { header: 'X-Subscription-Token', format: '{secret}' } },
  { name: /^GOOGLE_MAPS_/, hosts: ['maps.googleapis.com'], inject: { query: 'key' } },
  { name: /^NOTION_/, hosts: ['api.notion.com'] },
  // Linear's personal API keys go in Authorization without a scheme.
  { name: /^LINEAR_/, hosts: ['api.linear.app'], inject: { header: 'Authorization', format: '{secret}' } },
  { name: /^SENTRY_/, hosts: ['sentry.io'] },
  { name: /^STRIPE_/, hosts: ['api.stripe.com'] },
  { name: /^EXA_/, hosts: ['api.exa.ai'], inject: { header: 'x-api-key', format: '{secret}' } },
  { name: /^PERPLEXITY_/, hosts: ['api.perplexity.ai'] },
  { name: /^FIRECRAWL_/, hosts: ['api.firecrawl.dev'] },
];

const SECRET_WORDS = new Set([
  'TOKEN',
  'KEY',
  'APIKEY',
  'SECRET',
  'PASSWORD',
  'PASSWD',
  'PASS',
  'PWD',
  'PAT',
  'CREDENTIAL',
  'CREDENTIALS',
  'AUTH',
]);
/** Glued spellings: PGPASSWORD, MYSQL_PWD, GHTOKEN. Not KEY (MONKEY) nor TOKEN as a prefix (TOKENIZER). */
const SECRET_SUFFIXES = ['PASSWORD', 'PASSWD', 'SECRET', 'TOKEN', 'APIKEY'];

/** Does this env var look like a credential? (A value that is an absolute path is not one.) */
export function looksLikeSecret(name: string, value: unknown): boolean {
  if (typeof value === 'string' && value.startsWith('/')) return false;
  return name
    .toUpperCase()
    .split(/[^A-Z0-9]+/)
    .some((part) => SECRET_WORDS.has(part) || SECRET_SUFFIXES.some((s) => part.length > s.length && part.endsWith(s)));
}

/**
 * Credentials the server itself sends over a protocol the proxy cannot rewrite (a database's
 * wire protocol): a placeholder would only break the login, so they pass in the clear, with a
 * warning.
 */
const NON_HTTP_CREDENTIAL = /^(PG|MYSQL|MARIADB|POSTGRES|MONGO|REDIS|DB|DATABASE|MSSQL|ORACLE|SNOWFLAKE|CLICKHOUSE)/;

/** Values that carry a credential inside a larger value: a header block, a URL with userinfo. */
function embeddedCredential(name: string, value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (/HEADERS?$/i.test(name) && /\S/.test(value)) return 'headers';
  if (/\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}/.test(value)) return 'an Authorization value';
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i.test(value)) return 'a URL with a password';
  return undefined;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Directories never granted whole: the root, the home directory and what contains it (a
 * grant of them would expose ~/.ssh and every other secret of the user). A path there is
 * granted as itself only.
 */
function tooBroad(dir: string, home = homedir()): boolean {
  const d = normalize(dir);
  return d === sep || d === normalize(home) || normalize(home).startsWith(`${d.endsWith(sep) ? d : d + sep}`);
}

/** The nearest enclosing project root (package.json, pyproject.toml...) below the home dir. */
function projectRoot(dir: string): string | undefined {
  for (let d = dir; !tooBroad(d); d = dirname(d)) {
    if (['package.json', 'pyproject.toml', 'setup.py', 'requirements.txt'].some((f) => existsSync(join(d, f)))) return d;
    if (dirname(d) === d) break;
  }
  return undefined;
}

/** The program and the scripts it runs, read-only. */
export function grantCommandFiles(command: string, args: string[]): Grant[] {
  const grants: Grant[] = [];
  // The program by absolute path even when it is not there yet; scripts only when they exist
  // (an argument that merely looks like a path may be anything).
  const files = [...(isAbsolute(command) ? [command] : []), ...args.filter((a) => isAbsolute(a) && existsSync(a) && !isDir(a))];
  for (const file of files) {
    // The system directories are in every sandbox already (read-only).
    if (/^\/(usr|bin|sbin|lib|lib64)\//.test(file)) continue;
    const dir = dirname(file);
    // A script needs its dependencies: the whole project (package.json, pyproject.toml...), and
    // for a package installed in node_modules, the project that installed it (npm hoists the
    // package's own dependencies there).
    const installed = file.indexOf(`${sep}node_modules${sep}`);
    const root = installed > 0 && !tooBroad(file.slice(0, installed)) ? file.slice(0, installed) : projectRoot(dir);
    if (root) grants.push({ path: root, mode: 'ro', why: `the project of ${file}` });
    else if (!tooBroad(dir)) grants.push({ path: dir, mode: 'ro', why: `the directory of ${file}` });
    else if (existsSync(file)) grants.push({ path: file, mode: 'ro', why: 'the script itself (its directory is too broad to grant)' });
  }
  return grants;
}

/** Absolute directories on the command line: what a server like server-filesystem works on. */
export function grantArgDirs(args: string[]): Grant[] {
  return args.filter((a) => isAbsolute(a) && isDir(a)).map((a) => ({ path: a, mode: 'rw', why: 'a directory on the command line' }));
}

/**
 * Env values that are absolute paths: an existing directory read-write; a file (existing or
 * to be created, like server-memory's MEMORY_FILE_PATH) through its directory read-write, so
 * the server can write and rename there. Under a too-broad directory only an existing file is
 * granted, as itself; a file to be created there cannot be, and the user is told.
 */
export function grantEnvPaths(env: Record<string, unknown>): { grants: Grant[]; warnings: string[] } {
  const grants: Grant[] = [];
  const warnings: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (typeof value !== 'string' || !isAbsolute(value) || value.includes('\0')) continue;
    const path = normalize(value);
    if (isDir(path)) {
      if (tooBroad(path)) warnings.push(`${name}=${path} is not granted: a grant of the whole directory would expose your home`);
      else grants.push({ path, mode: 'rw', why: `${name}` });
      continue;
    }
    const dir = dirname(path);
    if (!tooBroad(dir) && isDir(dir)) {
      grants.push({ path: dir, mode: 'rw', why: `the directory of ${name}` });
    } else if (existsSync(path) && lstatSync(path).isFile()) {
      grants.push({ path, mode: 'rw', why: `${name} (the file only: its directory is too broad to grant)` });
    } else {
      warnings.push(
        `${name}=${path} is not granted (${isDir(dir) ? 'its directory is too broad' : 'its directory does not exist'}): point it into a directory of its own, or add a grant to the policy`,
      );
    }
  }
  return { grants, warnings };
}

/** Credentials become proxy-injected secrets; the rest of the environment passes by name. */
export function classifyEnv(env: Record<string, unknown>): { secrets: WrapSecret[]; pass: Record<string, true>; warnings: string[] } {
  const secrets: WrapSecret[] = [];
  const pass: Record<string, true> = {};
  const warnings: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      warnings.push(`env ${JSON.stringify(name)} is not a valid variable name; not passed`);
      continue;
    }
    const embedded = embeddedCredential(name, value);
    if (embedded) {
      pass[name] = true;
      warnings.push(
        `${name} carries a credential inside its value (${embedded}); stockade cannot replace part of a value, so the server sees it in the clear. Prefer a variable holding only the key, as a secret`,
      );
    } else if (looksLikeSecret(name, value) && NON_HTTP_CREDENTIAL.test(name.toUpperCase())) {
      pass[name] = true;
      warnings.push(
        `${name} is a credential the server sends itself (not over HTTPS), so the proxy cannot inject it: the server sees it in the clear. Give it a least-privileged account`,
      );
    } else if (looksLikeSecret(name, value)) {
      const known = KNOWN_SECRETS.find((k) => k.name.test(name.toUpperCase()));
      secrets.push({
        name,
        hosts: known ? known.hosts : [PLACEHOLDER_HOST],
        needsHost: !known,
        ...(known?.inject ? { inject: known.inject } : {}),
      });
    } else {
      pass[name] = true;
    }
  }
  return { secrets, pass, warnings };
}

/** The starting policy for one server. */
export function startingPolicy(command: string, args: string[], env: Record<string, unknown>): StartingPolicy {
  const policy: Policy = { $schema: SCHEMA_URL };
  const profile = guessProfile(command);
  if (profile) policy.profile = profile;
  const envPaths = grantEnvPaths(env);
  const grants = dedupeGrants([...grantArgDirs(args), ...grantCommandFiles(command, args), ...envPaths.grants]);
  const readOnly = grants.filter((g) => g.mode === 'ro').map((g) => g.path);
  const readWrite = grants.filter((g) => g.mode === 'rw').map((g) => g.path);
  if (readOnly.length || readWrite.length) {
    policy.filesystem = { ...(readWrite.length ? { readWrite } : {}), ...(readOnly.length ? { readOnly } : {}) };
  }
  const { secrets, pass, warnings } = classifyEnv(env);
  if (Object.keys(pass).length) policy.env = pass;
  if (secrets.length) {
    policy.network = { allow: [...new Set(secrets.flatMap((s) => s.hosts))] };
    policy.secrets = secrets.map((s) => ({ name: s.name, hosts: s.hosts, ...(s.inject ? { inject: s.inject } : {}) }));
  }
  return { policy, secrets, grants, warnings: [...envPaths.warnings, ...warnings] };
}

/** One grant per path; read-write wins; a path inside a read-write grant needs no other. */
function dedupeGrants(grants: Grant[]): Grant[] {
  const out: Grant[] = [];
  for (const g of grants) {
    const same = out.find((o) => o.path === g.path);
    if (same) {
      if (g.mode === 'rw') same.mode = 'rw';
      continue;
    }
    out.push({ ...g });
  }
  const within = (p: string, d: string) => p === d || p.startsWith(d.endsWith(sep) ? d : d + sep);
  return out.filter((g) => !out.some((o) => o !== g && o.mode === 'rw' && within(g.path, o.path) && o.path !== g.path));
}
