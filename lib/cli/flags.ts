// Parsing `stockade run [flags] -- CMD ARGS` into RunFlags (lib/policy/merge.ts), which
// flagsToPolicy/mergeFlags turn into a validated policy. Kept apart from `run` itself so the
// flag set and the policy fields cannot drift: every flag here has a policy field.
import { parseArgs } from 'node:util';
import type { RunFlags } from '../policy/merge';
import { UsageError } from './errors';

export { UsageError };

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
}

/** `argv` is what follows `run`. Throws UsageError for unknown flags or stray arguments. */
export function parseRunArgs(argv: string[]): ParsedRunArgs {
  const dd = argv.indexOf('--');
  const before = dd < 0 ? argv : argv.slice(0, dd);
  const command = dd < 0 ? [] : argv.slice(dd + 1);
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: before, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = values as Record<string, never>;
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
