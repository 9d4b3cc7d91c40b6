// `stockade wrap CONFIG [--dry-run] [--undo] [--portable]`: put every stdio MCP server of a
// client config behind `stockade run`, with a starting policy per server (lib/cli/wrap-policy.ts).
//
// Formats: Claude Desktop (claude_desktop_config.json), Claude Code (.mcp.json in a project;
// ~/.claude.json with user-scoped `mcpServers` and project-scoped `projects.<dir>.mcpServers`),
// Cursor (~/.cursor/mcp.json), all under `mcpServers`; VS Code (.vscode/mcp.json) under `servers`.
//
// Decisions, all reported to the user:
//   - Launcher: this installed launcher by absolute path (this node and this package's
//     bin/stockade.js): no npx lookup at each start (about 450 ms), works offline, and cannot
//     drift to another version. `--portable` writes `npx -y stockade-sandbox@VERSION` instead,
//     pinned to this exact version, for configs shared between machines. Run from npx's cache
//     (which npm may clean), wrap writes the portable form.
//   - Project configs (.vscode/mcp.json, a project's .mcp.json) refer to their policies by a
//     path relative to the project, so the config and its policies can be committed together.
//   - Secrets: env vars whose names look like credentials stay in the client config's env,
//     which is where the launcher reads them; the policy names them as proxy-injected secrets,
//     so the server only ever sees a placeholder.
//   - Existing policy files are never overwritten (they may hold the user's edits).
//   - The backup (CONFIG.stockade-backup) is the config as it was before the first wrap; a later
//     wrap keeps it, so --undo always returns to the pre-stockade file, byte for byte.
//   - The config is edited in place with jsonc-parser: only the rewritten server entries change;
//     comments, key order, indentation and line ends elsewhere stay as they were.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { applyEdits, type FormattingOptions, type JSONPath, modify, type ParseError, parse, printParseErrorCode } from 'jsonc-parser';
import { approveWrittenPolicy } from '../approval';
import { within } from '../hostpath';
import { packageRoot } from '../location';
import { launchPath } from '../native';
import type { PackagePin } from '../policy/types';
import { parseCommandArgs } from './args';
import type { CliIO } from './check';
import { unifiedDiff } from './diff';
import { UsageError } from './errors';
import { type Grant, PLACEHOLDER_HOST, startingPolicy, type WrapSecret } from './wrap-policy';

export { looksLikeSecret, PLACEHOLDER_HOST, startingPolicy, type WrapSecret } from './wrap-policy';

export type ConfigFormat = 'claude-desktop' | 'claude-code' | 'claude-code-user' | 'vscode' | 'cursor' | 'mcpServers';

export type ServerAction =
  | {
      name: string;
      /** The project directory of a Claude Code project-scoped server. */
      scope?: string;
      action: 'wrapped';
      policyFile: string;
      policyCreated: boolean;
      secrets: WrapSecret[];
      grants: Grant[];
      warnings: string[];
      /** The registry package the policy pins (npx/uvx servers), when it was resolved. */
      pinned?: PackagePin;
    }
  | { name: string; scope?: string; action: 'relaunched'; detail: string }
  | { name: string; scope?: string; action: 'already-wrapped' }
  | { name: string; scope?: string; action: 'remote'; detail: string }
  | { name: string; scope?: string; action: 'unknown'; detail: string };

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
  launcher: Launcher;
  /** A project config (policies referred to relative to the project). */
  project: boolean;
}

export interface WrapOptions {
  dryRun?: boolean;
  /** `npx -y stockade-sandbox@VERSION` instead of this install's launcher by absolute path. */
  portable?: boolean;
  /**
   * The package pin for a server's command (an `npx -y PKG` or `uvx PKG` server), asked for each
   * policy wrap creates: a pin is recorded in the policy, an Error becomes a warning. main()
   * resolves them beforehand (lib/cli/package-resolve.ts), since that is asynchronous.
   */
  pinFor?: (command: string[], env: Record<string, unknown>) => PackagePin | Error | undefined;
}

