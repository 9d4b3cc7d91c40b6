// The `stockade run` flag model: parsing `run [flags] -- CMD ARGS` into RunFlags, and RunFlags
// into a validated policy fragment merged over the policy file by lib/policy's rules. Kept in
// one file so the flag set and the policy fields cannot drift: every flag here has a policy
// field (FLAG_FOR_PATH), and errors name the flag, not the JSON path.
import { resolve as resolvePath } from 'node:path';
// The policy's modules themselves, not lib/policy's index: `stockade run` parses its flags
// before it loads what resolves a plan (lib/cli/run.ts).
import { mergePolicies } from '../policy/merge';
import type { Policy, PolicyNetwork } from '../policy/types';
import { PolicyError, type PolicyIssue, type ValidationOptions, validatePolicy } from '../policy/validate';
import { parseCommandArgs } from './args';
import { UsageError } from './errors';

const OPTIONS = {
  ro: { type: 'string', multiple: true },
  rw: { type: 'string', multiple: true },
  deny: { type: 'string', multiple: true },
  env: { type: 'string', multiple: true },
  cwd: { type: 'string' },
  net: { type: 'string' },
  'allow-net': { type: 'string', multiple: true },
  resolve: { type: 'string', multiple: true },
  secret: { type: 'string', multiple: true },
  'upstream-ca': { type: 'string', multiple: true },
  tools: { type: 'string', multiple: true },
  policy: { type: 'string' },
  audit: { type: 'string' },
  verbose: { type: 'boolean' },
  hostname: { type: 'string' },
  memory: { type: 'string' },
  pids: { type: 'string' },
  cpu: { type: 'string' },
  cpus: { type: 'string' },
  'open-files': { type: 'string' },
  timeout: { type: 'string' },
  'tmp-size': { type: 'string' },
  home: { type: 'string' },
  'allow-sockets': { type: 'boolean' },
  profile: { type: 'string' },
  seccomp: { type: 'string' },
  'local-port': { type: 'string', multiple: true },
} as const;

export interface ParsedRunArgs {
  flags: RunFlags;
  /** --policy FILE, to be loaded with loadPolicy() and merged with mergeFlags(). */
  policyFile?: string;
  help?: boolean;
}

/** `argv` is what follows `run`. Throws UsageError for unknown flags or stray arguments. */
export function parseRunArgs(argv: string[]): ParsedRunArgs {
  const { values: v, rest: command } = parseCommandArgs(argv, { command: 'run', options: OPTIONS, rest: true });
  if (v.help) return { flags: {}, help: true };
  const flags: RunFlags = {
    ro: v.ro,
    rw: v.rw,
    deny: v.deny,
    env: v.env,
    cwd: v.cwd,
    net: v.net,
    allowNet: v['allow-net'],
    resolve: v.resolve,
    secret: v.secret,
    upstreamCa: v['upstream-ca'],
    tools: v.tools,
    audit: v.audit,
    verbose: v.verbose,
    hostname: v.hostname,
    memory: v.memory,
    pids: v.pids,
    cpu: v.cpu,
    cpus: v.cpus,
    openFiles: v['open-files'],
    timeout: v.timeout,
    tmpSize: v['tmp-size'],
    home: v.home,
    allowSockets: v['allow-sockets'],
    profile: v.profile,
    seccomp: v.seccomp,
    localPorts: v['local-port'],
    command: command.length ? command : undefined,
  };
  for (const k of Object.keys(flags) as (keyof RunFlags)[]) if (flags[k] === undefined) delete flags[k];
  if (!command.length && !v.policy) throw new UsageError('nothing to run: give a command after `--` or a --policy with a command');
  return { flags, ...(v.policy ? { policyFile: v.policy } : {}) };
}

/**
 * `stockade run` flags, as collected by the argument parser: raw strings, repeatable flags as
 * arrays. Conversion and validation happen in flagsToPolicy so errors name the flag.
 */
