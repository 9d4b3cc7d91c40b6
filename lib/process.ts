// SandboxedProcess: a ChildProcess-shaped handle on one sandbox. Same events ('spawn', 'exit',
// 'close', 'error'), same fields (pid, stdin/stdout/stderr, stdio, exitCode, signalCode,
// killed), same kill() semantics, plus `exited`, a promise for those who await, 'audit'
// events mirroring the pino audit log, and 'violation' events naming each refused syscall.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import * as util from 'node:util';
import type { Logger } from 'pino';
import { fromNative, SandboxError, SandboxOptionsError } from './errors';
import { type LimitViolation, LimitWatch, SandboxCgroup } from './limits';
import { limitFile } from './limits/cgroup';
import { type NativeHandle, type NativePlan, type NativeSpawnResult, type NativeViolation, native } from './native';
import type { EgressAttachment } from './net/sandbox';
import type { EgressOptions, SandboxOptions, StdioSlot } from './options';
import { type ResolvedSandbox, resolveCommand, resolveSandbox } from './plan';
import type { SecretInterceptor } from './secrets';
import { describeViolation } from './violations';

export interface SandboxExit {
  exitCode: number | null;
  signalCode: NodeJS.Signals | null;
}

type Slots = [StdioSlot, StdioSlot, StdioSlot];

function normalizeStdio(stdio: SandboxOptions['stdio']): Slots {
  const slots: StdioSlot[] = stdio === undefined ? ['pipe', 'pipe', 'pipe'] : Array.isArray(stdio) ? stdio : [stdio, stdio, stdio];
  if (slots.length !== 3) throw new SandboxOptionsError('stdio', `expected 3 slots, found ${slots.length}`);
  slots.forEach((s, i) => {
    const ok = s === 'pipe' || s === 'inherit' || s === 'ignore' || (typeof s === 'number' && Number.isInteger(s) && s >= 0);
    if (!ok) throw new SandboxOptionsError(`stdio[${i}]`, `expected 'pipe', 'inherit', 'ignore' or an fd, found ${JSON.stringify(s)}`);
  });
  return slots as Slots;
}

/** The sandbox's ends of its stdio pipes, once it has them (or will never run). */
function closeChildEnds(slots: Slots, childFds: number[]): void {
  for (const [i, slot] of slots.entries()) if (slot === 'pipe') fs.closeSync(childFds[i]);
}

function signalNumber(signal: NodeJS.Signals | number): number {
  if (typeof signal === 'number') {
    if (!Number.isInteger(signal) || signal < 0) throw new TypeError(`Unknown signal: ${signal}`);
    return signal;
  }
  const n = (osConstants.signals as Record<string, number>)[signal];
  if (n === undefined) throw new TypeError(`Unknown signal: ${signal}`);
  return n;
}

export class SandboxedProcess extends EventEmitter {
  pid: number | undefined;
  stdin: Writable | null = null;
  stdout: Readable | null = null;
  stderr: Readable | null = null;
  readonly stdio: [Writable | null, Readable | null, Readable | null];
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  killed = false;
  readonly spawnfile: string;
  readonly spawnargs: string[];
  /** Digest of the sandbox definition, as logged in audit events. */
  readonly policyDigest: string;

  private handle: NativeHandle | undefined;
  private readonly options: SandboxOptions;
  private egress: EgressAttachment | undefined;
  private interceptor: SecretInterceptor | undefined;
  /** A signal sent before the sandbox existed (credentials still being prepared). */
  private pendingSignal: number | undefined;
  /** unref() before the sandbox existed: applied to its handles once they do. */
  private unrefed = false;
  private tornDown = false;
  private spawnError: SandboxError | undefined;
  private exitPromise: Promise<SandboxExit> | undefined;
  private openStreams = 0;
  private exited_ = false;
  private closed = false;
  private wallTimer: NodeJS.Timeout | undefined;
  private cgroup: SandboxCgroup | undefined;
  private oomWatch: { close(): void } | undefined;
  private limitWatch: LimitWatch | undefined;
  private resolved: ResolvedSandbox | undefined;
  private readonly logger: Logger | undefined;

