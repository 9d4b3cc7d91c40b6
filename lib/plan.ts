// Options -> NativePlan: every decision about the sandbox's contents is made here, in
// TypeScript, and checked before anything is spawned. The addon gets a flat list of mounts,
// strings and numbers and executes it.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SandboxOptionsError } from './errors';
import { type LimitsPlan, planLimits, RLIMIT, type ValidLimits } from './limits';
import { initPath, MountKind, type NativeMount, type NativePlan } from './native';
import { PRELOAD_PATH } from './net/env';
import { type EgressPlan, egressEnv, PRELOAD_INSIDE, planEgress } from './net/sandbox';
import type { EgressOptions, SandboxLimits, SandboxOptions } from './options';

/** Host directories bound read-only (or re-created as the same symlink) by default. */
const systemDirs = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** Host files and directories of /etc the sandbox needs; everything else of /etc is synthesized. */
const etcBinds = ['/etc/ld.so.cache', '/etc/alternatives', '/etc/ssl/certs', '/etc/ssl/openssl.cnf', '/etc/localtime'];
const devices = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];
/** /proc entries that reveal or reconfigure the host kernel: /dev/null over files, empty dirs, read-only. */
const procMaskedFiles = [
  'kcore',
  'keys',
  'key-users',
  'timer_list',
  'sched_debug',
  'sysrq-trigger',
  'kallsyms',
  'kmsg',
  'latency_stats',
  'kpagecount',
  'kpageflags',
  'kpagecgroup',
  'config.gz',
  'vmallocinfo',
  'slabinfo',
  'iomem',
];
const procMaskedDirs = ['acpi', 'scsi', 'asound', 'firmware', 'driver'];
const procReadOnly = ['sys', 'bus', 'irq', 'fs'];

export const SANDBOX_UID = 65534;
export const SANDBOX_HOME = '/home/nobody';
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
  /** A short digest of everything that defines the sandbox, for audit events. */
  digest: string;
  /** Human-readable description of list entries, for error paths. */
  describe(step: string, index: number): string | undefined;
  wallTime?: number;
  /** Host paths bound into the sandbox (identity mapped), for command resolution. */
  visible: string[];
  /** The listeners and ports of the egress proxy, when the network has an allow list. */
  egress?: EgressPlan;
  /** The cgroups to make per spawn, and what holds each limit (lib/limits). */
  limits: Pick<LimitsPlan, 'cgroup' | 'report'>;
}

const knownOptions = new Set(['cwd', 'env', 'stdio', 'filesystem', 'network', 'limits', 'hostname', 'logger', 'secrets', 'upstreamCa']);

function fail(field: string, message: string): never {
  throw new SandboxOptionsError(field, message);
}

function checkKeys(value: object, known: readonly string[], field: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) fail(`${field}${field ? '.' : ''}${key}`, `unknown option (known: ${known.join(', ')})`);
  }
}

function hostPath(p: unknown, field: string): string {
  if (typeof p !== 'string') fail(field, `expected an absolute path string, found ${typeof p}`);
  if (p.includes('\0')) fail(field, 'path contains a NUL byte');
  if (!path.isAbsolute(p)) fail(field, `expected an absolute path, found '${p}'`);
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    fail(field, `'${p}' cannot be used on the host (${code})`);
  }
  if (real === '/') fail(field, "the host's / cannot be bound; name the directories the sandbox needs");
  if (real === '/proc' || real.startsWith('/proc/') || real === '/dev' || real.startsWith('/dev/')) {
    fail(field, `'${p}' is managed by the sandbox itself and cannot be bound`);
  }
  return real;
}

function size(value: unknown, field: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  if (typeof value === 'string') {
    const m = /^(\d+)([kmg]?)$/i.exec(value.trim());
    if (m) return Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  }
  fail(field, `expected a positive size in bytes or a string like '64m', found ${JSON.stringify(value)}`);
}

function bindOf(source: string, readOnly: boolean): NativeMount {
  const stat = fs.statSync(source);
  return { kind: MountKind.bind, source: `/oldroot${source}`, target: `/newroot${source}`, readOnly, sourceIsDir: stat.isDirectory() };
}

/** A host path as the host has it: a symlink is re-created, anything else bound read-only. */
function mirror(p: string): NativeMount | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(p);
  } catch {
    return undefined;
  }
  if (stat.isSymbolicLink()) return { kind: MountKind.symlink, source: fs.readlinkSync(p), target: `/newroot${p}` };
  return bindOf(p, true);
}

