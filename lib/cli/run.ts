// `stockade run [flags] -- CMD [ARGS...]`: the launcher that goes in front of an MCP server in a
// client config. Flags and --policy become one validated policy (lib/policy); the launcher's own
// stdin/stdout/stderr are handed to the payload as they are (no copying: the MCP stdio stream is
// untouched) unless the tool layer is on (--tools), signals are forwarded, and the exit code is
// the payload's (128 + N after death by signal N, as a shell reports it).
//
// Cold start is most of what the launcher adds to an MCP server's start, so what a plain `run`
// does not use is loaded only when asked for: pino with --audit/--verbose, the tool layer with
// --tools (and, in lib/process.ts, the egress proxy with an allow list). What it does use to
// resolve and spawn the sandbox (lib/policy/resolve, lib/process and the plan behind them) is
// loaded only once the grants' socket scans have started (prefetchGrantScans), so that the walk
// of a large grant runs on the addon's threads while those modules load.
import fs = require('node:fs');
import path = require('node:path');

import { constants as osConstants } from 'node:os';
import type { Logger, StreamEntry } from 'pino';
import { startupDone } from '../bundles';
import { SandboxOptionsError } from '../errors';
import { dropPrefetchedScans, prefetchSocketScans, resolveHostPath, within } from '../hostpath';
import { type LaunchRequest, takeLaunchRequest } from '../launch';
import { native } from '../native';
import type { SandboxOptions } from '../options';
import type { Policy, PolicyLaunch } from '../policy';
import { lintPolicy } from '../policy/lint';
import { loadPolicy } from '../policy/load';
import type { SandboxedProcess } from '../process';
import { SEEN_AT } from '../violations';
import { UsageError } from './errors';
import { mergeFlags, parseRunArgs } from './flags';
import type { PackagePinError as PackagePinErrorClass } from './package-pin';
import { DenialReport, verboseStream } from './report';
import type { LaunchTrust } from './trust';

function runUsage(): string {
  return `Usage: stockade run [options] -- COMMAND [ARGS...]
       stockade run --policy FILE [options] [-- COMMAND [ARGS...]]

Runs COMMAND in a kernel sandbox: its own user, mount, pid, network, ipc and uts namespaces,
a read-only root with only /usr (and /bin, /lib as the host has them) plus the paths you bind,
uid 65534, no capabilities, no_new_privs and a seccomp filter. stdin, stdout and stderr pass
straight through, so it works as the "command" of an MCP client config. The exit code is
COMMAND's (128+N if it died by signal N).

Filesystem:
  --ro PATH               bind a host path read-only at the same path (repeatable)
  --rw PATH               bind a host path read-write at the same path (repeatable)
  --deny PATH             keep a path under a grant invisible (repeatable; .env*, .ssh, .aws,
                          .npmrc, .git/config and more are hidden by default)
  --home tmpfs|DIR        HOME (/home/nobody): a private tmpfs (default) or a host dir, read-write
  --tmp-size SIZE         size of the private /tmp and home tmpfs (default 64m)
  --cwd DIR               working directory inside (default /)
  --allow-sockets         allow grants that hold unix sockets or FIFOs (refused by default)
Environment (nothing of the launcher's is inherited):
  --env NAME=VALUE        set a variable (repeatable)
  --env NAME              pass the launcher's NAME through
Network:
  --net none|host         none: loopback only (default); host: the host's network (logged)
  --allow-net HOST[:PORT] egress through the allowlisting proxy (repeatable; *.example.com)
  --resolve NAME:PORT:ADDR  point NAME at ADDR (curl's convention)
  --secret NAME@HOST[,HOST...][:HEADER=FORMAT]
                          the sandbox gets a placeholder in NAME; the proxy puts the launcher's
                          real NAME on requests to HOST (default: Authorization: Bearer {secret})
  --upstream-ca FILE      an extra CA the proxy trusts for upstream servers
  --local-port PORT       a TCP port the server serves on its own loopback (repeatable); with
                          Landlock ABI 4 every other port is refused (EACCES) with --allow-net,
                          and with --net none once one is given
Limits:
  --memory SIZE           memory of the whole sandbox (default 2g or half the RAM); see doctor
  --pids N                processes and threads of the whole sandbox (default 1024)
  --cpus N                CPU time of the whole sandbox, in CPUs (0.5: half of one)
  --cpu SECONDS           CPU seconds of the whole sandbox, then it is killed (per process
                          where no cgroup counts it; see doctor)
  --open-files N  --timeout SECONDS   fds per process; wall time
MCP:
  --tools a,b             only these tools: tools/list is filtered, other tools/call refused
Policy and output:
  --policy FILE           a policy file (JSON or YAML, see stockade.schema.json); flags win
  --profile node|python   what an interpreter needs (binary, prefix, caches)
  --seccomp default|strict  the system-call filter: a deny list (default) or an allow list
  --hostname NAME         hostname inside (default stockade)
  --audit FILE            append the audit log (pino JSON lines) to FILE
  --verbose               print every audit event to stderr, one readable line each
  --help                  show this help

Each denial (a blocked connection, a refused tool call, a limit, the timeout) is one line on
stderr, and a summary follows at exit when anything was denied.

Example (an MCP client config "command"; stockade-sandbox is the same program):
  stockade run --profile node -- npx -y @modelcontextprotocol/server-memory`;
}

