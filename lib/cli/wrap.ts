// `stockade wrap CONFIG [--dry-run] [--undo] [--absolute]`: put every stdio MCP server of a client
// config behind `stockade run`, with a starting policy per server written next to the config.
//
// Formats: Claude Desktop (claude_desktop_config.json), Claude Code (.mcp.json), Cursor
// (~/.cursor/mcp.json), all under `mcpServers`; VS Code (.vscode/mcp.json) under `servers`.
//
// Decisions, all reported to the user:
//   - Launcher: `npx -y stockade run ...` by default. It works on any machine with npm and after
//     node upgrades; the cost is npx's resolution at each start. `--absolute` writes the current
//     node binary and this package's bin instead (faster, but tied to this install).
//   - Secrets: env vars whose names look like credentials (TOKEN, KEY, SECRET, PASSWORD, ...)
//     stay in the client config's env, which is where the launcher reads them; the policy names
//     them as proxy-injected secrets, so the server only ever sees a placeholder. The host they
//     are for is filled in for well-known names; otherwise it is `FILL-IN-HOST.invalid`, a name
//     that can never resolve, and the user is told to edit it.
//   - Other env vars are passed through by name (`true`): their values stay in the client config.
//   - Existing policy files are never overwritten (they may hold the user's edits).
//   - The backup (CONFIG.stockade-backup) is the config as it was before the first wrap; a later
//     wrap keeps it, so --undo always returns to the pre-stockade file, byte for byte.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { libDir } from '../location';
import { guessProfile } from '../policy/profiles';
import type { Policy } from '../policy/types';
import type { CliIO } from './check';
import { unifiedDiff } from './diff';

export type ConfigFormat = 'claude-desktop' | 'claude-code' | 'vscode' | 'cursor' | 'mcpServers';

export type ServerAction =
  | { name: string; action: 'wrapped'; policyFile: string; policyCreated: boolean; secrets: WrapSecret[] }
  | { name: string; action: 'already-wrapped' }
  | { name: string; action: 'remote'; detail: string }
  | { name: string; action: 'unknown'; detail: string };

export interface WrapSecret {
  name: string;
  hosts: string[];
  /** True when the host is a placeholder the user must replace. */
  needsHost: boolean;
}

export interface WrapResult {
  format: ConfigFormat;
  servers: ServerAction[];
  /** Whether the config file changed (or would, with dryRun). */
  changed: boolean;
  backupFile: string;
  /** Unified diff of the config (empty when unchanged). */
  diff: string;
  /** Policy files written (or that would be, with dryRun), with their content. */
  policies: { file: string; content: string }[];
  /** The config had comments (JSONC) that the rewritten file no longer has (the backup does). */
  commentsDropped: boolean;
}

export interface WrapOptions {
  dryRun?: boolean;
  /** Use this node binary and the package's bin path instead of `npx -y stockade`. */
  absolute?: boolean;
}

export class WrapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WrapError';
  }
}

export const BACKUP_SUFFIX = '.stockade-backup';
export const PLACEHOLDER_HOST = 'FILL-IN-HOST.invalid';

/** Hosts of well-known credentials, so the common servers work without editing. */
const KNOWN_SECRET_HOSTS: [RegExp, string[]][] = [
  [/^(GITHUB|GH)_/, ['api.github.com']],
  [/^GITLAB_/, ['gitlab.com']],
  [/^SLACK_/, ['slack.com']],
  [/^OPENAI_/, ['api.openai.com']],
  [/^ANTHROPIC_/, ['api.anthropic.com']],
  [/^BRAVE_/, ['api.search.brave.com']],
  [/^NOTION_/, ['api.notion.com']],
  [/^LINEAR_/, ['api.linear.app']],
  [/^SENTRY_/, ['sentry.io']],
  [/^STRIPE_/, ['api.stripe.com']],
];

const SECRET_WORDS = new Set([
  'TOKEN',
  'KEY',
  'APIKEY',
  'SECRET',
  'PASSWORD',
  'PASSWD',
  'PASS',
  'PAT',
  'CREDENTIAL',
  'CREDENTIALS',
  'AUTH',
]);

