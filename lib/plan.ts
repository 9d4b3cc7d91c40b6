// Options -> NativePlan: every decision about the sandbox's contents is made here, in
// TypeScript, and checked before anything is spawned. The addon gets a flat list of mounts,
// strings and numbers and executes it.
import fs = require('node:fs');
import path = require('node:path');

import { denyMounts } from './deny';
import { SandboxOptionsError } from './errors';
import {
  absolutePathReason,
  countReason,
  envNameReason,
  hostnameReason,
  parseSize,
  sandboxFileReason,
  sizeReason,
  wallTimeReason,
} from './fields';
import { entryType, HostPathError, launcherReach, resolveHostPath, startSocketScan, underSystemDir, within } from './hostpath';
import { landlockPlan, type TcpRules, tcpRules } from './landlock';
import { CA_BUNDLE, devMounts, etcBinds, etcFiles, procMounts, SANDBOX_HOME, SANDBOX_UID, synthesized, systemDirs } from './layout';
import { kernelBudgetNames, type LimitsPlan, planLimits, RLIMIT, type ValidLimits } from './limits';
import {
  initPath,
  MountKind,
  type NativeMount,
  type NativePlan,
  type NativePlanTemplate,
  native,
  SeccompProfileNumber,
  sha256Hex,
} from './native';
import { allowEntryReason } from './net/allowlist';
import { EGRESS_LIMIT_KEYS, resolveLimits } from './net/decision';
import type { EgressPlan } from './net/egress-plan';
import { PRELOAD_PATH } from './net/env';
import type { EgressOptions, KernelBudgets, SandboxLimits, SandboxOptions } from './options';
import { readUpstreamCa } from './secrets/upstream-ca';

export { SANDBOX_HOME, SANDBOX_UID } from './layout';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Limits given as integers, with the rlimit each falls back to (lib/limits decides what holds each). */
const integerLimits = ['cpu', 'pids', 'openFiles'] as const;
const sizeLimits = ['memory', 'fileSize'] as const;
const rlimitNames: Record<number, string> = {
  [RLIMIT.CPU]: 'RLIMIT_CPU',
  [RLIMIT.FSIZE]: 'RLIMIT_FSIZE',
  [RLIMIT.CORE]: 'RLIMIT_CORE',
  [RLIMIT.NPROC]: 'RLIMIT_NPROC',
  [RLIMIT.NOFILE]: 'RLIMIT_NOFILE',
  [RLIMIT.AS]: 'RLIMIT_AS',
};

export interface ResolvedSandbox {
  /** The plan without fds (added per spawn by process.ts). */
  plan: Omit<NativePlan, 'fds'>;
  /**
   * A short digest of everything that defines the sandbox, for audit events. Made when first
   * read: lib/process.ts reads it once the spawn is queued, while the spawner thread sets the
   * sandbox up. SHA-256 by the addon (lib/native.ts sha256Hex): loading node:crypto for it cost
   * ~6 ms of CPU just as the sandbox and the server in it start.
   */
  readonly digest: string;
  /** Human-readable description of list entries, for error paths. */
  describe(step: string, index: number): string | undefined;
  wallTime?: number;
  /** Host paths bound into the sandbox (identity mapped), for command resolution. */
  visible: string[];
  /** Canonical host paths the sandbox can write (read-write grants, a persistent home). */
  writable: string[];
  /** The extra upstream CAs (options.upstreamCa), read and checked with the options. */
  upstreamCaPem?: string[];
  /** The listeners and ports of the egress proxy, when the network has an allow list. */
  egress?: EgressPlan;
  seccomp: SeccompProfile;
  /** The TCP ports Landlock leaves open (ABI 4), or undefined where TCP is left to the namespaces. */
  tcp?: TcpRules;
  /** The cgroups to make per spawn, and what holds each limit (lib/limits). */
  limits: Pick<LimitsPlan, 'cgroup' | 'report'>;
  /** Held by the plan cache below, so spawned again: worth converting for the addon once. */
  reusable?: boolean;
  /** The plan as the addon holds it, made at its first spawn (process.ts), while reusable. */
  template?: NativePlanTemplate;
  /** The command as resolveCommand found it, while reusable (only system directories are visible). */
  commandFile?: string;
}

export type SeccompProfile = keyof typeof SeccompProfileNumber;

/** The one validator of the seccomp profile name (API option, policy field, --seccomp). */
export function seccompProfileOf(value: unknown, field: string): SeccompProfile {
  if (value === undefined) return 'default';
  if (value === 'default' || value === 'strict') return value;
  fail(field, `expected 'default' or 'strict', found ${JSON.stringify(value)}`);
}

/** The one validator of the local ports (API option, policy field, --local-port). */
export function localPortsOf(value: unknown, field: string): number[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) fail(field, `expected an array of TCP ports, found ${JSON.stringify(value)}`);
  if (value.length > 256) fail(field, `at most 256 ports, found ${value.length}`);
  for (const [i, p] of value.entries()) {
    if (!Number.isInteger(p) || p < 1 || p > 65535)
      fail(`${field}[${i}]`, `expected a TCP port from 1 to 65535, found ${JSON.stringify(p)}`);
  }
  return [...new Set(value as number[])].sort((a, b) => a - b);
}