export interface RunFlags {
  ro?: string[];
  rw?: string[];
  deny?: string[];
  env?: string[];
  cwd?: string;
  net?: string;
  allowNet?: string[];
  resolve?: string[];
  secret?: string[];
  upstreamCa?: string[];
  /** Each occurrence is a comma-separated list: `--tools a,b --tools c`. */
  tools?: string[];
  audit?: string;
  verbose?: boolean;
  hostname?: string;
  memory?: string;
  pids?: string;
  cpu?: string;
  cpus?: string;
  openFiles?: string;
  timeout?: string;
  tmpSize?: string;
  home?: string;
  allowSockets?: boolean;
  profile?: string;
  seccomp?: string;
  localPorts?: string[];
  /** The command and its arguments (everything after `--`). */
  command?: string[];
}

/** Policy field -> the flag that sets it, to word errors in the user's terms. */
const FLAG_FOR_PATH: [string, string][] = [
  ['/filesystem/readOnly', '--ro'],
  ['/filesystem/readWrite', '--rw'],
  ['/filesystem/home', '--home'],
  ['/filesystem/deny', '--deny'],
  ['/filesystem/tmpSize', '--tmp-size'],
  ['/filesystem/allowSockets', '--allow-sockets'],
  ['/network/allow', '--allow-net'],
  ['/network/resolve', '--resolve'],
  ['/network', '--net'],
  ['/env', '--env'],
  ['/cwd', '--cwd'],
  ['/secrets', '--secret'],
  ['/upstreamCa', '--upstream-ca'],
  ['/mcp/tools', '--tools'],
  ['/audit', '--audit'],
  ['/hostname', '--hostname'],
  ['/limits/memory', '--memory'],
  ['/limits/pids', '--pids'],
  ['/limits/cpus', '--cpus'],
  ['/limits/cpu', '--cpu'],
  ['/limits/openFiles', '--open-files'],
  ['/limits/timeout', '--timeout'],
  ['/profile', '--profile'],
  ['/seccomp', '--seccomp'],
  ['/localPorts', '--local-port'],
  ['/command', '--'],
];

function toFlagIssue(issue: PolicyIssue): PolicyIssue {
  const hit = FLAG_FOR_PATH.find(([p]) => issue.path === p || issue.path.startsWith(`${p}/`));
  if (!hit) return issue;
  // Replace the JSON path (and an item index) with the flag: "--ro: expected an absolute path".
  const message = issue.message.replace(issue.path, hit[1]).replace(/`--[a-z-]+`/, `\`${hit[1]}\``);
  return { path: hit[1], message };
}

function numberOrString(v: string): number | string {
  return /^\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v;
}

/**
 * Converts flags to a policy fragment and validates it; errors name the flag. Relative paths in
 * flags are resolved against `cwd` (default process.cwd()), as a shell user expects; policy
 * files, which have no obvious base, must use absolute paths.
 */