/** Does this env var look like a credential? (A value that is an absolute path is not one.) */
export function looksLikeSecret(name: string, value: unknown): boolean {
  if (typeof value === 'string' && value.startsWith('/')) return false;
  return name
    .toUpperCase()
    .split(/[^A-Z0-9]+/)
    .some((part) => SECRET_WORDS.has(part));
}

export function detectFormat(file: string, doc: unknown): ConfigFormat | undefined {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const d = doc as Record<string, unknown>;
  const name = basename(file);
  const parent = basename(dirname(resolve(file)));
  const hasMcpServers = typeof d.mcpServers === 'object' && d.mcpServers !== null;
  const hasServers = typeof d.servers === 'object' && d.servers !== null;
  if (name === 'claude_desktop_config.json' && hasMcpServers) return 'claude-desktop';
  if (name === '.mcp.json' && hasMcpServers) return 'claude-code';
  if (name === 'mcp.json' && parent === '.vscode' && hasServers) return 'vscode';
  if (name === 'mcp.json' && parent === '.cursor' && hasMcpServers) return 'cursor';
  if (hasMcpServers) return 'mcpServers';
  if (hasServers) return 'vscode';
  return undefined;
}

/** VS Code's mcp.json is JSONC: strip comments and trailing commas (outside strings) first. */
export function parseJsonc(text: string): unknown {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      out += text.slice(start, i + 1);
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 1;
    } else {
      out += c;
    }
  }
  return JSON.parse(out.replace(/,(\s*[}\]])/g, '$1'));
}

function detectIndent(text: string): string | number {
  const m = /^([ \t]+)"/m.exec(text);
  if (!m) return 2;
  return m[1].startsWith('\t') ? '\t' : m[1].length;
}

function isWrapped(command: string, args: string[]): boolean {
  if (basename(command) === 'stockade') return true;
  const head = args.slice(0, 3);
  return (
    (head.includes('stockade') && args.includes('run')) ||
    (args[0] !== undefined && /(^|\/)bin\/stockade\.js$/.test(args[0]) && args[1] === 'run')
  );
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_') || 'server';
}

/** The starting policy for one server: profile, pass-through env, secrets, granted paths. */
export function startingPolicy(command: string, args: string[], env: Record<string, unknown>): { policy: Policy; secrets: WrapSecret[] } {
  const policy: Policy = { $schema: 'https://unpkg.com/stockade/stockade.schema.json' };
  const profile = guessProfile(command);
  if (profile) policy.profile = profile;
  // Absolute directories on the command line are what a server like server-filesystem is meant
  // to work on; grant them read-write so it works as before (narrow them by editing).
  const dirs = args.filter((a) => isAbsolute(a) && existsSync(a) && statSync(a).isDirectory());
  if (dirs.length) policy.filesystem = { readWrite: dirs };
  // A program given by absolute path outside any profile needs its own directory to be visible.
  if (!profile && isAbsolute(command)) policy.filesystem = { ...policy.filesystem, readOnly: [dirname(command)] };
  const secrets: WrapSecret[] = [];
  const passEnv: Record<string, true> = {};
  for (const [name, value] of Object.entries(env)) {
    if (looksLikeSecret(name, value)) {
      const known = KNOWN_SECRET_HOSTS.find(([re]) => re.test(name.toUpperCase()));
      secrets.push({ name, hosts: known ? known[1] : [PLACEHOLDER_HOST], needsHost: !known });
    } else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      passEnv[name] = true;
    }
  }
  if (Object.keys(passEnv).length) policy.env = passEnv;
  if (secrets.length) {
    policy.network = { allow: [...new Set(secrets.flatMap((s) => s.hosts))] };
    policy.secrets = secrets.map((s) => ({ name: s.name, hosts: s.hosts }));
  }
  return { policy, secrets };
}

function launcher(absolute: boolean): { command: string; prefix: string[] } {
  if (!absolute) return { command: 'npx', prefix: ['-y', 'stockade'] };
  // dist/lib -> package root; lib when run from source.
  const root = [join(libDir, '../..'), join(libDir, '..')].find((r) => existsSync(join(r, 'package.json')));
  return { command: process.execPath, prefix: [join(root ?? join(libDir, '../..'), 'bin', 'stockade.js')] };
}