const knownOptions = new Set([
  'cwd',
  'env',
  'stdio',
  'filesystem',
  'network',
  'limits',
  'hostname',
  'logger',
  'secrets',
  'upstreamCa',
  'seccomp',
  'localPorts',
  'grantScope',
  // spawn()'s own, checked by lib/process.ts (runSandboxed() takes its own options off first).
  'signal',
  'timeout',
  'killSignal',
  'warm',
]);

function fail(field: string, message: string): never {
  throw new SandboxOptionsError(field, message);
}

function checkKeys(value: object, known: readonly string[], field: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) fail(`${field}${field ? '.' : ''}${key}`, `unknown option (known: ${known.join(', ')})`);
  }
}

/**
 * @internal Host files the caller reads again at its next start and acts on (`stockade run`'s
 * policy file): a writable grant holding one, or its directory, is refused, as the upstream CAs
 * and the launcher's own files are (resolveGrants). A payload that could write them would choose
 * what the next sandbox is given.
 */
export const TRUSTED_FILES = Symbol('stockade.trustedFiles');

/** A file the next start trusts, named for the refusal: `what` reads as "the policy file". */
export interface TrustedFile {
  path: string;
  what: string;
}

/** A host path granted to the sandbox, resolved (lib/hostpath.ts). */
interface Grant {
  field: string;
  /** Canonical host path. */
  host: string;
  /** Where it is inside: the same path, or HOME for a persistent home. */
  inside: string;
  readOnly: boolean;
  /** Host root's read-write grant of its own directory: bound through an idmapped mount. */
  idmap: boolean;
}

/** A host path of the options: the policies' grammar (lib/fields.ts absolutePathReason). */
function typedPath(p: unknown, field: string): string {
  if (typeof p !== 'string') fail(field, `expected an absolute path string, found ${typeof p}`);
  const reason = absolutePathReason(p);
  if (reason !== null) fail(field, `${reason}, found ${JSON.stringify(p)}`);
  return p;
}

/** resolveHostPath(), its refusal turned into an options error of `field`. */
function hostPathOf(p: string, writable: readonly string[], field: string): string {
  try {
    return resolveHostPath(p, writable);
  } catch (err) {
    if (err instanceof HostPathError) fail(field, err.message);
    throw err;
  }
}

/**
 * The grants (read-write, read-only, a persistent home), resolved so that no symlink a sandbox
 * could have planted is followed: the read-write roots are resolved first, then every path is
 * resolved again with symlinks refused inside them. A grant holding a unix socket or a FIFO is
 * refused unless filesystem.allowSockets says so: that walk runs on the addon's threads while the
 * caller resolves the rest of the plan, and `checked()` waits for every one of them (a refusal
 * thrown, the first grant's first).
 */