  /** @internal use spawnSandboxed() */
  constructor(command: string, args: string[], options: SandboxOptions) {
    super();
    this.spawnfile = command;
    this.spawnargs = [command, ...args];
    const slots = normalizeStdio(options.stdio);
    const resolved = resolveSandbox(command, args, options);
    // A secret missing on the host is an error now, naming the variable, before anything starts.
    // lib/secrets (an X.509 library) is loaded only when secrets are used: ~90 ms of startup.
    const lib = options.secrets === undefined ? undefined : (require('./secrets') as typeof import('./secrets'));
    // A secret file must not be anything the sandbox can see (lib/secrets/sources.ts).
    const home = options.filesystem?.home;
    const grants = [...resolved.visible, ...(home !== undefined && home !== 'tmpfs' ? [home] : [])];
    const secrets = lib?.resolveSecrets(options.secrets ?? [], process.env, { grants });
    this.policyDigest = resolved.digest;
    this.logger = options.logger;
    this.options = options;

    const parentEnds: (number | null)[] = [null, null, null];
    const childFds: number[] = [];
    slots.forEach((slot, i) => {
      if (slot === 'pipe') {
        const [r, w] = native().pipe();
        parentEnds[i] = i === 0 ? w : r;
        childFds.push(i === 0 ? r : w);
      } else if (slot === 'inherit') {
        childFds.push(i);
      } else if (slot === 'ignore') {
        childFds.push(-1);
      } else {
        childFds.push(slot);
      }
    });
    this.stdin = parentEnds[0] === null ? null : new net.Socket({ fd: parentEnds[0], readable: false, writable: true });
    this.stdout = parentEnds[1] === null ? null : new net.Socket({ fd: parentEnds[1], readable: true, writable: false });
    this.stderr = parentEnds[2] === null ? null : new net.Socket({ fd: parentEnds[2], readable: true, writable: false });
    this.stdio = [this.stdin, this.stdout, this.stderr];
    for (const stream of [this.stdout, this.stderr]) {
      if (stream === null) continue;
      this.openStreams++;
      stream.once('close', () => {
        this.openStreams--;
        this.maybeClose();
      });
    }
    // Writing to a sandbox that has exited must not crash the parent with EPIPE.
    this.stdin?.on('error', () => {});

    if (secrets === undefined || lib === undefined) {
      this.start(resolved, childFds, slots);
      return;
    }
    // Credentials: the per-run CA is made with WebCrypto, which is asynchronous, so the sandbox
    // starts once it exists ('spawn' says when; pid is undefined until then).
    lib.RunCa.create()
      .then((ca) => {
        // The upstream CAs as read when the options were checked (lib/plan.ts), not read again.
        this.interceptor = new lib.SecretInterceptor({ secrets, ca, upstreamCaPem: resolved.upstreamCaPem, logger: options.logger });
        this.interceptor.on('violation', (v) => this.audit('warn', { event: 'violation', ...v }));
        const trust = lib.sandboxTrust(ca);
        const placeholders = this.interceptor.placeholders;
        const files = Object.fromEntries(
          (options.secrets ?? []).filter((s) => s.file).map((s) => [s.file as string, `${placeholders[s.name]}\n`]),
        );
        const withTrust = resolveSandbox(command, args, options, { env: { ...placeholders, ...trust.env }, bundle: trust.bundle, files });
        this.start(withTrust, childFds, slots);
      })
      .catch((err: Error) => {
        closeChildEnds(slots, childFds);
        void this.interceptor?.close();
        this.failAsync(new SandboxError({ errno: osConstants.errno.EINVAL, syscall: 'spawn', step: 'secrets', hint: err.message }));
      });
  }

  private start(resolved: ResolvedSandbox, childFds: number[], slots: Slots): void {
    const file = resolveCommand(this.spawnfile, resolved.plan.envp, resolved.plan.cwd, resolved.visible, resolved.writable);
    if (file === undefined) {
      closeChildEnds(slots, childFds);
      const err = new SandboxError({
        errno: osConstants.errno.ENOENT,
        syscall: `spawn ${this.spawnfile}`,
        step: 'resolve',
        path: this.spawnfile,
        hint: 'not found in the sandbox PATH among the paths bound inside',
      });
      this.failAsync(err);
      return;
    }
    const plan = { ...resolved.plan, file, fds: childFds };
    this.resolved = resolved;
    try {
      this.joinCgroup(plan);
    } catch (err) {
      closeChildEnds(slots, childFds);
      this.failAsync(err as SandboxError);
      return;
    }
    // The spawn runs on the addon's spawner thread; the event loop goes on meanwhile (the
    // sandbox's pid, like its 'spawn' event, comes once the payload has exec'd).
    native().spawn(
      plan,
      (code, signal) => this.onExit(code, signal),
      (result) => this.spawned(result, resolved),
      (v) => this.onViolation(v),
    );
    closeChildEnds(slots, childFds); // the addon holds duplicates until the child has its own
  }

