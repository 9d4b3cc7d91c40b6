// Combining policies: a profile under the user's policy, and command-line flags over a policy
// file. One rule everywhere, so nobody has to remember per-field behaviour:
//   - lists append (duplicates dropped): `--ro /data` adds to filesystem.readOnly, `--tools x`
//     adds to mcp.tools, a profile's mounts add to the user's;
//   - scalars replace: `--memory 1g` replaces limits.memory, `--net none` replaces network;
//   - objects merge key by key (env: a flag's NAME wins over the file's NAME);
//   - secrets merge by name (the upper one replaces a secret of the same name);
//   - the command is whole: a command after `--` replaces the file's command and args.
// network is the one mixed field: a string ('none'/'host') is a scalar and replaces; an allow
// list merges with an allow list. `--allow-net` over a file saying 'none' (or nothing) yields an
// allow list of just the flags' hosts: the flag is the later, explicit intent.
import { resolve as resolvePath } from 'node:path';
import type { SecretOptions } from '../options';
import { parseSecretSpec } from '../secrets/spec';
import type { Policy, PolicyNetwork } from './types';
import { PolicyError, type PolicyIssue, type ValidationOptions, validatePolicy } from './validate';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function appendUnique<T>(lower: T[], upper: T[]): T[] {
  const seen = new Set(lower.map((x) => JSON.stringify(x)));
  const out = [...lower];
  for (const x of upper) {
    const key = JSON.stringify(x);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(x);
    }
  }
  return out;
}

function deepMerge(lower: unknown, upper: unknown): unknown {
  if (upper === undefined) return lower;
  if (Array.isArray(lower) && Array.isArray(upper)) return appendUnique(lower, upper);
  if (isPlainObject(lower) && isPlainObject(upper)) {
    const out: Record<string, unknown> = { ...lower };
    for (const [k, v] of Object.entries(upper)) out[k] = deepMerge(lower[k], v);
    return out;
  }
  return upper;
}

function mergeNetwork(lower: PolicyNetwork | undefined, upper: PolicyNetwork | undefined): PolicyNetwork | undefined {
  if (upper === undefined) return lower;
  if (typeof upper === 'string' || lower === undefined || typeof lower === 'string') return upper;
  return deepMerge(lower, upper) as PolicyNetwork;
}

function mergeSecrets(lower: SecretOptions[] | undefined, upper: SecretOptions[] | undefined): SecretOptions[] | undefined {
  if (!upper) return lower;
  if (!lower) return upper;
  const names = new Set(upper.map((s) => s.name));
  return [...lower.filter((s) => !names.has(s.name)), ...upper];
}

/** `upper` over `lower` by the rules above. Neither input is modified. */
export function mergePolicies(lower: Policy, upper: Policy): Policy {
  const out = deepMerge(lower, upper) as Policy;
  const network = mergeNetwork(lower.network, upper.network);
  if (network !== undefined) out.network = network;
  const secrets = mergeSecrets(lower.secrets, upper.secrets);
  if (secrets !== undefined) out.secrets = secrets;
  if (upper.command !== undefined) {
    out.command = upper.command;
    out.args = upper.args;
    if (out.args === undefined) delete out.args;
  }
  return out;
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
 * `--secret`: NAME@HOST[,HOST...] with an optional `:HEADER=FORMAT`, `?PARAM` or `:basic:USER`,
 * and `NAME=env:VAR@...` / `NAME=file:PATH@...` for the source. lib/secrets owns the syntax.
 */
export function parseSecretFlag(spec: string): SecretOptions {
  return parseSecretSpec(spec);
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
        p.secrets.push(parseSecretFlag(s));
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