function resolveGrants(
  fsOptions: NonNullable<SandboxOptions['filesystem']>,
  trusted: readonly TrustedFile[],
): {
  list: Grant[];
  writable: string[];
  checked: () => void;
} {
  const typed: { field: string; path: string; readOnly: boolean; home: boolean }[] = [];
  for (const key of ['readWrite', 'readOnly'] as const) {
    const list = fsOptions[key] ?? [];
    if (!Array.isArray(list)) fail(`filesystem.${key}`, 'expected an array of absolute paths');
    list.forEach((p, i) => {
      const field = `filesystem.${key}[${i}]`;
      typed.push({ field, path: typedPath(p, field), readOnly: key === 'readOnly', home: false });
    });
  }
  const home = fsOptions.home ?? 'tmpfs';
  if (home !== 'tmpfs') typed.push({ field: 'filesystem.home', path: typedPath(home, 'filesystem.home'), readOnly: false, home: true });
  const allowSockets = fsOptions.allowSockets ?? false;
  if (typeof allowSockets !== 'boolean') fail('filesystem.allowSockets', `expected true or false, found ${JSON.stringify(allowSockets)}`);

  const firstPass = typed.filter((t) => !t.readOnly).map((t) => hostPathOf(t.path, [], t.field));
  const root = process.getuid?.() === 0;
  const scans: (() => void)[] = [];
  const checked = () => {
    let first: unknown;
    for (const scan of scans.splice(0)) {
      try {
        scan();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  };
  const list = whileScanning(checked, () =>
    typed.map((t): Grant => {
      const host = hostPathOf(t.path, firstPass, t.field);
      if (host === '/') fail(t.field, "the host's / cannot be bound; name the directories the sandbox needs");
      if (within(host, '/proc') || within(host, '/dev')) fail(t.field, `'${t.path}' is managed by the sandbox itself and cannot be bound`);
      if (!t.readOnly) outOfReach(t, host, trusted);
      const stat = fs.statSync(host);
      if (t.home && !stat.isDirectory()) fail(t.field, `expected a directory, found '${t.path}' (not a directory)`);
      if (!allowSockets && !underSystemDir(host)) {
        const scan = startSocketScan(host);
        scans.push(() => {
          let found: ReturnType<typeof scan>;
          try {
            found = scan();
          } catch (err) {
            if (err instanceof HostPathError) fail(t.field, err.message);
            throw err;
          }
          if (found !== undefined) {
            fail(
              t.field,
              `'${t.path}' holds the ${found.type} '${found.path}': a read-only bind does not stop connect() to a socket or writes to a FIFO, so it would reach a host service; grant a path without it, or allow it explicitly with filesystem.allowSockets (--allow-sockets)`,
            );
          }
        });
      }
      // As host root the payload is host uid 65534: a directory root owns is writable inside only
      // through an idmapped mount, which also makes what the payload creates root's on the host.
      const idmap = root && !t.readOnly && stat.uid === process.getuid?.();
      return { field: t.field, host, inside: t.home ? SANDBOX_HOME : host, readOnly: t.readOnly, idmap };
    }),
  );
  return { list, writable: list.filter((g) => !g.readOnly).map((g) => g.host), checked };
}

/**
 * Refuses the writable grant `host` (canonical) where a payload could leave something there that
 * a later start runs or believes: the launcher's own files (lib/hostpath.ts launcherFiles), or a
 * trusted file or the directory holding it (a payload that can write the directory can replace
 * the file). A trusted file that does not exist is named by whoever reads it.
 */
function outOfReach(grant: { field: string; path: string }, host: string, trusted: readonly TrustedFile[]): void {
  const why = launcherReach(host);
  if (why !== undefined) {
    fail(
      grant.field,
      `'${grant.path}' ${why}, which the next start runs on the host: a sandbox that can write it could run code outside; grant a path that does not hold it`,
    );
  }
  for (const f of trusted) {
    let dir: string;
    try {
      dir = fs.realpathSync(path.dirname(path.resolve(f.path)));
    } catch {
      continue;
    }
    if (within(dir, host)) {
      fail(
        grant.field,
        `'${grant.path}' holds ${f.what} '${f.path}', which the next start reads again: a sandbox that can write there could choose what it is given next time; move ${f.what} out of every writable grant`,
      );
    }
  }
}

/**
 * `f()`, while the grants' socket scans run: when it throws, the scans are waited for first, and
 * a grant's refusal is what the caller sees (its field was named first).
 */
function whileScanning<T>(checked: () => void, f: () => T): T {
  try {
    return f();
  } catch (err) {
    checked();
    throw err;
  }
}

/** Asks the spawner for a warm child with the key this plan's sandbox will have (resolveUncached). */
function prewarm(shareNetwork: boolean, limits: LimitsPlan, tcp: TcpRules | undefined): void {
  const v2 = limits.cgroup?.where.find((w) => w.placement.hierarchy.version === 2);
  try {
    native().prewarm({ shareNetwork, budgets: limits.budgets, landlock: landlockPlan([], tcp), cgroupParent: v2?.placement.parent ?? '' });
  } catch {
    // No addon, or no thread: the spawn says so, or clones as without a pool.
  }
}

/** A host system path as the host has it: a symlink is re-created, anything else bound read-only. */
function mirror(p: string): NativeMount | undefined {
  let stat: fs.Stats | undefined;
  try {
    // throwIfNoEntry: a missing system directory (/lib32, /libx32) is common, and an exception
    // with its stack trace was the largest single cost of resolving a plan (spawn's JS thread time).
    stat = fs.lstatSync(p, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
  if (stat === undefined) return undefined;
  if (stat.isSymbolicLink()) return { kind: MountKind.symlink, source: fs.readlinkSync(p), target: p };
  return { kind: MountKind.bind, source: p, target: p, readOnly: true };
}

const kindNames: Record<number, string> = {
  [MountKind.bind]: 'bind',
  [MountKind.tmpfs]: 'tmpfs',
  [MountKind.proc]: 'procfs',
  [MountKind.devpts]: 'devpts',
  [MountKind.file]: 'synthesized file',
};

/**
 * Decides, for every entry (sorted, parents first), whether its mount point may be made: on the
 * sandbox's own tmpfs yes; under a host bind no — setup never creates anything in a host
 * directory, so there the host entry must already exist, of the right type and reached without
 * a symlink (the child checks it again, without following any). A symlink entry under a host
 * bind is dropped: the bind shows the host's own entry there.
 */
function placeTargets(ordered: NativeMount[], fields: Map<string, string>): NativeMount[] {
  const out: NativeMount[] = [];
  for (const m of ordered) {
    let parent: NativeMount | undefined;
    for (const o of out) {
      if (o.target !== m.target && within(m.target, o.target) && (parent === undefined || o.target.length > parent.target.length))
        parent = o;
    }
    const field = fields.get(m.target) ?? (parent && fields.get(parent.target)) ?? 'filesystem';
    if (parent?.kind === MountKind.symlink) {
      fail(field, `'${m.target}' lies under the symlink '${parent.target}' of the sandbox's root; name the real path`);
    }
    if (parent?.kind !== MountKind.bind || parent.source === undefined) {
      out.push(m);
      continue;
    }
    if (m.kind === MountKind.symlink) continue;
    const host = path.join(parent.source, path.relative(parent.target, m.target));
    const found = entryType(host);
    // A mask over a denied file (lib/deny.ts) sits on a file, like a synthesized one.
    const wantDir =
      m.kind === MountKind.bind ? entryType(m.source as string) === 'dir' : m.kind !== MountKind.file && m.kind !== MountKind.maskFile;
    const ok = wantDir ? found === 'dir' : found === 'file' || found === 'other';
    if (!ok) {
      const what =
        found === undefined ? 'nothing' : found === 'symlink' ? 'a symlink on the way' : `a ${found === 'dir' ? 'directory' : 'file'}`;
      fail(
        field,
        `'${m.target}' (a ${kindNames[m.kind] ?? 'mount'}) lies in the host directory bound from '${parent.source}', where the host has ${what} at '${host}'; setup never creates anything in a host directory nor follows a symlink there, so it is bound only over an existing ${wantDir ? 'directory' : 'file'}: create '${host}' first, or use a path outside that grant`,
      );
    }
    out.push({ ...m, createTarget: false });
  }
  return out;
}

/** A size in bytes or a string like '64m' (lib/fields.ts: the same grammar as policies and flags). */
function size(value: unknown, field: string): number {
  const reason = sizeReason(value);
  if (reason !== null) fail(field, `${reason}, found ${JSON.stringify(value)}`);
  return parseSize(value as number | string);
}

/**
 * TERM inside: the caller's, so that a program run on the caller's terminal (stdio 'inherit')
 * draws for it; 'dumb' where the caller has none or an odd one (an MCP client starting a server
 * has no terminal: no escape sequences in its output). Only the name passes: the terminfo
 * database the name refers to is the host's /usr/share/terminfo, bound with /usr.
 */
function terminalType(): string {
  const term = process.env.TERM;
  return term !== undefined && /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(term) ? term : 'dumb';
}

/**
 * The payload's environment: defaults, then the caller's values, then what stockade itself must
 * set (proxy variables, placeholders, trust paths), which the caller cannot override.
 * NODE_OPTIONS is the exception: stockade's --require is appended to the caller's.
 */
function buildEnv(env: SandboxOptions['env'], forced?: (nodeOptions: string | undefined) => Record<string, string>): string[] {
  const out = new Map<string, string>([
    ['PATH', DEFAULT_PATH],
    ['HOME', SANDBOX_HOME],
    ['USER', 'nobody'],
    ['LANG', 'C.UTF-8'],
    ['TERM', terminalType()],
  ]);
  if (env !== undefined) {
    if (typeof env !== 'object' || env === null || Array.isArray(env)) fail('env', 'expected an object of NAME: value | true');
    for (const [name, value] of Object.entries(env)) {
      if (envNameReason(name) !== null) fail(`env.${name}`, 'not a valid environment variable name');
      if (value === true) {
        const host = process.env[name];
        if (host !== undefined) out.set(name, host);
      } else if (typeof value === 'string') {
        if (value.includes('\0')) fail(`env.${name}`, 'value contains a NUL byte');
        out.set(name, value);
      } else {
        fail(`env.${name}`, `expected a string or true, found ${JSON.stringify(value)}`);
      }
    }
  }
  if (forced) for (const [k, v] of Object.entries(forced(out.get('NODE_OPTIONS')))) out.set(k, v);
  return [...out].map(([k, v]) => `${k}=${v}`);
}

function buildLimits(limits: SandboxLimits | undefined): LimitsPlan {
  if (limits !== undefined && (typeof limits !== 'object' || limits === null)) fail('limits', 'expected an object');
  const given = limits ?? {};
  checkKeys(given, [...integerLimits, ...sizeLimits, 'cpus', 'wallTime', 'kernel'], 'limits');
  const valid: ValidLimits = {};
  for (const key of sizeLimits) if (given[key] !== undefined) valid[key] = size(given[key], `limits.${key}`);
  for (const key of integerLimits) {
    const n = given[key];
    if (n === undefined) continue;
    if (countReason(n) !== null) fail(`limits.${key}`, `expected a positive integer, found ${JSON.stringify(n)}`);
    valid[key] = n;
  }
  if (given.cpus !== undefined) {
    if (typeof given.cpus !== 'number' || !(given.cpus > 0) || given.cpus > 1024)
      fail('limits.cpus', `expected a positive number of CPUs (0.5 is half of one), found ${JSON.stringify(given.cpus)}`);
    valid.cpus = given.cpus;
  }
  if (given.kernel !== undefined) {
    const kernel = given.kernel;
    if (typeof kernel !== 'object' || kernel === null || Array.isArray(kernel)) fail('limits.kernel', 'expected an object');
    checkKeys(kernel, Object.keys(kernelBudgetNames), 'limits.kernel');
    valid.kernel = {};
    for (const [key, n] of Object.entries(kernel) as [keyof KernelBudgets, unknown][]) {
      if (n === undefined) continue;
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > 2 ** 31 - 1)
        fail(`limits.kernel.${key}`, `expected an integer from 0 to 2147483647, found ${JSON.stringify(n)}`);
      valid.kernel[key] = n;
    }
  }
  return planLimits(valid, fail);
}

/** What credential injection adds to a sandbox: placeholders and trust variables, and the CA bundle. */
export interface SandboxTrust {
  env: Record<string, string>;
  /** Files holding a placeholder (path inside -> content). */
  files?: Record<string, string>;
  /** Host CAs plus the per-run CA, mounted as /etc/ssl/certs/ca-certificates.crt. */
  bundle: string;
}

/**
 * The egress plan (lib/net/egress-plan) is loaded with the first sandbox that has an allow list:
 * a plain `stockade run` never needs it. The proxy that serves it (lib/net/sandbox, with
 * node:net, node:http and the parsers) loads after the spawn (lib/process.ts), while the sandbox
 * starts: before it, it was ~12 ms of every networked start.
 */
function egressModule(): typeof import('./net/egress-plan') {
  return require('./net/egress-plan') as typeof import('./net/egress-plan');
}

/** The fetch preload's content, read once (it is part of the package). */
let preload: Buffer | undefined;

/**
 * The egress options, checked whole here, before anything exists: the allow list, the resolver
 * overrides and the proxy limits (an invalid one used to throw from the proxy's constructor
 * after the sandbox had started, leaving the payload running with no handle).
 */
function egressOf(network: unknown): EgressPlan | undefined {
  if (network === undefined || network === 'none' || network === 'host') return undefined;
  if (typeof network !== 'object' || network === null || Array.isArray(network)) {
    fail('network', `expected 'none', 'host' or { allow: [...] }, found ${JSON.stringify(network)}`);
  }
  checkKeys(network, ['allow', 'resolve', 'limits'], 'network');
  const { allow, resolve, limits } = network as EgressOptions;
  if (!Array.isArray(allow)) fail('network.allow', 'expected an array of host patterns');
  allow.forEach((entry, i) => {
    if (typeof entry !== 'string') fail(`network.allow[${i}]`, `expected a host pattern string, found ${JSON.stringify(entry)}`);
    const reason = allowEntryReason(entry);
    if (reason !== null) fail(`network.allow[${i}]`, `${reason}, found ${JSON.stringify(entry)}`);
  });
  if (resolve !== undefined) {
    try {
      // The resolver (and node:dns) is loaded only for a sandbox with resolve entries.
      new (require('./net/resolve') as typeof import('./net/resolve')).Resolver(resolve);
    } catch (err) {
      fail('network.resolve', (err as Error).message);
    }
  }
  if (limits !== undefined) {
    if (typeof limits !== 'object' || limits === null || Array.isArray(limits)) fail('network.limits', 'expected an object');
    checkKeys(limits, [...EGRESS_LIMIT_KEYS], 'network.limits');
    try {
      resolveLimits(limits);
    } catch (err) {
      fail('network.limits', (err as Error).message);
    }
  }
  try {
    return egressModule().planEgress(network as EgressOptions);
  } catch (err) {
    fail('network.allow', (err as Error).message);
  }
}

/**
 * Resolved plans of sandboxes that name no host path, for a second: spawning the same
 * definition again (a pool of workers, a server per session) then costs the JS thread a lookup
 * instead of the whole resolution (~0.4 ms). Only definitions whose plan depends on nothing a
 * sandbox could change: no grants, home, deny entries or host network (those host paths are
 * resolved again at every spawn, lib/hostpath.ts, since a previous sandbox with write access
 * may have replaced one by a symlink), no egress (the proxy's state is per sandbox), no
 * credentials, no environment taken from the host (`NAME: true`). The host variables the
 * resolution reads (TERM, STOCKADE_CGROUP_PARENT) are part of the key; what else it reads — the
 * system directories, the cgroup layout — is root's or the caller's, and a second's staleness at
 * most changes which error a spawn reports (the child checks every mount target again, without
 * following symlinks).
 */
const planCache = new Map<string, { at: number; resolved: ResolvedSandbox }>();
const PLAN_CACHE_MS = 1000;
const PLAN_CACHE_MAX = 64;

function planCacheKey(command: string, args: readonly string[], options: SandboxOptions): string | undefined {
  if (typeof options !== 'object' || options === null) return undefined;
  const f = options.filesystem;
  const listed = (v: unknown) => v !== undefined && (!Array.isArray(v) || v.length > 0);
  if (f !== undefined && (typeof f !== 'object' || f === null || listed(f.readOnly) || listed(f.readWrite) || listed(f.deny)))
    return undefined;
  if (f?.home !== undefined && f.home !== 'tmpfs') return undefined;
  if (options.network !== undefined && options.network !== 'none') return undefined;
  if (options.secrets !== undefined) return undefined;
  if (
    options.env !== undefined &&
    (typeof options.env !== 'object' || options.env === null || Object.values(options.env).some((v) => typeof v !== 'string'))
  )
    return undefined;
  const { logger: _logger, stdio: _stdio, ...rest } = options;
  try {
    // What the resolution reads from the host's environment is part of the key.
    return JSON.stringify([command, args, rest, process.env.STOCKADE_CGROUP_PARENT ?? null, process.env.TERM ?? null]);
  } catch {
    return undefined; // not plain data (a cycle, a BigInt): resolved, and refused or not, uncached
  }
}

/**
 * The sandbox's side of credentials, checked with the rest of the options: where a placeholder
 * file goes inside (it is synthesized over that path) and the extra upstream CAs, read now (an
 * unreadable one used to come back as an 'error' once the per-run CA existed).
 */
function secretsFilesOf(secrets: SandboxOptions['secrets']): void {
  if (secrets === undefined) return;
  if (!Array.isArray(secrets)) fail('secrets', 'expected an array of secrets');
  secrets.forEach((s, i) => {
    const file = (s as { file?: unknown } | null)?.file;
    if (file === undefined) return;
    const reason = sandboxFileReason(file);
    if (reason !== null) fail(`secrets[${i}].file`, `${reason} (a file inside the sandbox), found ${JSON.stringify(file)}`);
  });
}

function upstreamCaOf(upstreamCa: unknown): string[] | undefined {
  if (upstreamCa === undefined) return undefined;
  if (!Array.isArray(upstreamCa)) fail('upstreamCa', 'expected an array of PEM file paths');
  const pems: string[] = [];
  upstreamCa.forEach((p, i) => {
    const field = `upstreamCa[${i}]`;
    typedPath(p, field);
    try {
      pems.push(readUpstreamCa(p));
    } catch (err) {
      fail(field, (err as Error).message);
    }
  });
  return pems;
}

export function resolveSandbox(
  command: string,
  args: readonly string[],
  options: SandboxOptions,
  trust?: SandboxTrust,
  warmAhead = false,
): ResolvedSandbox {
  // A plan made for one spawn only (`warmAhead`: `stockade run`) is never asked for again.
  const key = trust === undefined && !warmAhead ? planCacheKey(command, args, options) : undefined;
  if (key === undefined) return resolveUncached(command, args, options, trust, warmAhead);
  // process.hrtime, not performance.now(): the first use of `performance` loads perf_hooks
  // (~10 modules), a cost of every launcher's start.
  const now = Number(process.hrtime.bigint() / 1_000_000n);
  const hit = planCache.get(key);
  if (hit !== undefined && now - hit.at < PLAN_CACHE_MS) return hit.resolved;
  const resolved = resolveUncached(command, args, options, undefined, warmAhead);
  resolved.reusable = true;
  if (planCache.size >= PLAN_CACHE_MAX) {
    for (const [k, v] of planCache) if (now - v.at >= PLAN_CACHE_MS) planCache.delete(k);
    if (planCache.size >= PLAN_CACHE_MAX) planCache.clear();
  }
  planCache.set(key, { at: now, resolved });
  return resolved;
}

/**
 * `warmAhead`: as soon as the parts of the plan a warm child's key is made of are known (the
 * network, the limits' budgets and cgroup, the TCP rules), the spawner thread is asked to make
 * one (native/spawner.cc prewarm), which it does while the rest is resolved here; the spawn takes
 * it (`stockade run`: ~2 ms of its start).
 */
function resolveUncached(
  command: string,
  args: readonly string[],
  options: SandboxOptions,
  trust?: SandboxTrust,
  warmAhead = false,
): ResolvedSandbox {
  if (typeof command !== 'string' || command === '' || command.includes('\0')) {
    fail('command', `expected a non-empty string, found ${JSON.stringify(command)}`);
  }
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string' || a.includes('\0'))) {
    fail('args', 'expected an array of strings without NUL bytes');
  }
  if (typeof options !== 'object' || options === null) fail('', 'expected an options object');
  checkKeys(options, [...knownOptions], '');

  const hostname = options.hostname ?? 'stockade';
  const hostnameProblem = hostnameReason(hostname);
  if (hostnameProblem !== null) fail('hostname', `${hostnameProblem}, found ${JSON.stringify(hostname)}`);
  const cwd = options.cwd ?? '/';
  const cwdProblem = absolutePathReason(cwd);
  if (cwdProblem !== null) fail('cwd', `${cwdProblem} (a path inside the sandbox), found ${JSON.stringify(cwd)}`);

  const seccomp = seccompProfileOf(options.seccomp, 'seccomp');
  const network = options.network ?? 'none';
  const egress = egressOf(network);
  const localPorts = localPortsOf(options.localPorts, 'localPorts');
  if (localPorts !== undefined && network === 'host') {
    fail('localPorts', "restricts the sandbox's own network namespace; network 'host' has none");
  }
  const tcp = tcpRules(
    network === 'host' ? 'host' : egress === undefined ? 'none' : 'proxy',
    egress?.listeners.filter((l) => l.type === 'tcp').map((l) => l.port) ?? [],
    localPorts,
  );
  const scope = options.grantScope;
  if (scope !== undefined && (typeof scope?.checkHost !== 'function' || typeof scope.checkSecret !== 'function')) {
    fail('grantScope', 'expected an object with checkHost() and checkSecret() (lib/net/decision.ts GrantScope)');
  }
  if (options.secrets !== undefined && egress === undefined) {
    fail('secrets', "credentials are injected by the egress proxy: give network an allow list (not 'none' or 'host')");
  }
  secretsFilesOf(options.secrets);
  const upstreamCaPem = upstreamCaOf(options.upstreamCa);

  const fsOptions = options.filesystem ?? {};
  if (typeof fsOptions !== 'object' || fsOptions === null) fail('filesystem', 'expected an object');
  checkKeys(fsOptions, ['readOnly', 'readWrite', 'tmpSize', 'home', 'allowSockets', 'deny', 'denyDefaults'], 'filesystem');
  const tmpSize = fsOptions.tmpSize === undefined ? 64 * 1024 ** 2 : size(fsOptions.tmpSize, 'filesystem.tmpSize');
  const trusted: TrustedFile[] = [
    ...((options as { [TRUSTED_FILES]?: TrustedFile[] })[TRUSTED_FILES] ?? []),
    ...(Array.isArray(options.upstreamCa) ? options.upstreamCa.map((p) => ({ path: String(p), what: 'the upstream CA' })) : []),
  ];
  const grants = resolveGrants(fsOptions, trusted);
  // As soon as the scans run: the limits for a warm child made meanwhile (a problem with them is
  // reported below, after the grants', as without one).
  let early: LimitsPlan | undefined;
  if (warmAhead) {
    try {
      early = buildLimits(options.limits);
      prewarm(network === 'host', early, tcp);
    } catch {
      // Thrown again where the limits are read below.
    }
  }
  // The grants' socket scans run on the addon's threads meanwhile; the plan is returned only once
  // every one of them is done (a sandbox is spawned only from a returned plan).
  return whileScanning(grants.checked, () => {
    const mounts = new Map<string, NativeMount>();
    const add = (m: NativeMount | undefined) => m && mounts.set(m.target, m);
    for (const dir of systemDirs) add(mirror(dir));
    for (const p of etcBinds) add(mirror(p));
    if (network === 'host' && fs.existsSync('/etc/resolv.conf')) {
      // The host's resolver configuration, wherever the host's /etc/resolv.conf points.
      add({ kind: MountKind.bind, source: hostPathOf('/etc/resolv.conf', grants.writable, 'network'), target: '/etc/resolv.conf' });
    }
    const visible = systemDirs.filter((d) => fs.existsSync(d));

    const fields = new Map(grants.list.map((g) => [g.inside, g.field]));
    for (const g of grants.list) {
      if (g.inside === SANDBOX_HOME) continue;
      add({ kind: MountKind.bind, source: g.host, target: g.host, readOnly: g.readOnly, idmap: g.idmap });
      visible.push(g.host);
    }

    if (trust !== undefined) {
      // The host's bundle plus the per-run CA, in place of the host's certificate directory.
      mounts.delete('/etc/ssl/certs');
      add(synthesized(CA_BUNDLE, trust.bundle));
      // Synthesized files win over a grant of the same path (a secret file over a host file).
      for (const [file, content] of Object.entries(trust.files ?? {})) {
        if (!path.isAbsolute(file) || path.normalize(file) !== file || file.includes('\0') || file === '/') {
          fail('secrets', `file must be a normalized absolute path inside the sandbox, found ${JSON.stringify(file)}`);
        }
        add(synthesized(file, content, 0o444));
        fields.set(file, 'secrets');
      }
    }
    add({ kind: MountKind.tmpfs, target: '/tmp', data: `mode=1777,size=${tmpSize}` });
    const home = grants.list.find((g) => g.inside === SANDBOX_HOME);
    if (home === undefined) {
      add({ kind: MountKind.tmpfs, target: SANDBOX_HOME, data: `mode=0700,uid=${SANDBOX_UID},gid=${SANDBOX_UID},size=${tmpSize}` });
    } else {
      add({ kind: MountKind.bind, source: home.host, target: SANDBOX_HOME, readOnly: false, idmap: home.idmap });
    }
    // Deny inside a grant (lib/deny.ts): masks over credentials under the granted directories.
    if (fsOptions.deny !== undefined && !Array.isArray(fsOptions.deny)) fail('filesystem.deny', 'expected an array of absolute paths');
    const explicit = grants.list.map((g) => g.host);
    for (const m of denyMounts(grants.list, explicit, fsOptions.deny ?? [], fsOptions.denyDefaults !== false)) add(m);
    for (const m of devMounts(tmpSize)) add(m);
    for (const m of procMounts()) add(m);
    if (egress !== undefined) {
      // fetch() in Node < 22.21 needs a preload to honour the proxy variables (lib/net/env.ts). A
      // copy, so that nothing inside (mountinfo included) names where stockade is installed.
      preload ??= fs.readFileSync(PRELOAD_PATH);
      add(synthesized(egressModule().PRELOAD_INSIDE, preload, 0o444));
    }
    for (const f of etcFiles(hostname, egress?.resolvConf ?? '')) {
      if (!mounts.has(f.target)) add(f);
    }

    // Parents before children: a bind below /tmp must land on the tmpfs, not under it.
    const ordered = placeTargets(
      [...mounts.values()].sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0)),
      fields,
    );

    const limits = early ?? buildLimits(options.limits);
    const wallTime = options.limits?.wallTime;
    const wallTimeProblem = wallTime === undefined ? null : wallTimeReason(wallTime);
    if (wallTimeProblem !== null) fail('limits.wallTime', `${wallTimeProblem}, found ${JSON.stringify(wallTime)}`);

    const envp = buildEnv(
      options.env,
      egress === undefined
        ? undefined
        : (nodeOptions) => ({ ...egressModule().egressEnv(egress, nodeOptions, trust && CA_BUNDLE), ...trust?.env }),
    );
    const plan: Omit<NativePlan, 'fds'> = {
      file: command,
      argv: [command, ...args],
      envp,
      cwd,
      hostname,
      baseDir: fs.existsSync('/tmp') ? '/tmp' : '/mnt',
      rootOptions: 'mode=0755,size=1m',
      mounts: ordered,
      shareNetwork: network === 'host',
      routeAllLocal: egress !== undefined,
      listeners: egress?.listeners,
      limits: limits.rlimits,
      budgets: limits.budgets,
      useInit: true,
      initPath: initPath(),
      seccomp: true,
      seccompProfile: SeccompProfileNumber[seccomp],
      landlock: landlockPlan(ordered, tcp),
    };
    let digest: string | undefined;
    const makeDigest = () =>
      sha256Hex(
        JSON.stringify({
          argv: plan.argv,
          env: envp.map((e) => e.slice(0, e.indexOf('='))),
          cwd,
          mounts: ordered.map((m) => [m.kind, m.source, m.target, m.readOnly, m.idmap]),
          limits: limits.rlimits,
          cgroup: limits.cgroup?.settings,
          kernel: options.limits?.kernel,
          network,
          ...(seccomp === 'default' ? {} : { seccomp }),
          ...(localPorts === undefined ? {} : { localPorts }),
        }),
      ).slice(0, 16);

    const resolved: ResolvedSandbox = {
      plan,
      get digest() {
        digest ??= makeDigest();
        return digest;
      },
      egress,
      wallTime,
      upstreamCaPem,
      visible,
      limits: { cgroup: limits.cgroup, report: limits.report },
      writable: grants.writable,
      seccomp,
      tcp,
      describe(step, index) {
        if ((step === 'mount' || step === 'idmap-mount') && ordered[index] !== undefined) {
          const m = ordered[index];
          return m.kind === MountKind.bind ? m.source : m.target;
        }
        if (step === 'rlimit') return rlimitNames[limits.rlimits[index]?.resource];
        if (step === 'kernel-budget') return limits.budgets[index]?.path;
        if (step === 'chdir') return cwd;
        if (step === 'exec') return command;
        if (step === 'landlock' && index >= 0) return plan.landlock?.rules[index]?.path;
        return undefined;
      },
    };
    grants.checked();
    return resolved;
  });
}

/**
 * Resolves the command as execve() inside the sandbox will see it: an absolute path is taken
 * as is; a bare name is searched in the sandbox's PATH, among host paths that are bound inside
 * (every bind is identity-mapped, so a host path is also the path inside). Only a check: execve
 * itself happens inside, in the sandbox's own view. A symlink inside a writable grant is not
 * followed here either (lib/hostpath.ts).
 */
export function resolveCommand(
  command: string,
  envp: string[],
  cwd: string,
  visible: string[],
  writable: readonly string[] = [],
): string | undefined {
  const usable = (candidate: string) => {
    try {
      const real = resolveHostPath(candidate, writable);
      fs.accessSync(real, fs.constants.X_OK);
      return fs.statSync(real).isFile() && visible.some((v) => within(real, v));
    } catch {
      return false;
    }
  };
  if (command.includes('/')) {
    const absolute = path.resolve(cwd, command);
    return usable(absolute) ? absolute : undefined;
  }
  const pathVar = envp.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
  for (const dir of pathVar.split(':')) {
    if (!path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, command);
    if (usable(candidate)) return candidate;
  }
  return undefined;
}