/** Plans (and unless dryRun, performs) the wrap of one config file. */
export function wrapConfig(file: string, opts: WrapOptions = {}): WrapResult {
  const original = readFileSync(file);
  const text = original.toString('utf8');
  let doc: unknown;
  try {
    doc = parseJsonc(text);
  } catch (err) {
    throw new WrapError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  let commentsDropped = false;
  try {
    JSON.parse(text);
  } catch {
    commentsDropped = true;
  }
  const format = detectFormat(file, doc);
  if (!format) {
    throw new WrapError(`${file}: unknown config format (no \`mcpServers\` or \`servers\` object); nothing changed`);
  }
  const key = format === 'vscode' ? 'servers' : 'mcpServers';
  const servers = (doc as Record<string, Record<string, Record<string, unknown>>>)[key];
  const configDir = dirname(resolve(file));
  const policyDir = join(configDir, 'stockade');
  const { command: launchCommand, prefix } = launcher(opts.absolute ?? false);
  const actions: ServerAction[] = [];
  const policies: { file: string; content: string }[] = [];
  const usedNames = new Set<string>();
  for (const [name, entry] of Object.entries(servers)) {
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) {
      actions.push({ name, action: 'unknown', detail: 'not an object' });
      continue;
    }
    const type = typeof entry.type === 'string' ? entry.type : undefined;
    if (typeof entry.url === 'string' || (type && type !== 'stdio')) {
      actions.push({ name, action: 'remote', detail: `${type ?? 'url'} server${typeof entry.url === 'string' ? ` at ${entry.url}` : ''}` });
      continue;
    }
    if (typeof entry.command !== 'string') {
      actions.push({ name, action: 'unknown', detail: 'no `command`' });
      continue;
    }
    const args = Array.isArray(entry.args) ? entry.args.filter((a): a is string => typeof a === 'string') : [];
    if (isWrapped(entry.command, args)) {
      actions.push({ name, action: 'already-wrapped' });
      continue;
    }
    let base = safeName(name);
    while (usedNames.has(base)) base = `${base}_`;
    usedNames.add(base);
    const policyFile = join(policyDir, `${base}.policy.json`);
    const env = entry.env && typeof entry.env === 'object' ? (entry.env as Record<string, unknown>) : {};
    const { policy, secrets } = startingPolicy(entry.command, args, env);
    const policyCreated = !existsSync(policyFile);
    if (policyCreated) policies.push({ file: policyFile, content: `${JSON.stringify(policy, null, 2)}\n` });
    // Keep every other field (env, type, cwd, envFile...) where it was; only the program changes.
    servers[name] = { ...entry, command: launchCommand, args: [...prefix, 'run', '--policy', policyFile, '--', entry.command, ...args] };
    actions.push({ name, action: 'wrapped', policyFile, policyCreated, secrets });
  }
  const changed = actions.some((a) => a.action === 'wrapped');
  const indent = detectIndent(text);
  // Keep the file's own conventions: indentation, CRLF line ends, a final newline or not.
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const newText = changed ? `${JSON.stringify(doc, null, indent).replace(/\n/g, eol)}${text.endsWith('\n') ? eol : ''}` : text;
  const backupFile = `${file}${BACKUP_SUFFIX}`;
  const result: WrapResult = {
    format,
    servers: actions,
    changed,
    backupFile,
    diff: changed ? unifiedDiff(text, newText, file, `${file} (wrapped)`) : '',
    policies,
    commentsDropped: commentsDropped && changed,
  };
  if (opts.dryRun || !changed) return result;
  // The backup is the pre-stockade file: never replace it with an already-wrapped one.
  if (!existsSync(backupFile)) writeFileSync(backupFile, original, { flag: 'wx', mode: statSync(file).mode & 0o777 });
  mkdirSync(policyDir, { recursive: true });
  for (const p of policies) writeFileSync(p.file, p.content, { flag: 'wx' });
  // Write-then-rename, so a client reading the config never sees half a file.
  const tmp = `${file}.stockade-tmp`;
  writeFileSync(tmp, newText, { mode: statSync(file).mode & 0o777 });
  renameSync(tmp, file);
  return result;
}