export class WrapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WrapError';
  }
}

export const BACKUP_SUFFIX = '.stockade-backup';
export const PACKAGE_NAME = 'stockade-sandbox';

const packageVersion = (): string => (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;

function detectFormat(file: string, doc: unknown): ConfigFormat | undefined {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const d = doc as Record<string, unknown>;
  const name = basename(file);
  const parent = basename(dirname(resolve(file)));
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  const hasMcpServers = isObject(d.mcpServers);
  const hasServers = isObject(d.servers);
  if (name === '.claude.json' && (hasMcpServers || isObject(d.projects))) return 'claude-code-user';
  if (name === 'claude_desktop_config.json' && hasMcpServers) return 'claude-desktop';
  if (name === '.mcp.json' && hasMcpServers) return 'claude-code';
  if (name === 'mcp.json' && parent === '.vscode' && hasServers) return 'vscode';
  if (name === 'mcp.json' && parent === '.cursor' && hasMcpServers) return 'cursor';
  if (hasMcpServers) return 'mcpServers';
  if (hasServers) return 'vscode';
  return undefined;
}

/** A config committed with its project: policies are referred to relative to the project. */
function isProjectConfig(file: string, format: ConfigFormat): boolean {
  return format === 'claude-code' || (format === 'vscode' && basename(dirname(resolve(file))) === '.vscode');
}

type Entry = Record<string, unknown>;

/** Every table of servers in the document: its JSON path, and the project it belongs to. */
function serverTables(
  format: ConfigFormat,
  doc: Record<string, unknown>,
): { path: JSONPath; servers: Record<string, unknown>; scope?: string }[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const tables: { path: JSONPath; servers: Record<string, unknown>; scope?: string }[] = [];
  const key = format === 'vscode' ? 'servers' : 'mcpServers';
  if (isObject(doc[key])) tables.push({ path: [key], servers: doc[key] });
  // Claude Code keeps servers added with `claude mcp add` (local scope) per project directory.
  if (format === 'claude-code-user' && isObject(doc.projects)) {
    for (const [dir, project] of Object.entries(doc.projects)) {
      if (isObject(project) && isObject(project.mcpServers))
        tables.push({ path: ['projects', dir, 'mcpServers'], servers: project.mcpServers, scope: dir });
    }
  }
  return tables;
}

export interface Launcher {
  command: string;
  prefix: string[];
  kind: 'installed' | 'portable';
  /** Why the portable form was chosen without being asked for. */
  note?: string;
}

/** The program a wrapped entry runs: this install by absolute path, or a pinned npx. */
function launcherFor(portable: boolean, root = packageRoot): Launcher {
  const pinned: Launcher = { command: 'npx', prefix: ['-y', `${PACKAGE_NAME}@${packageVersion()}`], kind: 'portable' };
  if (portable) return pinned;
  if (root.split('/').includes('_npx')) {
    return {
      ...pinned,
      note: `running from npx's cache, which npm may clean: wrote ${pinned.prefix[1]} (install it, npm i -g ${PACKAGE_NAME}, for faster starts)`,
    };
  }
  const node: Launcher = { command: process.execPath, prefix: [join(root, 'bin', 'stockade.js')], kind: 'installed' };
  // stockade-launch in front where this install has it (native/launch.cc): the server then
  // starts before the Node launcher has (README, "A launcher that is not a Node process").
  let launch: string | undefined;
  try {
    launch = launchPath();
  } catch {
    return node; // no addon: `stockade run` says so at the start
  }
  return existsSync(launch) ? { ...node, command: launch, prefix: [node.command, ...node.prefix] } : node;
}

/**
 * Does this entry already run through stockade? 'legacy': through `npx -y stockade`, which an
 * earlier wrap wrote and which fetches an unrelated package of that name: its launcher is
 * replaced, the rest of its command line kept.
 */
function wrappedState(command: string, args: string[]): 'no' | 'yes' | 'legacy' {
  const program = basename(command);
  if (program === 'stockade' || program === PACKAGE_NAME || program === 'stockade.js' || program === 'stockade-launch') return 'yes';
  if (args[0] !== undefined && /(^|\/)bin\/stockade\.js$/.test(args[0]) && args[1] === 'run') return 'yes';
  const head = args.slice(0, 3);
  if (head.some((a) => a === PACKAGE_NAME || a.startsWith(`${PACKAGE_NAME}@`)) && args.includes('run')) return 'yes';
  if (program === 'npx' && head.includes('stockade') && args.includes('run')) return 'legacy';
  return 'no';
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || 'server';
}

function formatting(text: string): FormattingOptions {
  const m = /^([ \t]+)"/m.exec(text);
  const tabs = m?.[1].startsWith('\t') ?? false;
  return { insertSpaces: !tabs, tabSize: tabs ? 1 : (m?.[1].length ?? 2), eol: text.includes('\r\n') ? '\r\n' : '\n' };
}

/** JSONC (comments, trailing commas), as VS Code and Claude Code accept it. */
export function parseJsonc(text: string): unknown {
  const errors: ParseError[] = [];
  const doc = parse(text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false });
  if (errors.length) {
    const { error, offset } = errors[0];
    const before = text.slice(0, offset).split('\n');
    throw new SyntaxError(`${printParseErrorCode(error)} at line ${before.length}, column ${before[before.length - 1].length + 1}`);
  }
  return doc;
}