  private spawned(result: NativeSpawnResult, resolved: ResolvedSandbox): void {
    // The spawner thread is done with the cgroup fds (clone3's directory, v1 tasks files).
    this.cgroup?.closeFds();
    if ('error' in result) {
      this.oomWatch?.close();
      void this.cgroup?.remove();
      const cgroupFiles = this.cgroup?.dirs.filter((d) => d.hierarchy.version === 1).map((d) => `${d.dir}/tasks`) ?? [];
      this.failAsync(fromNative(result.error, (step, index) => (step === 'cgroup' ? cgroupFiles[index] : resolved.describe(step, index))));
      return;
    }
    this.pid = result.pid;
    this.handle = result.handle;
    const layers = layersInForce(resolved, result.landlockAbi, result.seccompNotify);
    if (resolved.egress !== undefined) {
      // The proxy is loaded with the first sandbox that has an allow list (cold start of `run`).
      const { EgressAttachment } = require('./net/sandbox') as typeof import('./net/sandbox');
      this.egress = new EgressAttachment(
        this.options.network as EgressOptions,
        resolved.egress,
        result.listenerFds,
        String(result.pid),
        this.logger,
        {
          interceptor: this.interceptor,
          guard: this.interceptor?.plaintextGuard(),
        },
      );
      this.egress.proxy.on('egress', (record) => this.emit('egress', record));
    }
    if (this.pendingSignal !== undefined) this.handle.kill(this.pendingSignal);
    if (this.cgroup?.events().oomKills) this.handle.kill(osConstants.signals.SIGKILL); // an OOM before the handle existed
    this.watchLimits(resolved);
    if (this.unrefed) this.unref();
    if (resolved.wallTime !== undefined) {
      this.wallTimer = setTimeout(() => {
        this.audit('warn', { event: 'wall-time', pid: this.pid, limitMs: resolved.wallTime });
        this.kill('SIGKILL');
      }, resolved.wallTime);
      this.wallTimer.unref();
    }
    const shareNetwork = resolved.plan.shareNetwork;
    this.audit('info', {
      event: 'sandbox-start',
      pid: this.pid,
      command: this.spawnargs,
      policy: this.policyDigest,
      network: shareNetwork ? 'host' : resolved.egress ? 'proxy' : 'none',
      layers,
      limits: resolved.limits.report,
    });
    if (shareNetwork)
      this.audit('warn', {
        event: 'network-host',
        pid: this.pid,
        policy: this.policyDigest,
        message: 'sandbox shares the host network (explicitly requested)',
      });
    this.emit('spawn');
  }

  private onViolation(v: NativeViolation): void {
    const violation = describeViolation(v);
    this.audit('warn', { event: 'violation', pid: this.pid, policy: this.policyDigest, ...violation });
    this.emit('violation', violation);
  }

  /**
   * The sandbox's cgroups (lib/limits), made before the spawn and handed to the addon as fds. On
   * cgroup v1 the OOM watch is registered now, before the payload can allocate: v1's OOM killer
   * is off for the sandbox (it would kill one process), so the launcher ends the whole sandbox,
   * as v2's memory.oom.group does.
   */
  private joinCgroup(plan: NativePlan): void {
    const spec = this.resolved?.limits.cgroup;
    if (spec === undefined) return;
    this.cgroup = new SandboxCgroup(spec.where, spec.settings);
    Object.assign(plan, this.cgroup.planFds());
    const memory = this.cgroup.v1Memory();
    if (memory === undefined) return;
    const control = fs.openSync(`${memory}/cgroup.event_control`, fs.constants.O_WRONLY);
    const oom = fs.openSync(`${memory}/memory.oom_control`, fs.constants.O_RDONLY);
    try {
      this.oomWatch = new (native().OomWatch)(control, oom, () => {
        this.oomWatch?.close();
        this.cgroup?.noteOom();
        this.handle?.kill(osConstants.signals.SIGKILL);
      });
    } catch (err) {
      void this.cgroup.remove();
      throw new SandboxError({
        errno: (err as { errno?: number }).errno ?? osConstants.errno.EINVAL,
        syscall: 'write',
        step: 'cgroup',
        path: `${memory}/cgroup.event_control`,
      });
    } finally {
      fs.closeSync(control);
      fs.closeSync(oom);
    }
  }