export function flagsToPolicy(flags: RunFlags, cwd: string = process.cwd(), validation: ValidationOptions = {}): Policy {
  const abs = (p: string) => (p.startsWith('~') ? p : resolvePath(cwd, p));
  const p: Policy = {};
  const issues: PolicyIssue[] = [];
  if (flags.command?.length) p.command = [...flags.command];
  if (flags.profile !== undefined) p.profile = flags.profile as Policy['profile'];
  if (flags.seccomp !== undefined) p.seccomp = flags.seccomp as Policy['seccomp'];
  if (flags.localPorts?.length) p.localPorts = flags.localPorts.map((v) => numberOrString(v) as number);
  if (
    flags.ro?.length ||
    flags.rw?.length ||
    flags.deny?.length ||
    flags.home !== undefined ||
    flags.tmpSize !== undefined ||
    flags.allowSockets
  ) {
    p.filesystem = {};
    if (flags.ro?.length) p.filesystem.readOnly = flags.ro.map(abs);
    if (flags.rw?.length) p.filesystem.readWrite = flags.rw.map(abs);
    if (flags.deny?.length) p.filesystem.deny = flags.deny.map(abs);
    if (flags.home !== undefined) p.filesystem.home = flags.home === 'tmpfs' ? 'tmpfs' : abs(flags.home);
    if (flags.tmpSize !== undefined) p.filesystem.tmpSize = numberOrString(flags.tmpSize);
    if (flags.allowSockets) p.filesystem.allowSockets = true;
  }
  if (flags.net !== undefined && flags.allowNet?.length) {
    issues.push({ path: '--net', message: `--net ${flags.net} and --allow-net contradict each other; use one` });
  } else if (flags.net !== undefined) {
    p.network = flags.net as PolicyNetwork;
  } else if (flags.allowNet?.length || flags.resolve?.length) {
    p.network = { allow: flags.allowNet ?? [] };
    if (flags.resolve?.length) p.network.resolve = flags.resolve;
  }
  if (flags.env?.length) {
    p.env = {};
    for (const e of flags.env) {
      const eq = e.indexOf('=');
      if (eq < 0) p.env[e] = true;
      else p.env[e.slice(0, eq)] = e.slice(eq + 1);
    }
  }
  if (flags.cwd !== undefined) p.cwd = flags.cwd;
  if (flags.secret?.length) {
    p.secrets = [];
    for (const s of flags.secret) {
      try {
        // NAME@HOST[,HOST...][:HEADER=FORMAT | ?PARAM | :basic:USER]; lib/secrets owns the syntax.
        // lib/secrets is loaded with the first --secret: a run without one does not pay for it.
        const { parseSecretSpec } = require('../secrets/spec') as typeof import('../secrets/spec');
        p.secrets.push(parseSecretSpec(s));
      } catch (err) {
        issues.push({ path: '--secret', message: (err as Error).message });
      }
    }
  }
  if (flags.upstreamCa?.length) p.upstreamCa = flags.upstreamCa.map(abs);
  if (flags.tools?.length) {
    p.mcp = {
      tools: flags.tools
        .flatMap((t) => t.split(','))
        .map((t) => t.trim())
        .filter((t) => t !== ''),
    };
  }
  if (flags.audit !== undefined) p.audit = abs(flags.audit);
  if (flags.verbose) p.verbose = true;
  if (flags.hostname !== undefined) p.hostname = flags.hostname;
  const limits: NonNullable<Policy['limits']> = {};
  if (flags.memory !== undefined) limits.memory = numberOrString(flags.memory);
  if (flags.pids !== undefined) limits.pids = numberOrString(flags.pids) as number;
  if (flags.cpu !== undefined) limits.cpu = numberOrString(flags.cpu) as number;
  if (flags.cpus !== undefined) limits.cpus = numberOrString(flags.cpus) as number;
  if (flags.openFiles !== undefined) limits.openFiles = numberOrString(flags.openFiles) as number;
  if (flags.timeout !== undefined) limits.timeout = numberOrString(flags.timeout) as number;
  if (Object.keys(limits).length > 0) p.limits = limits;
  if (issues.length === 0) issues.push(...validatePolicy(p, validation).map(toFlagIssue));
  if (issues.length > 0) throw new PolicyError(issues, 'command line');
  return p;
}

/**
 * The policy `stockade run` executes: the file's policy with the flags over it (see the rules at
 * the top). Throws PolicyError naming the flag or the JSON path.
 */
export function mergeFlags(policy: Policy, flags: RunFlags, cwd?: string, validation: ValidationOptions = {}): Policy {
  const merged = mergePolicies(policy, flagsToPolicy(flags, cwd, validation));
  const issues = validatePolicy(merged, validation);
  if (issues.length > 0) throw new PolicyError(issues, 'policy with command-line flags');
  return merged;
}