function readConfig(file: string): { original: Buffer; text: string; doc: Record<string, unknown>; format: ConfigFormat } {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(file);
  } catch (err) {
    throw new WrapError(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}: give the path of an MCP client config`,
    );
  }
  if (st.isDirectory()) {
    throw new WrapError(
      `${file} is a directory: give the config file itself (e.g. ${join(file, '.mcp.json')} or ${join(file, '.vscode', 'mcp.json')})`,
    );
  }
  if (!st.isFile()) throw new WrapError(`${file} is not a regular file`);
  const original = readFileSync(file);
  const text = original.toString('utf8');
  let doc: unknown;
  try {
    doc = parseJsonc(text);
  } catch (err) {
    throw new WrapError(`${file} is not valid JSON: ${(err as Error).message}; nothing changed`);
  }
  const format = detectFormat(file, doc);
  if (!format) throw new WrapError(`${file}: unknown config format (no \`mcpServers\` or \`servers\` object); nothing changed`);
  return { original, text, doc: doc as Record<string, unknown>, format };
}

/** Where the policies go, and how the config refers to them. */
function policyPlace(file: string, format: ConfigFormat): { dir: string; ref: (policyFile: string) => string } {
  const configDir = dirname(resolve(file));
  // ~/.claude.json sits in the home directory: its policies go beside Claude Code's own files.
  const dir = format === 'claude-code-user' ? join(configDir, '.claude', 'stockade') : join(configDir, 'stockade');
  if (!isProjectConfig(file, format)) return { dir, ref: (p) => p };
  // VS Code expands ${workspaceFolder}; Claude Code starts project servers in the project dir.
  if (format === 'vscode') {
    const project = dirname(configDir);
    return { dir, ref: (p) => `\${workspaceFolder}/${relative(project, p)}` };
  }
  return { dir, ref: (p) => relative(configDir, p) };
}

/**
 * What a server could rewrite through its read-write grants that decides how it starts next time:
 * the client config (its own entry) and its policy file. stockade run refuses a grant holding
 * the policy (lib/plan.ts TRUSTED_FILES); the config is the client's, so here the user is told.
 */