/** Restores the backup byte for byte. Policy files are left in place (they may hold edits). */
export function undoWrap(file: string): { backupFile: string } {
  const backupFile = `${file}${BACKUP_SUFFIX}`;
  if (!existsSync(backupFile))
    throw new WrapError(`no backup ${backupFile}: ${file} was not wrapped by stockade (or was already restored)`);
  const tmp = `${file}.stockade-tmp`;
  copyFileSync(backupFile, tmp);
  renameSync(tmp, file);
  rmSync(backupFile);
  return { backupFile };
}

const USAGE = `usage: stockade wrap CONFIG [--dry-run] [--undo] [--absolute]

Rewrites every stdio MCP server in CONFIG (Claude Desktop, Claude Code, VS Code or Cursor) to
run through \`stockade run\`, writing a starting policy per server to stockade/NAME.policy.json
next to CONFIG. Remote (url) servers and unknown entries are left alone.

  --dry-run   print the diff and the policies that would be written; change nothing
  --undo      restore CONFIG from its backup (CONFIG${BACKUP_SUFFIX}), byte for byte
  --absolute  launch with this node and this install's bin instead of \`npx -y stockade\`
`;

function report(result: WrapResult, io: CliIO, dryRun: boolean): void {
  const w = (s: string) => io.stdout.write(`${s}\n`);
  const verb = dryRun ? 'would wrap' : 'wrapped';
  for (const s of result.servers) {
    if (s.action === 'wrapped') {
      w(`${verb} ${s.name}: policy ${s.policyFile}${s.policyCreated ? '' : ' (exists, kept)'}`);
      for (const sec of s.secrets) {
        w(
          sec.needsHost
            ? `  secret ${sec.name}: its value stays in the client config's env; the server sees a placeholder. EDIT the policy: replace ${PLACEHOLDER_HOST} with the host(s) ${sec.name} is sent to`
            : `  secret ${sec.name}: its value stays in the client config's env; the proxy injects it for ${sec.hosts.join(', ')} only (default header: Authorization: Bearer {secret})`,
        );
      }
    } else if (s.action === 'already-wrapped') {
      w(`left ${s.name}: already runs through stockade`);
    } else if (s.action === 'remote') {
      w(`left ${s.name}: remote ${s.detail} (stockade sandboxes local stdio servers only)`);
    } else {
      w(`left ${s.name}: not a stdio server entry (${s.detail})`);
    }
  }
  if (result.commentsDropped) w(`note: the comments in the config are not kept in the rewritten file (the backup has them)`);
  if (!result.changed) w('nothing to change');
  else if (!dryRun)
    w(`backup: ${result.backupFile} (restore with: stockade wrap --undo ${basename(result.backupFile.slice(0, -BACKUP_SUFFIX.length))})`);
}

/** `argv` is what follows `wrap`. Exit status: 0 done, 1 error, 2 usage error. */
export async function main(argv: string[], io: CliIO = process): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    io.stdout.write(USAGE);
    return 0;
  }
  const known = new Set(['--dry-run', '--undo', '--absolute']);
  const unknown = argv.find((a) => a.startsWith('-') && !known.has(a));
  const files = argv.filter((a) => !a.startsWith('-'));
  if (unknown || files.length !== 1 || (argv.includes('--undo') && argv.includes('--dry-run'))) {
    const why = unknown
      ? `unknown option ${unknown}`
      : files.length !== 1
        ? 'expected exactly one CONFIG'
        : '--undo and --dry-run do not combine';
    io.stderr.write(`stockade wrap: ${why}\n${USAGE}`);
    return 2;
  }
  const file = files[0];
  try {
    if (argv.includes('--undo')) {
      undoWrap(file);
      io.stdout.write(`restored ${file} from its backup; policy files in ${join(dirname(resolve(file)), 'stockade')} were kept\n`);
      return 0;
    }
    const dryRun = argv.includes('--dry-run');
    const result = wrapConfig(file, { dryRun, absolute: argv.includes('--absolute') });
    if (dryRun) {
      io.stdout.write(result.diff);
      for (const p of result.policies) io.stdout.write(`--- would create ${p.file}\n${p.content}`);
    }
    report(result, io, dryRun);
    return 0;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (err instanceof WrapError || e.code === 'ENOENT' || e.code === 'EACCES') {
      io.stderr.write(`stockade wrap: ${e.message}\n`);
      return 1;
    }
    throw err;
  }
}