function etcFiles(hostname: string, resolvConf: string): NativeMount[] {
  const file = (name: string, data: string): NativeMount => ({ kind: MountKind.file, target: `/newroot/etc/${name}`, data, mode: 0o644 });
  return [
    file(
      'passwd',
      `root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:${SANDBOX_UID}:${SANDBOX_UID}:nobody:${SANDBOX_HOME}:/usr/sbin/nologin\n`,
    ),
    file('group', `root:x:0:\nnogroup:x:${SANDBOX_UID}:\n`),
    file('hosts', `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${hostname}\n`),
    file('hostname', `${hostname}\n`),
    file(
      'nsswitch.conf',
      'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n',
    ),
    file('resolv.conf', resolvConf),
  ];
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
  ]);
  if (env !== undefined) {
    if (typeof env !== 'object' || env === null || Array.isArray(env)) fail('env', 'expected an object of NAME: value | true');
    for (const [name, value] of Object.entries(env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) fail(`env.${name}`, 'not a valid environment variable name');
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
  checkKeys(given, [...integerLimits, ...sizeLimits, 'cpus', 'wallTime'], 'limits');
  const valid: ValidLimits = {};
  for (const key of sizeLimits) if (given[key] !== undefined) valid[key] = size(given[key], `limits.${key}`);
  for (const key of integerLimits) {
    const n = given[key];
    if (n === undefined) continue;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0)
      fail(`limits.${key}`, `expected a positive integer, found ${JSON.stringify(n)}`);
    valid[key] = n;
  }
  if (given.cpus !== undefined) {
    if (typeof given.cpus !== 'number' || !(given.cpus > 0) || given.cpus > 1024)
      fail('limits.cpus', `expected a positive number of CPUs (0.5 is half of one), found ${JSON.stringify(given.cpus)}`);
    valid.cpus = given.cpus;
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

function egressOf(network: unknown): EgressPlan | undefined {
  if (network === undefined || network === 'none' || network === 'host') return undefined;
  if (typeof network !== 'object' || network === null || Array.isArray(network)) {
    fail('network', `expected 'none', 'host' or { allow: [...] }, found ${JSON.stringify(network)}`);
  }
  checkKeys(network, ['allow', 'resolve', 'limits'], 'network');
  const { allow } = network as EgressOptions;
  if (!Array.isArray(allow) || allow.some((a) => typeof a !== 'string')) fail('network.allow', 'expected an array of host patterns');
  try {
    return planEgress(network as EgressOptions);
  } catch (err) {
    fail('network.allow', (err as Error).message);
  }
}

export function resolveSandbox(command: string, args: readonly string[], options: SandboxOptions, trust?: SandboxTrust): ResolvedSandbox {
  if (typeof command !== 'string' || command === '' || command.includes('\0')) {
    fail('command', `expected a non-empty string, found ${JSON.stringify(command)}`);
  }
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string' || a.includes('\0'))) {
    fail('args', 'expected an array of strings without NUL bytes');
  }
  if (typeof options !== 'object' || options === null) fail('', 'expected an options object');
  checkKeys(options, [...knownOptions], '');

  const hostname = options.hostname ?? 'stockade';
  if (typeof hostname !== 'string' || !/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(hostname)) {
    fail('hostname', `expected a hostname label (letters, digits, '-'), found ${JSON.stringify(hostname)}`);
  }
  const cwd = options.cwd ?? '/';
  if (typeof cwd !== 'string' || !path.isAbsolute(cwd) || cwd.includes('\0')) {
    fail('cwd', `expected an absolute path inside the sandbox, found ${JSON.stringify(cwd)}`);
  }

  const network = options.network ?? 'none';
  const egress = egressOf(network);
  if (options.secrets !== undefined && egress === undefined) {
    fail('secrets', "credentials are injected by the egress proxy: give network an allow list (not 'none' or 'host')");
  }

  const fsOptions = options.filesystem ?? {};
  if (typeof fsOptions !== 'object' || fsOptions === null) fail('filesystem', 'expected an object');
  checkKeys(fsOptions, ['readOnly', 'readWrite', 'tmpSize', 'home'], 'filesystem');
  const tmpSize = fsOptions.tmpSize === undefined ? 64 * 1024 ** 2 : size(fsOptions.tmpSize, 'filesystem.tmpSize');

  const mounts = new Map<string, NativeMount>();
  const add = (m: NativeMount | undefined) => m && mounts.set(m.target, m);
  for (const dir of systemDirs) add(mirror(dir));
  for (const p of etcBinds) add(mirror(p));
  if (trust !== undefined) {
    // The host's bundle plus the per-run CA, in place of the host's certificate directory.
    mounts.delete('/newroot/etc/ssl/certs');
    add({ kind: MountKind.file, target: '/newroot/etc/ssl/certs/ca-certificates.crt', data: trust.bundle, mode: 0o644 });
    for (const [file, content] of Object.entries(trust.files ?? {})) {
      if (!path.isAbsolute(file) || path.normalize(file) !== file || file.includes('\0')) {
        fail('secrets', `file must be a normalized absolute path inside the sandbox, found ${JSON.stringify(file)}`);
      }
      add({ kind: MountKind.file, target: `/newroot${file}`, data: content, mode: 0o444 });
    }
  }
  if (network === 'host' && fs.existsSync('/etc/resolv.conf')) add(bindOf(fs.realpathSync('/etc/resolv.conf'), true));
  const visible = systemDirs.filter((d) => fs.existsSync(d));

  for (const key of ['readOnly', 'readWrite'] as const) {
    const list = fsOptions[key] ?? [];
    if (!Array.isArray(list)) fail(`filesystem.${key}`, 'expected an array of absolute paths');
    list.forEach((p, i) => {
      const real = hostPath(p, `filesystem.${key}[${i}]`);
      add(bindOf(real, key === 'readOnly'));
      visible.push(real);
    });
  }

  add({ kind: MountKind.tmpfs, target: '/newroot/tmp', data: `mode=1777,size=${tmpSize}` });
  const home = fsOptions.home ?? 'tmpfs';
  if (home === 'tmpfs') {
    add({
      kind: MountKind.tmpfs,
      target: `/newroot${SANDBOX_HOME}`,
      data: `mode=0700,uid=${SANDBOX_UID},gid=${SANDBOX_UID},size=${tmpSize}`,
    });
  } else {
    const real = hostPath(home, 'filesystem.home');
    add({ kind: MountKind.bind, source: `/oldroot${real}`, target: `/newroot${SANDBOX_HOME}`, readOnly: false, sourceIsDir: true });
  }
  add({ kind: MountKind.tmpfs, target: '/newroot/dev', data: 'mode=0755,size=64k' });
  for (const d of devices) {
    add({
      kind: MountKind.bind,
      source: `/oldroot/dev/${d}`,
      target: `/newroot/dev/${d}`,
      readOnly: false,
      sourceIsDir: false,
      devices: true,
    });
  }
  add({ kind: MountKind.devpts, target: '/newroot/dev/pts' });
  add({ kind: MountKind.symlink, source: 'pts/ptmx', target: '/newroot/dev/ptmx' });
  add({ kind: MountKind.tmpfs, target: '/newroot/dev/shm', data: `mode=1777,size=${tmpSize}` });
  for (const [name, target] of [
    ['fd', '/proc/self/fd'],
    ['stdin', '/proc/self/fd/0'],
    ['stdout', '/proc/self/fd/1'],
    ['stderr', '/proc/self/fd/2'],
  ]) {
    add({ kind: MountKind.symlink, source: target, target: `/newroot/dev/${name}` });
  }
  add({ kind: MountKind.proc, target: '/newroot/proc' });
  for (const f of procMaskedFiles) add({ kind: MountKind.maskFile, target: `/newroot/proc/${f}` });
  for (const d of procMaskedDirs) add({ kind: MountKind.maskDir, target: `/newroot/proc/${d}` });
  for (const d of procReadOnly) add({ kind: MountKind.readOnly, target: `/newroot/proc/${d}` });
  if (egress !== undefined) {
    // fetch() in Node < 22.21 needs a preload to honour the proxy variables (lib/net/env.ts).
    const preload = fs.realpathSync(PRELOAD_PATH);
    add({ kind: MountKind.bind, source: `/oldroot${preload}`, target: `/newroot${PRELOAD_INSIDE}`, readOnly: true, sourceIsDir: false });
  }
  for (const f of etcFiles(hostname, egress?.resolvConf ?? '')) {
    if (!mounts.has(f.target)) add(f);
  }

  // Parents before children: a bind below /tmp must land on the tmpfs, not under it.
  const ordered = [...mounts.values()].sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));

  const limits = buildLimits(options.limits);
  const wallTime = options.limits?.wallTime;
  if (wallTime !== undefined && (typeof wallTime !== 'number' || !(wallTime > 0))) {
    fail('limits.wallTime', `expected a positive number of milliseconds, found ${JSON.stringify(wallTime)}`);
  }

  const envp = buildEnv(
    options.env,
    egress === undefined ? undefined : (nodeOptions) => ({ ...egressEnv(egress, nodeOptions), ...trust?.env }),
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
  };
  const digest = createHash('sha256')
    .update(
      JSON.stringify({
        argv: plan.argv,
        env: envp.map((e) => e.slice(0, e.indexOf('='))),
        cwd,
        mounts: ordered.map((m) => [m.kind, m.source, m.target, m.readOnly]),
        limits: limits.rlimits,
        cgroup: limits.cgroup?.settings,
        network,
      }),
    )
    .digest('hex')
    .slice(0, 16);

  return {
    plan,
    digest,
    egress,
    wallTime,
    visible,
    limits: { cgroup: limits.cgroup, report: limits.report },
    describe(step, index) {
      if (step === 'mount' && ordered[index] !== undefined) {
        const m = ordered[index];
        const inside = m.target.slice('/newroot'.length);
        return m.source?.startsWith('/oldroot') ? m.source.slice('/oldroot'.length) : inside;
      }
      if (step === 'rlimit') return rlimitNames[limits.rlimits[index]?.resource];
      if (step === 'kernel-budget') return limits.budgets[index]?.path;
      if (step === 'chdir') return cwd;
      if (step === 'exec') return command;
      return undefined;
    },
  };
}

/**
 * Resolves the command as execve() inside the sandbox will see it: an absolute path is taken
 * as is; a bare name is searched in the sandbox's PATH, among host paths that are bound inside
 * (every bind is identity-mapped, so a host path is also the path inside).
 */
export function resolveCommand(command: string, envp: string[], cwd: string, visible: string[]): string | undefined {
  const within = (real: string) => visible.some((v) => real === v || real.startsWith(`${v}/`));
  const usable = (candidate: string) => {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return fs.statSync(candidate).isFile() && within(fs.realpathSync(candidate));
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