function grantsOverTrust(grants: readonly Grant[], files: { path: string; what: string; effect: string }[]): string[] {
  return files.flatMap((f) => {
    const g = grants.find((g) => g.mode === 'rw' && within(f.path, resolve(g.path)));
    return g === undefined
      ? []
      : [
          `its read-write grant ${g.path} holds ${f.what} (${f.path}): the server could rewrite it ${f.effect}; grant it the directories it works on, not the one holding ${f.what}`,
        ];
  });
}

/** Plans (and unless dryRun, performs) the wrap of one config file. */
export function wrapConfig(file: string, opts: WrapOptions = {}): WrapResult {
  const { original, text, doc, format } = readConfig(file);
  const project = isProjectConfig(file, format);
  const place = policyPlace(file, format);
  const launcher = launcherFor(opts.portable ?? false);
  const fmt = formatting(text);
  const actions: ServerAction[] = [];
  const policies: { file: string; content: string }[] = [];
  const usedNames = new Set<string>();
  let newText = text;
  const rewrite = (path: JSONPath, entry: Entry) => {
    newText = applyEdits(newText, modify(newText, path, entry, { formattingOptions: fmt }));
  };
  for (const table of serverTables(format, doc)) {
    const scope = table.scope !== undefined ? { scope: table.scope } : {};
    for (const [name, value] of Object.entries(table.servers)) {
      if (!value || typeof value !== 'object' || Array.isArray(value)) {
        actions.push({ name, ...scope, action: 'unknown', detail: 'not an object' });
        continue;
      }
      const entry = value as Entry;
      const type = typeof entry.type === 'string' ? entry.type : undefined;
      if (typeof entry.url === 'string' || (type && type !== 'stdio')) {
        actions.push({
          name,
          ...scope,
          action: 'remote',
          detail: `${type ?? 'url'} server${typeof entry.url === 'string' ? ` at ${entry.url}` : ''}`,
        });
        continue;
      }
      if (typeof entry.command !== 'string') {
        actions.push({ name, ...scope, action: 'unknown', detail: 'no `command`' });
        continue;
      }
      const args = Array.isArray(entry.args) ? entry.args.filter((a): a is string => typeof a === 'string') : [];
      const state = wrappedState(entry.command, args);
      // Wrapped by an earlier version as `node <this install>/bin/stockade.js run ...`: the same
      // start with stockade-launch in front, which this install now has.
      if (state === 'yes' && launcher.command !== entry.command && args[0] === launcher.prefix[1] && args[1] === 'run') {
        rewrite([...table.path, name], { ...entry, command: launcher.command, args: [entry.command, ...args] });
        actions.push({ name, ...scope, action: 'relaunched', detail: 'stockade-launch now starts its sandbox before Node does' });
        continue;
      }
      if (state === 'yes') {
        actions.push({ name, ...scope, action: 'already-wrapped' });
        continue;
      }
      if (state === 'legacy') {
        const rest = args.slice(args.indexOf('run'));
        rewrite([...table.path, name], { ...entry, command: launcher.command, args: [...launcher.prefix, ...rest] });
        actions.push({
          name,
          ...scope,
          action: 'relaunched',
          detail: 'its launcher was `npx -y stockade`, an unrelated package of that name',
        });
        continue;
      }
      let base = table.scope !== undefined ? `${safeName(basename(table.scope))}-${safeName(name)}` : safeName(name);
      while (usedNames.has(base)) base = `${base}_`;
      usedNames.add(base);
      const policyFile = join(place.dir, `${base}.policy.json`);
      const env = entry.env && typeof entry.env === 'object' ? (entry.env as Record<string, unknown>) : {};
      const { policy, secrets, grants, warnings } = startingPolicy(entry.command, args, env);
      warnings.push(
        ...grantsOverTrust(grants, [
          { path: resolve(file), what: 'this client config', effect: 'and run without stockade at its next start' },
          { path: policyFile, what: 'its policy file', effect: 'so `stockade run` refuses to start it' },
        ]),
      );
      const policyCreated = !existsSync(policyFile);
      let pinned: PackagePin | undefined;
      const pin = policyCreated ? opts.pinFor?.([entry.command, ...args], env) : undefined;
      if (pin instanceof Error) {
        warnings.push(`not pinned: ${pin.message}; to pin it later: stockade update ${shellQuote(resolve(file))} ${shellQuote(name)}`);
      } else if (pin !== undefined) {
        policy.package = pin;
        pinned = pin;
      }
      if (policyCreated) policies.push({ file: policyFile, content: `${JSON.stringify(policy, null, 2)}\n` });
      // Keep every other field (env, type, cwd, envFile...) where it was; only the program changes.
      const wrapped = {
        ...entry,
        command: launcher.command,
        args: [...launcher.prefix, 'run', '--policy', place.ref(policyFile), '--', entry.command, ...args],
      };
      rewrite([...table.path, name], wrapped);
      actions.push({
        name,
        ...scope,
        action: 'wrapped',
        policyFile,
        policyCreated,
        secrets,
        grants,
        warnings,
        ...(pinned ? { pinned } : {}),
      });
    }
  }
  const changed = newText !== text;
  const backupFile = `${file}${BACKUP_SUFFIX}`;
  const result: WrapResult = {
    format,
    servers: actions,
    changed,
    backupFile,
    diff: changed ? unifiedDiff(text, newText, file, `${file} (wrapped)`) : '',
    policies,
    launcher,
    project,
  };
  if (opts.dryRun || !changed) return result;
  // The backup is the pre-stockade file: never replace it with an already-wrapped one.
  if (!existsSync(backupFile)) writeFileSync(backupFile, original, { flag: 'wx', mode: statSync(file).mode & 0o777 });
  mkdirSync(place.dir, { recursive: true });
  for (const p of policies) {
    writeFileSync(p.file, p.content, { flag: 'wx' });
    approveWrittenPolicy(p.file, JSON.parse(p.content));
  }
  // Write-then-rename, so a client reading the config never sees half a file.
  const tmp = `${file}.stockade-tmp`;
  writeFileSync(tmp, newText, { mode: statSync(file).mode & 0o777 });
  renameSync(tmp, file);
  return result;
}