  /** A limit that struck: a 'violation' event and its audit record (and the launcher's line, lib/cli/report.ts). */
  private limitViolation(v: LimitViolation): void {
    this.audit('warn', { event: 'violation', pid: this.pid, policy: this.policyDigest, ...v });
    this.emit('violation', v);
  }

  /**
   * While the sandbox runs (lib/limits/watch.ts): the first fork refused at pids.max, reported
   * as it happens; CPU seconds of the whole sandbox, which end it at limits.cpu.
   */
  private watchLimits(resolved: ResolvedSandbox): void {
    const cgroup = this.cgroup;
    if (cgroup === undefined) return;
    const settings = resolved.limits.cgroup?.settings ?? {};
    const cpuSource = cgroup.cpuAccounting();
    this.limitWatch = new LimitWatch(cgroup, {
      onPidsRefused: (count) => this.pidsViolation(count),
      cpu:
        settings.cpuSeconds === undefined || cpuSource === undefined
          ? undefined
          : {
              seconds: settings.cpuSeconds,
              cpus: settings.cpus,
              onLimit: (used) => {
                this.limitViolation({
                  kind: 'cpu-limit',
                  limit: settings.cpuSeconds as number,
                  by: `cgroup v${cpuSource.version} ${limitFile('cpuacct', cpuSource.version)}`,
                  action: 'killed',
                  used: Math.round(used * 1000) / 1000,
                  message: `the sandbox reached its CPU time limit of ${settings.cpuSeconds} s (--cpu, limits.cpu; all its processes together, cgroup v${cpuSource.version} ${limitFile('cpuacct', cpuSource.version)}) and was killed`,
                });
                this.handle?.kill(osConstants.signals.SIGKILL);
              },
            },
    });
  }

  private pidsViolation(count: number): void {
    const pids = this.resolved?.limits.report.pids;
    this.limitViolation({
      kind: 'pids-limit',
      limit: pids?.value ?? 0,
      by: pids?.by ?? '',
      action: 'refused',
      count,
      message: `the sandbox reached its limit of ${pids?.value} processes and threads (--pids, limits.pids; ${pids?.by}): fork and clone fail with EAGAIN`,
    });
  }

  /** OOM kills, and refused forks the watch did not see yet, as violations: read once the sandbox has ended. */
  private reportCgroupEvents(): void {
    if (this.cgroup === undefined) return;
    const { oomKills, pidsRefused } = this.cgroup.events();
    const memory = this.resolved?.limits.report.memory;
    if (oomKills > 0) {
      this.limitViolation({
        kind: 'oom',
        limit: memory?.value ?? 0,
        by: memory?.by ?? '',
        action: 'killed',
        count: oomKills,
        message: `the sandbox ran out of memory (limit ${memory?.value} bytes, ${memory?.by}) and was killed`,
      });
    }
    if (pidsRefused > 0 && !this.limitWatch?.pidsRefusalReported) this.pidsViolation(pidsRefused);
  }

