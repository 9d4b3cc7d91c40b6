// `stockade run [flags] -- CMD [ARGS...]`: the launcher that goes in front of an MCP server in a
// client config. The launcher's own stdin/stdout/stderr are handed to the payload as they are
// (no copying, so the MCP stdio stream is untouched), signals are forwarded, and the exit code
// is the payload's (128 + N after death by signal N, as a shell reports it).
import { constants as osConstants } from 'node:os';
import pino, { type Logger } from 'pino';
import { type SandboxError, SandboxOptionsError } from '../errors';
import type { SandboxOptions } from '../options';
import { spawnSandboxed } from '../process';
import { byteSize, type FlagSpec, formatFlags, parseFlags, positiveInt, UsageError } from './args';

export interface RunFlags {
  options: SandboxOptions & {
    filesystem: { readOnly: string[]; readWrite: string[] };
    env: Record<string, string | true>;
    limits: NonNullable<SandboxOptions['limits']>;
  };
  audit?: string;
  verbose: boolean;
  help: boolean;
}

export const runFlags: FlagSpec<RunFlags>[] = [
  {
    name: '--ro',
    value: 'PATH',
    help: 'bind a host path read-only at the same path (repeatable)',
    apply: (f, v) => f.options.filesystem.readOnly.push(v),
  },
  {
    name: '--rw',
    value: 'PATH',
    help: 'bind a host path read-write at the same path (repeatable)',
    apply: (f, v) => f.options.filesystem.readWrite.push(v),
  },
  {
    name: '--env',
    value: 'NAME[=VALUE]',
    help: "set a variable, or pass the launcher's NAME through (repeatable); nothing else is inherited",
    apply: (f, v) => {
      const eq = v.indexOf('=');
      if (eq === -1) f.options.env[v] = true;
      else f.options.env[v.slice(0, eq)] = v.slice(eq + 1);
    },
  },
  { name: '--cwd', value: 'DIR', help: 'working directory inside the sandbox (default /)', apply: (f, v) => (f.options.cwd = v) },
  {
    name: '--net',
    value: 'none|host',
    help: "network: 'none' (loopback only, the default) or 'host' (the host's network: an escape hatch, logged)",
    apply: (f, v) => {
      if (v !== 'none' && v !== 'host') throw new UsageError(`--net expects 'none' or 'host', got '${v}'`);
      f.options.network = v;
    },
  },
  { name: '--hostname', value: 'NAME', help: 'hostname inside (default stockade)', apply: (f, v) => (f.options.hostname = v) },
  {
    name: '--memory',
    value: 'SIZE',
    help: 'address-space limit (RLIMIT_AS), e.g. 4g',
    apply: (f, v) => (f.options.limits.memory = byteSize('--memory', v)),
  },
  { name: '--pids', value: 'N', help: 'process limit (RLIMIT_NPROC)', apply: (f, v) => (f.options.limits.pids = positiveInt('--pids', v)) },
  {
    name: '--cpu',
    value: 'SECONDS',
    help: 'CPU time limit (RLIMIT_CPU)',
    apply: (f, v) => (f.options.limits.cpu = positiveInt('--cpu', v)),
  },
  {
    name: '--open-files',
    value: 'N',
    help: 'open file limit (RLIMIT_NOFILE)',
    apply: (f, v) => (f.options.limits.openFiles = positiveInt('--open-files', v)),
  },
  {
    name: '--timeout',
    value: 'SECONDS',
    help: 'wall-clock limit: SIGKILL after this long',
    apply: (f, v) => (f.options.limits.wallTime = positiveInt('--timeout', v) * 1000),
  },
  {
    name: '--tmp-size',
    value: 'SIZE',
    help: 'size of the private /tmp (default 64m)',
    apply: (f, v) => (f.options.filesystem = { ...f.options.filesystem, tmpSize: byteSize('--tmp-size', v) }),
  },
  { name: '--audit', value: 'FILE', help: 'append the audit log (pino JSON lines) to FILE', apply: (f, v) => (f.audit = v) },
  { name: '--verbose', help: 'print audit events to stderr', apply: (f) => (f.verbose = true) },
  { name: '--help', help: 'show this help', apply: (f) => (f.help = true) },
];

export function runUsage(): string {
  return `Usage: stockade run [options] -- COMMAND [ARGS...]

Runs COMMAND in a kernel sandbox: its own user, mount, pid, network, ipc and uts namespaces,
a read-only root with only /usr (and /bin, /lib as the host has them) plus the paths you bind,
uid 65534, no capabilities, no_new_privs and a seccomp filter. stdin, stdout and stderr pass
straight through, so it works as the "command" of an MCP client config. The exit code is
COMMAND's (128+N if it died by signal N).

Options:
${formatFlags(runFlags)}

Example:
  stockade run --ro "$PWD" --cwd "$PWD" -- node server.js`;
}

export function emptyRunFlags(): RunFlags {
  return { options: { filesystem: { readOnly: [], readWrite: [] }, env: {}, limits: {} }, verbose: false, help: false };
}

function auditLogger(flags: RunFlags): Logger | undefined {
  const streams: pino.StreamEntry[] = [];
  if (flags.audit !== undefined) streams.push({ stream: pino.destination({ dest: flags.audit, append: true, sync: true }) });
  if (flags.verbose) streams.push({ stream: pino.destination({ dest: 2, sync: true }) });
  if (streams.length === 0) return undefined;
  return pino({ base: { component: 'stockade' } }, pino.multistream(streams));
}

export async function main(argv: string[]): Promise<number> {
  const flags = emptyRunFlags();
  const parsed = parseFlags(argv, runFlags, flags);
  if (flags.help) {
    process.stdout.write(`${runUsage()}\n`);
    return 0;
  }
  if (parsed.command === undefined) throw new UsageError('missing the command to run (stockade run [options] -- COMMAND [ARGS...])');
  return launch(parsed.command, parsed.args, flags);
}

export function launch(command: string, args: string[], flags: RunFlags): Promise<number> {
  const logger = auditLogger(flags);
  let child: ReturnType<typeof spawnSandboxed>;
  try {
    child = spawnSandboxed(command, args, { ...flags.options, stdio: [0, 1, 2], logger });
  } catch (err) {
    if (err instanceof SandboxOptionsError) throw new UsageError(err.message);
    throw err;
  }
  return new Promise((resolve) => {
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
    const handlers = signals.map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    child.on('error', (err: SandboxError) => {
      process.stderr.write(`stockade: ${err.message}\n`);
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h);
      resolve(code ?? 128 + (signal ? (osConstants.signals as Record<string, number>)[signal] : 0));
    });
  });
}