/**
 * The policy file a wrapped server of `file` runs with (`stockade update CONFIG NAME`): the
 * `--policy` argument of its entry, resolved as the client resolves it. Throws WrapError when
 * there is no such server or it is not wrapped.
 */
export function policyOfServer(file: string, name: string): { policy: string; command: string[] } {
  const { doc, format } = readConfig(file);
  const matches = serverTables(format, doc).filter((t) => Object.hasOwn(t.servers, name));
  if (matches.length === 0) throw new WrapError(`${file} has no server named ${JSON.stringify(name)}`);
  if (matches.length > 1) throw new WrapError(`${file} has ${matches.length} servers named ${JSON.stringify(name)} (in several projects)`);
  const entry = matches[0].servers[name] as Entry;
  const args = Array.isArray(entry?.args) ? entry.args : [];
  const at = args.indexOf('--policy');
  const ref = at >= 0 ? args[at + 1] : undefined;
  if (typeof ref !== 'string')
    throw new WrapError(`server ${JSON.stringify(name)} in ${file} does not run through stockade with a policy; wrap it first`);
  const configDir = dirname(resolve(file));
  const dd = args.indexOf('--');
  const command = dd >= 0 ? args.slice(dd + 1).filter((a): a is string => typeof a === 'string') : [];
  // biome-ignore lint/suspicious/noTemplateCurlyInString: VS Code's variable syntax, read literally
  const ws = '${workspaceFolder}/';
  if (ref.startsWith(ws)) return { policy: join(dirname(configDir), ref.slice(ws.length)), command };
  return { policy: resolve(configDir, ref), command };
}