/**
 * Opens the audit file as the launcher's own, never as a path the sandbox could steer: refused
 * inside a grant the sandbox can write (a payload could replace it by a symlink, a FIFO or a
 * hard link between runs), then opened without following a last-component symlink, without
 * blocking on a FIFO, append-only, close-on-exec, 0600 when created, and only if it is a
 * regular file. The sandbox's audit lines carry strings it controls; this keeps them in the file
 * the user named.
 */
function openAuditFile(file: string, options: SandboxOptions): number {
  const absolute = path.resolve(file);
  const fsOptions = options.filesystem ?? {};
  const typed = [...(fsOptions.readWrite ?? []), ...(fsOptions.home && fsOptions.home !== 'tmpfs' ? [fsOptions.home] : [])];
  const writable = typed.flatMap((p) => {
    try {
      return [fs.realpathSync(p)];
    } catch {
      return []; // the spawn reports a grant that does not exist
    }
  });
  let dir: string;
  try {
    dir = resolveHostPath(path.dirname(absolute), writable);
  } catch (err) {
    throw new UsageError(`--audit ${file}: ${(err as Error).message}`);
  }
  const inside = writable.find((root) => within(path.join(dir, path.basename(absolute)), root));
  if (inside !== undefined) {
    throw new UsageError(
      `--audit ${file}: lies inside the read-write grant '${inside}', where the sandbox could replace it; put the audit log outside every writable grant`,
    );
  }
  const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  let fd: number;
  try {
    // Node opens every file with O_CLOEXEC.
    fd = fs.openSync(path.join(dir, path.basename(absolute)), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ELOOP' ? 'is a symlink, which the launcher does not follow' : `cannot be opened (${code})`;
    throw new UsageError(`--audit ${file}: ${why}`);
  }
  if (!fs.fstatSync(fd).isFile()) {
    fs.closeSync(fd);
    throw new UsageError(`--audit ${file}: not a regular file`);
  }
  return fd;
}

const stderrLine = (line: string) => process.stderr.write(`${line}\n`);

function auditLogger(launch: PolicyLaunch): Logger | undefined {
  if (launch.audit === undefined && !launch.verbose) return undefined;
  const pino = require('pino') as typeof import('pino');
  const streams: StreamEntry[] = [];
  if (launch.audit !== undefined) {
    streams.push({ stream: pino.destination({ fd: openAuditFile(launch.audit, launch.options), sync: true }) });
  }
  if (launch.verbose) streams.push({ stream: verboseStream(stderrLine) });
  if (streams.length === 0) return undefined;
  return pino({ base: { component: 'stockade' } }, pino.multistream(streams));
}

/**
 * The grants of `policy` as given (lib/hostpath.ts resolves them as the plan does). Not with a
 * pinned package: its install runs in a sandbox of its own first, writing where the server's
 * grants are, so their walk must come after it (and is nothing beside the install's time).
 */
function prefetchGrantScans(policy: Policy): void {
  const fsPolicy = policy.filesystem ?? {};
  if (fsPolicy.allowSockets === true || policy.package !== undefined) return;
  const home = fsPolicy.home !== undefined && fsPolicy.home !== 'tmpfs' ? [fsPolicy.home] : [];
  try {
    prefetchSocketScans([...(fsPolicy.readWrite ?? []), ...(fsPolicy.readOnly ?? []), ...home]);
  } catch {
    // No addon: the spawn says so.
  }
}

/** Loaded with lib/cli/package-pin, for a policy that pins a package. */
let PackagePinError: typeof PackagePinErrorClass | undefined;

export async function main(argv: string[]): Promise<number> {
  // Started by native/launch.cc (lib/launch): first, so that nothing reads these variables.
  const started = takeLaunchRequest();
  const { flags, policyFile, help } = parseRunArgs(argv);
  if (help) {
    started?.abandon();
    process.stdout.write(`${runUsage()}\n`);
    return 0;
  }
  let launch: PolicyLaunch;
  let trust: LaunchTrust | undefined;
  let logger: Logger | undefined;
  try {
    // No ajv backstop: the launcher starts once per MCP server, and its compile costs ~60 ms
    // (lib/policy/validate.ts); `stockade check` keeps it.
    const validation = { backstop: false };
    const filePolicy = policyFile ? loadPolicy(policyFile, validation) : {};
    const merged = mergeFlags(filePolicy, flags, undefined, validation);
    prefetchGrantScans(merged);
    for (const w of lintPolicy(merged)) process.stderr.write(`stockade run: warning: ${w.message}\n`);
    const { policyToOptions } = require('../policy/resolve') as typeof import('../policy/resolve');
    launch = policyToOptions(merged);
    logger = auditLogger(launch);
    const say = (line: string) => process.stderr.write(`${line}\n`);
    // Approvals and tool pins (and node:crypto with them) exist only for a policy file.
    if (policyFile) trust = (require('./trust') as typeof import('./trust')).launchTrust(policyFile, filePolicy, launch, logger, say);
    if (merged.package) {
      // The registry stays reachable in the run phase only if the user's policy itself names it
      // (not the profile, which adds it for the install).
      const net = merged.network;
      started?.recording?.poison('a pinned package');
      const pin = require('./package-pin') as typeof import('./package-pin');
      PackagePinError = pin.PackagePinError;
      launch = await pin.installPinned(launch, merged.package, (host) => typeof net === 'object' && net.allow.includes(host));
    }
  } catch (err) {
    dropPrefetchedScans();
    started?.abandon();
    if (err instanceof SandboxOptionsError) throw new UsageError(err.message);
    const code = (err as { code?: string }).code;
    if (
      (PackagePinError !== undefined && err instanceof PackagePinError) ||
      code === 'ERR_STOCKADE_POLICY' ||
      code === 'ERR_STOCKADE_NOT_APPROVED' ||
      code === 'ERR_STOCKADE_APPROVAL_FILE'
    ) {
      process.stderr.write(code === 'ERR_STOCKADE_POLICY' ? `stockade run: ${(err as Error).message}\n` : `${(err as Error).message}\n`);
      return 2;
    }
    throw err;
  }
  return launch_(launch, logger, trust, policyFile, started);
}

function launch_(
  launch: PolicyLaunch,
  logger: Logger | undefined,
  trust: LaunchTrust | undefined,
  policyFile: string | undefined,
  started: LaunchRequest | undefined,
): Promise<number> {
  // The proxies hold sockets and relay pipes for the sandbox: use what the hard limit grants
  // (lib/net/budget.ts lets them hold half of it).
  try {
    native().raiseOpenFileLimit();
  } catch {
    // No addon: spawnSandboxed reports that below.
  }
  // Pinned tools need the tool layer; with no --tools it allows every tool and only the pins decide.
  const filtered = launch.tools !== undefined || trust !== undefined || launch.toolGrants !== undefined;
  // The sandbox's current grant (lib/mcp/tool-grants.ts): per-tool grants narrow egress and
  // injection to the calls in flight; without them every decision is still joined to those calls.
  let grants: import('../mcp/tool-grants').ToolGrants | undefined;
  if (filtered) {
    const { ToolGrants } = require('../mcp/tool-grants') as typeof import('../mcp/tool-grants');
    grants = new ToolGrants(launch.toolGrants);
  }
  const report = new DenialReport(stderrLine, !launch.verbose);
  // Signal handlers before the spawn: the payload may run before 'spawn' is emitted (a signal
  // then is held by SandboxedProcess until the sandbox exists), and a signal that came in before
  // the handler existed would kill the launcher by default (and the
  // sandbox with it) instead of being forwarded. Handlers run from the event loop, after.
  let child: SandboxedProcess | undefined;
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
  const handlers = signals.map((s) => [s, () => child?.kill(s)] as const);
  const unhook = () => {
    for (const [s, h] of handlers) process.off(s, h);
  };
  for (const [s, h] of handlers) process.on(s, h);
  // The tool layer's stdio on the native relay's threads (lib/mcp/native-relay.ts) where the
  // client gave pipes or sockets, as MCP clients do: the server's stdin and stdout are then pipes
  // of the launcher's own, not Node streams. STOCKADE_TOOL_RELAY=js keeps the streams. Not with
  // per-tool grants: a call's end must cut the connections only its grant allowed before its
  // answer reaches the client (else the next call reuses a keep-alive tunnel that is then cut),
  // and the threads pass an answer on before the event loop hears of it.
  // What a launch record could not replay: anything after the spawn that stdio passed straight
  // through does not do (the tool layer's process hop, the egress proxy), and the audit log.
  if (filtered) started?.recording?.poison('the tool layer');
  if (typeof launch.options.network === 'object') started?.recording?.poison('an egress allow list');
  if (logger !== undefined) started?.recording?.poison('an audit log');
  let relayPipes: { stdin: [number, number]; stdout: [number, number] } | undefined;
  if (filtered && launch.toolGrants === undefined && process.env.STOCKADE_TOOL_RELAY !== 'js') {
    const { relayableFd } = require('../mcp/native-relay') as typeof import('../mcp/native-relay');
    if (relayableFd(0) && relayableFd(1)) relayPipes = { stdin: native().pipe(), stdout: native().pipe() };
  }
  // The sandbox's ends of those pipes, once it has its own copies ('spawn') or never will.
  let childEndsClosed = false;
  const closeRelayChildEnds = () => {
    // Once: 'error' may follow 'spawn', and the numbers may be another file's by then.
    if (!relayPipes || childEndsClosed) return;
    childEndsClosed = true;
    native().closeFd(relayPipes.stdin[0]);
    native().closeFd(relayPipes.stdout[1]);
  };
  try {
    const { spawnSandboxed, WARM_ONCE, SPAWN_VIA } = require('../process') as typeof import('../process');
    const { TRUSTED_FILES } = require('../plan') as typeof import('../plan');
    child = spawnSandboxed(launch.command, launch.args, {
      ...launch.options,
      // The policy is read again at the next start: no grant may let the sandbox rewrite it.
      [TRUSTED_FILES]: policyFile === undefined ? [] : [{ path: policyFile, what: 'the policy file' }],
      ...(started ? { [SPAWN_VIA]: started.spawn } : {}),
      stdio: relayPipes ? [relayPipes.stdin[0], relayPipes.stdout[1], 2] : filtered ? ['pipe', 'pipe', 2] : [0, 1, 2],
      logger,
      ...(grants ? { grantScope: grants } : {}),
      // One sandbox per launcher: its namespaces are made while its plan is resolved, and
      // nothing is made ahead for a next one (none at all when launch.cc has made it).
      ...(started?.attaching ? { warm: false } : { [WARM_ONCE]: true }),
    });
  } catch (err) {
    unhook();
    started?.abandon();
    closeRelayChildEnds();
    if (relayPipes) for (const fd of [relayPipes.stdin[1], relayPipes.stdout[0]]) native().closeFd(fd);
    if (err instanceof SandboxOptionsError) throw new UsageError(err.message);
    throw err;
  } finally {
    dropPrefetchedScans();
  }
  const sandbox = child;
  sandbox.once('spawn', startupDone);
  let filter: import('../mcp/filter').ToolFilter | undefined;
  if (relayPipes) {
    sandbox.once('spawn', closeRelayChildEnds);
    sandbox.once('error', closeRelayChildEnds);
  }
  sandbox.on('egress', (record) => report.egress(record));
  sandbox.on('audit', (event) => report.audit(event));
  // A refused syscall, an OOM kill or a pids refusal is named by the report, in one line:
  // `stockade: killed: unshare(CLONE_NEWUSER) is not allowed in the sandbox`.
  const filterOptions = { tools: launch.tools ?? ['*'], logger, ...(trust ? { gate: trust.gate } : {}) };
  if (relayPipes) {
    const { wireNativeToolFilter } = require('../mcp/native-relay') as typeof import('../mcp/native-relay');
    try {
      filter = wireNativeToolFilter(
        { clientIn: 0, clientOut: 1, serverIn: relayPipes.stdin[1], serverOut: relayPipes.stdout[0] },
        filterOptions,
        5, // ms that records of finished calls may wait, to be read together
      );
    } catch (err) {
      // No thread could be made, or no fd (EMFILE): a server nobody can talk to is not left running.
      sandbox.kill('SIGKILL');
      unhook();
      throw err;
    }
  } else if (filtered && sandbox.stdin && sandbox.stdout) {
    // The filter's own module, not lib/mcp's index: that loads tool pins and node:crypto with
    // them (~6 ms of CPU as the server starts), which a policy file's pins load through ./trust.
    const { wireToolFilter } = require('../mcp/filter') as typeof import('../mcp/filter');
    filter = wireToolFilter(
      { fromClient: process.stdin, toClient: process.stdout, toServer: sandbox.stdin, fromServer: sandbox.stdout },
      filterOptions,
    );
  }
  if (filter) {
    const tools = filter;
    tools.on('tool-call', (e) => report.tool(e));
    // The client went away (closed our stdout: EPIPE): the filter ended the server's stdin, as a
    // client shutting a stdio server down does; a server still running 2 s later gets SIGTERM.
    // The launcher exits with the server's status either way.
    const stop = () => setTimeout(() => sandbox.exitCode === null && sandbox.kill('SIGTERM'), 2000).unref();
    tools.on('client-closed', stop);
    tools.on('error', (err: Error & { code?: string }) => {
      // The native relay passed on a line the tool layer would have changed: a bug, and the
      // line is out. The session ends now rather than carry on past a decision not made.
      if (err.code === 'ERR_STOCKADE_TOOL_RELAY') {
        logger?.error({ event: 'mcp.relay_disagreement', err: err.message }, 'tool layer ended the session');
        stderrLine(`stockade: ${err.message}; the session is ended`);
        sandbox.kill('SIGKILL');
        return;
      }
      logger?.warn({ event: 'mcp.stream_error', err: err.message }, 'tool layer stream error');
      stop();
    });
    grants?.attach(() => tools.activeCalls());
    // A call ended: connections only its grant allowed are cut (lib/mcp/tool-grants.ts).
    tools.on('tool-call', () => grants?.recheck());
    // Correlation: what the server did on the network, which secrets were injected and which
    // violations it committed while tool calls were in flight. One line per event, naming the
    // calls (request id and tool): those the decision was made for (the proxy and the
    // interceptor record them when they decide: an egress record is written when its connection
    // ends, maybe after the call), else the calls in flight now.
    // A violation names the calls in flight when it happened (SEEN_AT, lib/violations.ts): a
    // seccomp one reaches this loop after the server may have answered the call that caused it.
    type Joined = { calls?: { id: string | number | null; tool: string }[]; [SEEN_AT]?: number };
    const during = (event: string, key: string, record: Joined) => {
      const calls = record.calls ?? tools.activeCalls(record[SEEN_AT]).map((c) => ({ id: c.id, tool: c.tool }));
      if (calls.length > 0) logger?.[event === 'mcp.tool_violation' ? 'warn' : 'info']({ event, calls, [key]: record });
    };
    sandbox.on('egress', (record: Joined) => during('mcp.tool_egress', 'egress', record));
    sandbox.on('injected', (record: Joined) => during('mcp.tool_injection', 'injection', record));
    sandbox.on(
      'audit',
      (record: Joined & { event?: string }) => record.event === 'violation' && during('mcp.tool_violation', 'violation', record),
    );
  }
  return new Promise((resolve) => {
    let failed = false;
    sandbox.on('error', (err) => {
      failed = true;
      unhook();
      stderrLine(`stockade: ${err.message}`);
      filter?.close();
      resolve(127);
    });
    sandbox.on('close', (code, signal: NodeJS.Signals | null) => {
      // A spawn that failed closes too (as child_process does): its 'error' said it all.
      if (failed) return;
      unhook();
      report.exit(signal);
      const summary = report.summary();
      if (summary) stderrLine(summary);
      const status = code ?? 128 + (signal ? (osConstants.signals as Record<string, number>)[signal] : 0);
      // Everything the server wrote reaches the client before the launcher exits (the native
      // relay's threads may still be carrying it when the sandbox has closed).
      if (!filter) return resolve(status);
      const tools = filter;
      tools.serverDone().then(() => {
        tools.close();
        resolve(status);
      });
    });
  });
}