  private failAsync(err: SandboxError): void {
    this.spawnError = err;
    this.audit('error', {
      event: 'sandbox-error',
      command: this.spawnargs,
      code: err.code,
      step: err.step,
      path: err.path,
      message: err.message,
    });
    for (const s of this.stdio) s?.destroy();
    process.nextTick(() => this.emit('error', err));
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.wallTimer) clearTimeout(this.wallTimer);
    this.oomWatch?.close();
    this.limitWatch?.close();
    this.reportCgroupEvents();
    // Every process of the sandbox is gone (its PID 1 is reaped last): the count is final.
    const cpuSeconds = this.cgroup?.cpuSeconds();
    // The proxy's state dies with the sandbox: listeners, client and upstream sockets, the CA.
    // 'close' waits for it, so that every egress record of the sandbox has been emitted by then
    // (allowed connections are recorded when they close).
    Promise.all([this.egress?.close(), this.interceptor?.close(), this.cgroup?.remove()])
      .catch(() => {})
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => {
        this.tornDown = true;
        this.maybeClose();
      });
    this.exitCode = code;
    this.signalCode = signal;
    this.exited_ = true;
    this.handle = undefined;
    this.audit('info', {
      event: 'sandbox-exit',
      pid: this.pid,
      policy: this.policyDigest,
      exitCode: code,
      signal,
      ...(cpuSeconds === undefined ? {} : { cpuSeconds: Math.round(cpuSeconds * 1000) / 1000 }),
    });
    this.emit('exit', code, signal);
    this.stdin?.destroy();
    // As child_process does: output nobody reads is drained, so that 'close' can follow.
    for (const stream of [this.stdout, this.stderr]) {
      if (stream !== null && stream.readableFlowing !== true && stream.listenerCount('data') === 0) stream.resume();
    }
    this.maybeClose();
  }

  private maybeClose(): void {
    if (!this.exited_ || this.openStreams > 0 || !this.tornDown || this.closed) return;
    this.closed = true;
    this.emit('close', this.exitCode, this.signalCode);
  }

  private audit(level: 'info' | 'warn' | 'error', event: Record<string, unknown>): void {
    this.logger?.[level](event);
    this.emit('audit', event);
  }

  /** Sends a signal to the sandbox's PID 1, which forwards it to the payload (SIGKILL ends all). */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    const n = signalNumber(signal);
    if (this.handle === undefined) {
      if (this.pid !== undefined || this.spawnError !== undefined) return false;
      this.pendingSignal = n;
      this.killed = true;
      return true;
    }
    const err = this.handle.kill(n);
    if (err === 0) {
      this.killed = true;
      return true;
    }
    return false;
  }

  ref(): void {
    this.unrefed = false;
    this.handle?.ref();
    this.egress?.ref();
  }

  unref(): void {
    this.unrefed = true;
    this.handle?.unref();
    this.egress?.unref();
  }

  /** Resolves on 'close' with the exit status; rejects if the sandbox could not be started. */
  get exited(): Promise<SandboxExit> {
    if (this.exitPromise === undefined) {
      this.exitPromise = new Promise((resolve, reject) => {
        // Listening here also means an awaited spawn failure is not an unhandled 'error'.
        this.on('error', reject);
        if (this.spawnError) return reject(this.spawnError);
        if (this.closed) return resolve({ exitCode: this.exitCode, signalCode: this.signalCode });
        this.once('close', (exitCode, signalCode) => resolve({ exitCode, signalCode }));
      });
    }
    return this.exitPromise;
  }
}

/**
 * The layers that confine a sandbox, for its start event: always the namespaces, the dropped
 * privileges and seccomp; Landlock where the kernel has it (and why not, where it does not).
 */
function layersInForce(resolved: ResolvedSandbox, landlockAbi: number, named: boolean): string[] {
  const layers = [
    `namespaces (user, mount, pid, ipc, uts, cgroup${resolved.plan.shareNetwork ? ')' : ', net)'}`,
    'no capabilities, no_new_privs',
    `seccomp ${resolved.seccomp}${named ? ', violations named' : ''}`,
  ];
  if (landlockAbi > 0) {
    layers.push(`landlock ABI ${landlockAbi}: filesystem${landlockAbi >= 6 ? ', signals and abstract unix sockets scoped' : ''}`);
  } else {
    const abi = native().landlockAbi();
    layers.push(
      abi === 1
        ? 'landlock unavailable (ABI 1 cannot allow renames; 5.19+ needed)'
        : `landlock unavailable (${abi < 0 ? util.getSystemErrorName(abi) : 'ABI 0'})`,
    );
  }
  return layers;
}

/**
 * Starts `command` inside a new sandbox; shaped like child_process.spawn(). Invalid options
 * throw synchronously; failures of the spawn itself are emitted as 'error'.
 */
export function spawnSandboxed(command: string, args: readonly string[] = [], options: SandboxOptions = {}): SandboxedProcess {
  if (!Array.isArray(args) && typeof args === 'object' && args !== null) {
    return new SandboxedProcess(command, [], args as SandboxOptions);
  }
  return new SandboxedProcess(command, [...args], options);
}