/** Restores the backup byte for byte. Policy files are left in place (they may hold edits). */
function undoWrap(file: string): { backupFile: string } {
  const backupFile = `${file}${BACKUP_SUFFIX}`;
  if (!existsSync(backupFile))
    throw new WrapError(`no backup ${backupFile}: ${file} was not wrapped by stockade (or was already restored)`);
  const tmp = `${file}.stockade-tmp`;
  copyFileSync(backupFile, tmp);
  renameSync(tmp, file);
  rmSync(backupFile);
  return { backupFile };
}

const USAGE = `usage: stockade wrap CONFIG [--dry-run] [--portable] [--no-pin]
       stockade wrap --undo CONFIG

Rewrites every stdio MCP server in CONFIG (Claude Desktop, Claude Code's .mcp.json or
~/.claude.json, VS Code or Cursor) to run through \`stockade run\`, writing a starting policy per
server to stockade/NAME.policy.json next to CONFIG. Remote (url) servers and unknown entries are
left alone.

  --dry-run    print the diff and the policies that would be written; change nothing
  --undo       restore CONFIG from its backup (CONFIG${BACKUP_SUFFIX}), byte for byte
  --portable   launch with \`npx -y ${PACKAGE_NAME}@VERSION\` (this exact version) instead of
               this install by absolute path: for a config shared between machines
  --no-pin     do not pin \`npx -y PKG\` / \`uvx PKG\` servers to the version and digest the
               registry serves now (by default wrap asks the registry and records
               package: { name, version, integrity } in the policy; stockade update moves it)
`;

/** Quotes a path for a POSIX shell when it needs it. */
function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./@%+=:,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function describeSecret(sec: WrapSecret): string {
  if (sec.needsHost) {
    return `  secret ${sec.name}: its value stays in the client config's env; the server sees a placeholder. EDIT the policy: replace ${PLACEHOLDER_HOST} with the host(s) ${sec.name} is sent to`;
  }
  const inject = sec.inject;
  const how =
    inject === undefined
      ? 'Authorization: Bearer {secret}'
      : 'header' in inject
        ? `${inject.header}: ${inject.format}`
        : 'query' in inject
          ? `query parameter ${inject.query}`
          : 'basic auth';
  return `  secret ${sec.name}: its value stays in the client config's env; the proxy injects it for ${sec.hosts.join(', ')} only (${how})`;
}

function report(result: WrapResult, file: string, io: CliIO, dryRun: boolean): void {
  const w = (s: string) => io.stdout.write(`${s}\n`);
  const verb = dryRun ? 'would wrap' : 'wrapped';
  for (const s of result.servers) {
    const name = s.scope !== undefined ? `${s.name} (project ${s.scope})` : s.name;
    if (s.action === 'wrapped') {
      w(`${verb} ${name}: policy ${s.policyFile}${s.policyCreated ? '' : ' (exists, kept)'}`);
      if (s.policyCreated) for (const g of s.grants) w(`  granted ${g.mode === 'rw' ? 'read-write' : 'read-only'} ${g.path} (${g.why})`);
      if (s.pinned)
        w(
          `  pinned ${s.pinned.name} ${s.pinned.version} (${s.pinned.integrity}); move it with: stockade update ${shellQuote(resolve(file))} ${shellQuote(s.name)}`,
        );
      for (const sec of s.secrets) w(describeSecret(sec));
      for (const warning of s.warnings) w(`  warning: ${warning}`);
    } else if (s.action === 'relaunched') {
      w(
        `${dryRun ? 'would fix' : 'fixed'} ${name}: ${s.detail}; now ${result.launcher.kind === 'installed' ? 'this install' : result.launcher.prefix[1]}`,
      );
    } else if (s.action === 'already-wrapped') {
      w(`left ${name}: already runs through stockade`);
    } else if (s.action === 'remote') {
      w(`left ${name}: remote ${s.detail} (stockade sandboxes local stdio servers only)`);
    } else {
      w(`left ${name}: not a stdio server entry (${s.detail})`);
    }
  }
  if (!result.changed) {
    w('nothing to change');
    return;
  }
  const l = result.launcher;
  w(
    l.kind === 'installed'
      ? `launcher: ${l.command} ${l.prefix[0]} (this install; --portable writes npx -y ${PACKAGE_NAME}@VERSION instead)`
      : `launcher: npx -y ${l.prefix[1]}${l.note ? ` (${l.note})` : ''}`,
  );
  if (result.project) {
    w(
      `policies are referred to relative to the project${l.kind === 'installed' ? '; to commit this config, wrap it with --portable (the launcher path is this machine)' : ', so the config and stockade/ can be committed'}`,
    );
  }
  if (!dryRun) w(`backup: ${result.backupFile} (restore with: stockade wrap --undo ${shellQuote(resolve(file))})`);
}

/** The pin (or why there is none) of every npx/uvx server whose policy a wrap of `file` creates. */
async function resolvePins(file: string, portable: boolean): Promise<Map<string, PackagePin | Error>> {
  const wanted = new Map<string, { command: string[]; env: Record<string, unknown> }>();
  wrapConfig(file, {
    dryRun: true,
    portable,
    pinFor: (command, env) => {
      wanted.set(JSON.stringify(command), { command, env });
      return undefined;
    },
  });
  const { commandPackage, resolveCommandPackage } = require('./package-resolve') as typeof import('./package-resolve');
  const pins = new Map<string, PackagePin | Error>();
  for (const [key, { command, env }] of wanted) {
    const spec = commandPackage(command);
    if (spec === undefined) continue;
    // The registry configuration the server itself gets (its env in the client config) wins.
    const serverEnv = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'));
    try {
      pins.set(key, await resolveCommandPackage(spec, { ...process.env, ...serverEnv }));
    } catch (err) {
      pins.set(key, err as Error);
    }
  }
  return pins;
}

/** `argv` is what follows `wrap`. Exit status: 0 done, 1 error, 2 usage error. */
export async function main(argv: string[], io: CliIO = process): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    command: 'wrap',
    positional: 'CONFIG',
    options: {
      'dry-run': { type: 'boolean' },
      undo: { type: 'boolean' },
      portable: { type: 'boolean' },
      'no-pin': { type: 'boolean' },
      // The default now; accepted so that scripts written for earlier versions work.
      absolute: { type: 'boolean' },
    },
  });
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const [file] = positionals;
  const undo = values.undo === true;
  const dryRun = values['dry-run'] === true;
  const portable = values.portable === true;
  const pin = values['no-pin'] !== true;
  if (undo && (dryRun || portable || !pin)) throw new UsageError('--undo combines with no other option (see stockade wrap --help)');
  try {
    if (undo) {
      undoWrap(file);
      io.stdout.write(`restored ${file} from its backup; policy files in ${join(dirname(resolve(file)), 'stockade')} were kept\n`);
      return 0;
    }
    // Pins are resolved before the wrap proper (the registry answers asynchronously): a first,
    // dry pass lists the npx/uvx servers whose policies wrap would create. A dry run asks no
    // registry.
    const pins = pin && !dryRun ? await resolvePins(file, portable) : undefined;
    const result = wrapConfig(file, { dryRun, portable, ...(pins ? { pinFor: (command) => pins.get(JSON.stringify(command)) } : {}) });
    if (dryRun) {
      io.stdout.write(result.diff);
      for (const p of result.policies) io.stdout.write(`--- would create ${p.file}\n${p.content}`);
    }
    report(result, file, io, dryRun);
    return 0;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (err instanceof WrapError || e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EEXIST') {
      io.stderr.write(`stockade wrap: ${e.message.split('\n')[0]}\n`);
      return 1;
    }
    throw err;
  }
}
