// SandboxedProcess: a ChildProcess-shaped handle on one sandbox. Same events ('spawn', 'exit',
// 'close', 'error' — a failed spawn emits 'error' then 'close', as Node does), same fields (pid,
// stdin/stdout/stderr, stdio, exitCode, signalCode, killed), same kill() semantics, the same
// `signal`, `timeout` and `killSignal` options and Symbol.asyncDispose, plus `exited`, a promise
// for those who await, 'audit' events mirroring the pino audit log, and 'violation' events
// naming each refused syscall. What is not part of the public shape is #private.
import util = require('node:util');

import { EventEmitter } from 'node:events';
import type * as NodeNet from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { AbortError, fromNative, invalidArgType, outOfRange, SandboxError, SandboxOptionsError, unknownSignal } from './errors';
import { type CgroupEvents, type LimitViolation, SandboxCgroup } from './limits';
import { limitFile } from './limits/cgroup';
import type { LimitWatch } from './limits/watch';
import { type NativeHandle, type NativePlan, type NativeSpawnResult, type NativeViolation, native } from './native';
import type { EgressAttachment } from './net/sandbox';
import type { EgressOptions, SandboxOptions, StdioSlot } from './options';
import { type ResolvedSandbox, resolveCommand, resolveSandbox } from './plan';
import type { ResolvedSecret, RunCa, SecretInterceptor } from './secrets';
import { describeViolation, monotonicMs, stampSeen } from './violations';

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
  // native().pipe() made them: fs.closeSync would warn in a Worker (fs did not open them).
  for (const [i, slot] of slots.entries()) if (slot === 'pipe') native().closeFd(childFds[i]);
}

const signalNames = osConstants.signals as Record<string, number>;
const knownSignalNumbers = new Set(Object.values(signalNames));

/** A signal name or number, as Node's convertToValidSignal takes it (names in any case); 0 probes. */
function signalNumber(signal: unknown): number {
  if (typeof signal === 'number' && Number.isInteger(signal) && (signal === 0 || knownSignalNumbers.has(signal))) return signal;
  if (typeof signal === 'string' && signalNames[signal.toUpperCase()] !== undefined) return signalNames[signal.toUpperCase()];
  throw unknownSignal(signal);
}

function signalName(n: number): string {
  return Object.keys(signalNames).find((name) => signalNames[name] === n) ?? String(n);
}

/** The largest delay setTimeout() honours; a longer one fires after 1 ms (TimeoutOverflowWarning). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * The parent's stream over one end of a stdio pipe, or null. node:net is loaded here, at the
 * first pipe: `stockade run` hands its own stdio over, and node:net loaded before its spawn was
 * 2.5 ms of the launcher's start.
 */
function pipeSocket(fd: number | null, readable: boolean): NodeNet.Socket | null {
  if (fd === null) return null;
  const net = require('node:net') as typeof NodeNet;
  return new net.Socket({ fd, readable, writable: !readable });
}

/**
 * @internal `stockade run`'s spawn (one sandbox per launcher): its namespaces are made ahead of
 * time while its plan is resolved (lib/plan.ts, README "The warm pool"), and none is made after it.
 */
export const WARM_ONCE = Symbol('stockade.warmOnce');

/**
 * @internal What starts the sandbox in place of the addon's spawn(), with the same arguments:
 * `stockade run` records the plan there (lib/launch), and `stockade attach` adopts the sandbox
 * native/launch.cc spawned from that record instead.
 */
export const SPAWN_VIA = Symbol('stockade.spawnVia');
export type SpawnVia = (
  plan: NativePlan,
  onExit: (code: number | null, signal: NodeJS.Signals | null) => void,
  onSpawn: (result: NativeSpawnResult) => void,
  onViolation: (violation: NativeViolation) => void,
) => void;

/** spawn()'s own options, checked the way spawn() checks them (before anything is spawned). */
function processOptions(options: SandboxOptions): {
  signal?: AbortSignal;
  timeout?: number;
  killSignal: number;
  warm: boolean;
  once: boolean;
} {
  const { signal, timeout, killSignal, warm } = options;
  const once = (options as { [WARM_ONCE]?: boolean })[WARM_ONCE] === true;
  if (warm !== undefined && typeof warm !== 'boolean') throw invalidArgType('options.warm', 'boolean', warm);
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'AbortSignal', signal);
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout >= 0 && timeout <= MAX_TIMEOUT_MS)) {
    throw outOfRange('timeout', `>= 0 and <= ${MAX_TIMEOUT_MS}`, timeout);
  }
  return {
    signal,
    timeout,
    killSignal: killSignal === undefined ? osConstants.signals.SIGTERM : signalNumber(killSignal),
    // The warm pool (README, "The warm pool"): on unless turned off here or for the process.
    warm: (once || warm !== false) && process.env.STOCKADE_WARM_POOL !== '0',
    once,
  };
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

  #handle: NativeHandle | undefined;
  readonly #options: SandboxOptions;
  #egress: EgressAttachment | undefined;
  #interceptor: SecretInterceptor | undefined;
  /** What the interceptor is made of once the sandbox exists (#spawned): the secrets and the per-run CA. */
  #secrets: { secrets: ResolvedSecret[]; ca: RunCa } | undefined;
  /** A signal sent before the sandbox existed (credentials still being prepared). */
  #pendingSignal: number | undefined;
  /** unref() before the sandbox existed: applied to its handles once they do. */
  #unrefed = false;
  #tornDown = false;
  #spawnError: SandboxError | undefined;
  #exitPromise: Promise<SandboxExit> | undefined;
  #openStreams = 0;
  #exited = false;
  #closed = false;
  #wallTimer: NodeJS.Timeout | undefined;
  #cgroup: SandboxCgroup | undefined;
  #oomWatch: { close(): void } | undefined;
  #limitWatch: LimitWatch | undefined;
  #resolved: ResolvedSandbox | undefined;
  readonly #logger: Logger | undefined;
  /** options.killSignal: what `timeout` and `signal` send (default SIGTERM, as spawn()). */
  readonly #killSignal: number;
  /** options.warm: may use and refill the spawner's warm pool. */
  readonly #warm: boolean;
  /** WARM_ONCE: a warm child is made for this spawn only. */
  readonly #once: boolean;
  #timeoutTimer: NodeJS.Timeout | undefined;
  #forgetAbort: (() => void) | undefined;

  /** @internal use spawnSandboxed() */
  constructor(command: string, args: string[], options: SandboxOptions) {
    super();
    this.spawnfile = command;
    this.spawnargs = [command, ...args];
    const slots = normalizeStdio(options.stdio);
    const own = processOptions(options);
    this.#killSignal = own.killSignal;
    this.#warm = own.warm;
    this.#once = own.once && own.warm;
    const resolved = resolveSandbox(command, args, options, undefined, this.#once);
    // A secret missing on the host is an error now, naming the variable, before anything starts.
    // lib/secrets (an X.509 library) is loaded only when secrets are used; its interceptor (with
    // node:http2, ~13 ms) after the spawn (#spawned), while the sandbox starts.
    const lib =
      options.secrets === undefined
        ? undefined
        : {
            ...(require('./secrets/spec') as typeof import('./secrets/spec')),
            ...(require('./secrets/ca') as typeof import('./secrets/ca')),
          };
    // A secret file must not be anything the sandbox can see (lib/secrets/sources.ts).
    const home = options.filesystem?.home;
    const grants = [...resolved.visible, ...(home !== undefined && home !== 'tmpfs' ? [home] : [])];
    const secrets = lib?.resolveSecrets(options.secrets ?? [], process.env, { grants });
    this.#logger = options.logger;
    this.#options = options;

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
    this.stdin = pipeSocket(parentEnds[0], false);
    this.stdout = pipeSocket(parentEnds[1], true);
    this.stderr = pipeSocket(parentEnds[2], true);
    this.stdio = [this.stdin, this.stdout, this.stderr];
    for (const stream of [this.stdout, this.stderr]) {
      if (stream === null) continue;
      this.#openStreams++;
      stream.once('close', () => {
        this.#openStreams--;
        this.#maybeClose();
      });
    }
    // Writing to a sandbox that has exited must not crash the parent with EPIPE.
    this.stdin?.on('error', () => {});
    this.#watchSignalAndTimeout(own.signal, own.timeout);

    if (secrets === undefined || lib === undefined) {
      this.#start(resolved, childFds, slots);
      // Once the spawn is queued (lib/plan.ts digest): made while the spawner thread works.
      this.policyDigest = resolved.digest;
      return;
    }
    this.policyDigest = resolved.digest;
    // Credentials: the per-run CA is made with WebCrypto, which is asynchronous, so the sandbox
    // starts once it exists ('spawn' says when; pid is undefined until then).
    lib.RunCa.create()
      .then((ca) => {
        this.#secrets = { secrets, ca };
        const trust = lib.sandboxTrust(ca);
        const placeholders = lib.placeholderEnv(secrets);
        const files = Object.fromEntries(
          (options.secrets ?? []).filter((s) => s.file).map((s) => [s.file as string, `${placeholders[s.name]}\n`]),
        );
        const withTrust = resolveSandbox(command, args, options, { env: { ...placeholders, ...trust.env }, bundle: trust.bundle, files });
        this.#start(withTrust, childFds, slots);
      })
      .catch((err: Error) => {
        closeChildEnds(slots, childFds);
        this.#failAsync(new SandboxError({ errno: osConstants.errno.EINVAL, syscall: 'spawn', step: 'secrets', hint: err.message }));
      });
  }

  /**
   * spawn()'s `signal` and `timeout`, with its semantics: an abort sends killSignal and emits an
   * AbortError (at once for a signal aborted already); the timeout sends killSignal once. Both
   * are counted from this call, not from 'spawn': a kill before the sandbox exists is held and
   * delivered as it starts (see kill()). Both end with the sandbox ('exit' or a spawn error).
   */
  #watchSignalAndTimeout(signal: AbortSignal | undefined, timeout: number | undefined): void {
    if (signal !== undefined) {
      const onAbort = () => {
        try {
          if (this.kill(this.#killSignal)) this.emit('error', new AbortError(signal.reason));
        } catch (err) {
          this.emit('error', err);
        }
      };
      if (signal.aborted) {
        process.nextTick(onAbort);
      } else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.#forgetAbort = () => signal.removeEventListener('abort', onAbort);
      }
    }
    if (timeout !== undefined && timeout > 0) {
      this.#timeoutTimer = setTimeout(() => {
        this.#timeoutTimer = undefined;
        this.#audit('warn', { event: 'timeout', pid: this.pid, timeoutMs: timeout, signal: signalName(this.#killSignal) });
        this.kill(this.#killSignal);
      }, timeout);
      if (this.#unrefed) this.#timeoutTimer.unref();
    }
  }

  /** The sandbox is gone (it exited, or never started): its timeout and abort listener go too. */
  #settle(): void {
    if (this.#timeoutTimer) clearTimeout(this.#timeoutTimer);
    this.#timeoutTimer = undefined;
    this.#forgetAbort?.();
    this.#forgetAbort = undefined;
  }

  #start(resolved: ResolvedSandbox, childFds: number[], slots: Slots): void {
    // A cached definition sees only the host's system directories: its command is found once.
    const file =
      (resolved.reusable ? resolved.commandFile : undefined) ??
      resolveCommand(this.spawnfile, resolved.plan.envp, resolved.plan.cwd, resolved.visible, resolved.writable);
    if (resolved.reusable) resolved.commandFile = file;
    if (file === undefined) {
      closeChildEnds(slots, childFds);
      const err = new SandboxError({
        errno: osConstants.errno.ENOENT,
        syscall: `spawn ${this.spawnfile}`,
        step: 'resolve',
        path: this.spawnfile,
        hint: 'not found in the sandbox PATH among the paths bound inside',
      });
      this.#failAsync(err);
      return;
    }
    const plan = { ...resolved.plan, file, fds: childFds, warm: this.#warm, warmRefill: !this.#once };
    this.#resolved = resolved;
    try {
      this.#joinCgroup(plan);
    } catch (err) {
      closeChildEnds(slots, childFds);
      this.#failAsync(err as SandboxError);
      return;
    }
    // The spawn runs on the addon's spawner thread; the event loop goes on meanwhile (the
    // sandbox's pid, like its 'spawn' event, comes once the payload has exec'd).
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => this.#onExit(code, signal);
    const onSpawn = (result: NativeSpawnResult) => this.#spawned(result, resolved);
    const onViolation = (v: NativeViolation) => this.#onViolation(v);
    const via = (this.#options as { [SPAWN_VIA]?: SpawnVia })[SPAWN_VIA];
    if (resolved.reusable && via === undefined) {
      // A cached definition (lib/plan.ts) is converted for the addon once; each spawn then
      // hands over only what is its own.
      resolved.template ??= new (native().PlanTemplate)({ ...resolved.plan, file, fds: [] });
      native().spawn(
        { file, fds: plan.fds, cgroups: plan.cgroups, warm: plan.warm, warmRefill: plan.warmRefill },
        onExit,
        onSpawn,
        onViolation,
        resolved.template,
      );
    } else {
      if (via) via(plan, onExit, onSpawn, onViolation);
      else native().spawn(plan, onExit, onSpawn, onViolation);
    }
    closeChildEnds(slots, childFds); // the addon holds duplicates until the child has its own
  }

  #spawned(result: NativeSpawnResult, resolved: ResolvedSandbox): void {
    if ('error' in result) {
      // The spawner removed the cgroups it made; this catches what it could not.
      void this.#cgroup?.remove();
      const cgroupFiles = this.#cgroup?.dirs.filter((d) => d.hierarchy.version === 1).map((d) => `${d.dir}/tasks`) ?? [];
      this.#failAsync(fromNative(result.error, (step, index) => (step === 'cgroup' ? cgroupFiles[index] : resolved.describe(step, index))));
      return;
    }
    this.pid = result.pid;
    this.#handle = result.handle;
    this.#cgroup?.adopt(result.cgroupDirs);
    if (result.watchOom) {
      // v1 (lib/limits/cgroup.ts): the kernel's OOM killer is off for the sandbox, which ends
      // whole on the notification, registered by the spawner before the sandbox existed (an OOM
      // since then is reported now).
      this.#oomWatch = new (native().OomWatch)(result.handle, () => {
        this.#oomWatch?.close();
        this.#cgroup?.noteOom();
        this.#handle?.kill(osConstants.signals.SIGKILL);
      });
    }
    const layers = layersInForce(resolved, result.landlockAbi, result.seccompNotify);
    if (this.#secrets !== undefined) {
      const { SecretInterceptor } = require('./secrets/intercept') as typeof import('./secrets/intercept');
      // The upstream CAs as read when the options were checked (lib/plan.ts), not read again.
      this.#interceptor = new SecretInterceptor({
        ...this.#secrets,
        upstreamCaPem: resolved.upstreamCaPem,
        logger: this.#options.logger,
        ...(this.#options.grantScope ? { scope: this.#options.grantScope } : {}),
      });
      this.#interceptor.on('violation', (v) => this.#audit('warn', { event: 'violation', ...v }));
      // { secret, host, calls? }: lets the launcher join injections to tool calls.
      this.#interceptor.on('injected', (i) => this.emit('injected', i));
    }
    if (resolved.egress !== undefined) {
      // The proxy is loaded with the first sandbox that has an allow list (cold start of `run`).
      const { EgressAttachment } = require('./net/sandbox') as typeof import('./net/sandbox');
      this.#egress = new EgressAttachment(
        this.#options.network as EgressOptions,
        resolved.egress,
        result.listenerFds,
        (i) => result.handle.adoptListener(i),
        String(result.pid),
        this.#logger,
        {
          interceptor: this.#interceptor,
          guard: this.#interceptor?.plaintextGuard(),
          ...(this.#options.grantScope ? { scope: this.#options.grantScope } : {}),
        },
      );
      this.#egress.proxy.on('egress', (record) => this.emit('egress', record));
    }
    if (this.#pendingSignal !== undefined) this.#handle.kill(this.#pendingSignal);
    this.#watchLimits(resolved);
    if (this.#unrefed) this.unref();
    if (resolved.wallTime !== undefined) {
      this.#wallTimer = setTimeout(() => {
        this.#audit('warn', { event: 'wall-time', pid: this.pid, limitMs: resolved.wallTime });
        this.kill('SIGKILL');
      }, resolved.wallTime);
      this.#wallTimer.unref();
    }
    const shareNetwork = resolved.plan.shareNetwork;
    this.#audit('info', {
      event: 'sandbox-start',
      pid: this.pid,
      command: this.spawnargs,
      policy: this.policyDigest,
      network: shareNetwork ? 'host' : resolved.egress ? 'proxy' : 'none',
      layers,
      limits: resolved.limits.report,
      // Its namespaces were made ahead of time by the spawner (the warm pool, native/spawn.cc).
      ...(result.warm ? { warm: true } : {}),
    });
    if (shareNetwork)
      this.#audit('warn', {
        event: 'network-host',
        pid: this.pid,
        policy: this.policyDigest,
        message: 'sandbox shares the host network (explicitly requested)',
      });
    this.emit('spawn');
  }

  #onViolation(v: NativeViolation): void {
    const violation = describeViolation(v);
    this.#audit('warn', stampSeen({ event: 'violation', pid: this.pid, policy: this.policyDigest, ...violation }, v.seenAt));
    this.emit('violation', violation);
  }

  /**
   * The sandbox's cgroups (lib/limits): decided here, made by the spawner thread before the
   * clone (native/cgroup.cc). On cgroup v1 the spawner also registers the OOM notification then,
   * before the payload can allocate: v1's OOM killer is off for the sandbox (it would kill one
   * process), so the launcher ends the whole sandbox, as v2's memory.oom.group does.
   */
  #joinCgroup(plan: NativePlan): void {
    const spec = this.#resolved?.limits.cgroup;
    if (spec === undefined) return;
    this.#cgroup = new SandboxCgroup(spec.where, spec.settings, { bySpawner: true });
    plan.cgroups = this.#cgroup.spec();
  }

  /** A limit that struck: a 'violation' event and its audit record (and the launcher's line, lib/cli/report.ts). */
  #limitViolation(v: LimitViolation): void {
    this.#audit('warn', stampSeen({ event: 'violation', pid: this.pid, policy: this.policyDigest, ...v }, monotonicMs()));
    this.emit('violation', v);
  }

  /**
   * While the sandbox runs (lib/limits/watch.ts): the first fork refused at pids.max, reported
   * as it happens; CPU seconds of the whole sandbox, which end it at limits.cpu.
   */
  #watchLimits(resolved: ResolvedSandbox): void {
    const cgroup = this.#cgroup;
    if (cgroup === undefined) return;
    const settings = resolved.limits.cgroup?.settings ?? {};
    const cpuSource = cgroup.cpuAccounting();
    // Loaded here, once the sandbox runs, rather than before the first spawn (1.7 ms of `stockade run`'s start).
    const { LimitWatch: Watch } = require('./limits/watch') as typeof import('./limits/watch');
    this.#limitWatch = new Watch(cgroup, {
      onPidsRefused: (count) => this.#pidsViolation(count),
      cpu:
        settings.cpuSeconds === undefined || cpuSource === undefined
          ? undefined
          : {
              seconds: settings.cpuSeconds,
              cpus: settings.cpus,
              onLimit: (used) => {
                this.#limitViolation({
                  kind: 'cpu-limit',
                  limit: settings.cpuSeconds as number,
                  by: `cgroup v${cpuSource.version} ${limitFile('cpuacct', cpuSource.version)}`,
                  action: 'killed',
                  used: Math.round(used * 1000) / 1000,
                  message: `the sandbox reached its CPU time limit of ${settings.cpuSeconds} s (--cpu, limits.cpu; all its processes together, cgroup v${cpuSource.version} ${limitFile('cpuacct', cpuSource.version)}) and was killed`,
                });
                this.#handle?.kill(osConstants.signals.SIGKILL);
              },
            },
    });
  }

  #pidsViolation(count: number): void {
    const pids = this.#resolved?.limits.report.pids;
    this.#limitViolation({
      kind: 'pids-limit',
      limit: pids?.value ?? 0,
      by: pids?.by ?? '',
      action: 'refused',
      count,
      message: `the sandbox reached its limit of ${pids?.value} processes and threads (--pids, limits.pids; ${pids?.by}): fork and clone fail with EAGAIN`,
    });
  }

  /**
   * OOM kills, and refused forks the watch did not see yet, as violations: read once the sandbox
   * has ended (off the JS thread, lib/limits/cgroup.ts release), before 'close'.
   */
  #reportCgroupEvents({ oomKills, pidsRefused }: CgroupEvents): void {
    const memory = this.#resolved?.limits.report.memory;
    if (oomKills > 0) {
      this.#limitViolation({
        kind: 'oom',
        limit: memory?.value ?? 0,
        by: memory?.by ?? '',
        action: 'killed',
        count: oomKills,
        message: `the sandbox ran out of memory (limit ${memory?.value} bytes, ${memory?.by}) and was killed`,
      });
    }
    if (pidsRefused > 0 && !this.#limitWatch?.pidsRefusalReported) this.#pidsViolation(pidsRefused);
  }

  #failAsync(err: SandboxError): void {
    this.#spawnError = err;
    this.#audit('error', {
      event: 'sandbox-error',
      command: this.spawnargs,
      code: err.code,
      step: err.step,
      path: err.path,
      message: err.message,
    });
    this.#settle();
    for (const s of this.stdio) s?.destroy();
    // As child_process: 'error', then 'close' with the negative errno as the exit code (and no
    // 'exit', since nothing ran). 'close' still waits for the destroyed streams' own 'close'.
    process.nextTick(() => {
      this.exitCode = err.errno;
      this.emit('error', err);
      this.#exited = true;
      this.#tornDown = true;
      this.#maybeClose();
    });
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#wallTimer) clearTimeout(this.#wallTimer);
    this.#settle();
    this.#oomWatch?.close();
    this.#limitWatch?.close();
    this.exitCode = code;
    this.signalCode = signal;
    this.#exited = true;
    // The sandbox's mount namespace is freed off the JS thread, after the exit is reported
    // (native/spawn.h, SpawnResult::mountNsFd); 'close' waits for it with the rest.
    const handle = this.#handle;
    const namespaceFreed = new Promise<void>((resolve) => (handle === undefined ? resolve() : handle.released(resolve)));
    this.#handle = undefined;
    // The cgroups' OOM and pids counters and the CPU seconds of the whole sandbox (final: every
    // process of it is gone, its PID 1 is reaped last) are read, and the cgroups removed, off the
    // JS thread (lib/limits/cgroup.ts); the exit record follows the violations they report. Then
    // the proxy's state dies with the sandbox: listeners, client and upstream sockets, the CA.
    // 'close' waits for all of it, so that every egress record of the sandbox has been emitted
    // by then (allowed connections are recorded when they close).
    const exitRecord = (cpuSeconds?: number) =>
      this.#audit('info', {
        event: 'sandbox-exit',
        pid: this.pid,
        policy: this.policyDigest,
        exitCode: code,
        signal,
        ...(cpuSeconds === undefined ? {} : { cpuSeconds: Math.round(cpuSeconds * 1000) / 1000 }),
      });
    const released = this.#cgroup
      ?.release()
      .then((events) => {
        this.#reportCgroupEvents(events);
        return events.cpuSeconds;
      })
      .catch(() => undefined)
      .then(exitRecord);
    if (released === undefined) exitRecord();
    (released ?? Promise.resolve())
      .then(() => Promise.all([this.#egress?.close(), this.#interceptor?.close(), namespaceFreed]))
      .catch(() => {})
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => {
        this.#tornDown = true;
        // As child_process does: output nobody reads is drained, so that 'close' can follow —
        // once the teardown is done, not at 'exit', so that a caller who reads a sandbox's output
        // only after awaiting another sandbox still gets it (the release above takes a trip to
        // the libuv pool).
        for (const stream of [this.stdout, this.stderr]) {
          if (stream !== null && stream.readableFlowing !== true && stream.listenerCount('data') === 0) stream.resume();
        }
        this.#maybeClose();
      });
    this.emit('exit', code, signal);
    this.stdin?.destroy();
    this.#maybeClose();
  }

  #maybeClose(): void {
    if (!this.#exited || this.#openStreams > 0 || !this.#tornDown || this.#closed) return;
    this.#closed = true;
    this.emit('close', this.exitCode, this.signalCode);
  }

  #audit(level: 'info' | 'warn' | 'error', event: Record<string, unknown>): void {
    this.#logger?.[level](event);
    this.emit('audit', event);
  }

  /** Sends a signal to the sandbox's PID 1, which forwards it to the payload (SIGKILL ends all). */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    // A kill before the sandbox exists (pid undefined until 'spawn', see spawnSandboxed) is held
    // and delivered the moment it does; after the exit, it is refused (false), as spawn()'s.
    const n = signalNumber(signal);
    if (this.#handle === undefined) {
      if (this.pid !== undefined || this.#spawnError !== undefined) return false;
      // SIGKILL once asked for stays (an abort's SIGKILL is not downgraded by a later SIGTERM).
      if (this.#pendingSignal !== osConstants.signals.SIGKILL) this.#pendingSignal = n;
      this.killed = true;
      return true;
    }
    const err = this.#handle.kill(n);
    if (err === 0) {
      this.killed = true;
      return true;
    }
    return false;
  }

  ref(): void {
    this.#unrefed = false;
    this.#handle?.ref();
    this.#egress?.ref();
  }

  unref(): void {
    this.#unrefed = true;
    this.#handle?.unref();
    this.#egress?.unref();
    // Unlike spawn()'s, the timeout timer does not hold the event loop of an unref()ed sandbox:
    // the sandbox dies with its launcher (PR_SET_PDEATHSIG) anyway.
    this.#timeoutTimer?.unref();
  }

  /**
   * `await using sandbox = spawnSandboxed(...)`: on leaving the scope the sandbox is killed and
   * the dispose resolves once it has closed (its streams, cgroup and proxy gone). SIGKILL, not
   * ChildProcess's SIGTERM: a payload ignoring SIGTERM would otherwise hold the scope forever.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#closed) return;
    const closed = new Promise<void>((resolve) => this.once('close', () => resolve()));
    if (this.#spawnError === undefined && !this.#exited) this.kill('SIGKILL');
    await closed;
  }

  /** Resolves on 'close' with the exit status; rejects if the sandbox could not be started. */
  get exited(): Promise<SandboxExit> {
    if (this.#exitPromise === undefined) {
      this.#exitPromise = new Promise((resolve, reject) => {
        // Listening here also means an awaited spawn failure is not an unhandled 'error'.
        this.on('error', reject);
        if (this.#spawnError) return reject(this.#spawnError);
        if (this.#closed) return resolve({ exitCode: this.exitCode, signalCode: this.signalCode });
        this.once('close', (exitCode, signalCode) => resolve({ exitCode, signalCode }));
      });
    }
    return this.#exitPromise;
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
    layers.push(landlockTcpLayer(resolved, landlockAbi));
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

/** What Landlock does with TCP for this sandbox (lib/landlock.ts tcpRules), for the start event. */
function landlockTcpLayer(resolved: ResolvedSandbox, abi: number): string {
  const { tcp } = resolved;
  if (tcp === undefined) {
    return resolved.plan.shareNetwork
      ? 'landlock tcp: not restricted (network host)'
      : 'landlock tcp: left to the network namespace (network none, no localPorts)';
  }
  if (abi < 4) return 'landlock tcp: not restricted (ABI 4, Linux 6.7+, needed); the network namespace confines it';
  const list = (ports: number[]) => (ports.length ? ports.join(' ') : 'none');
  return `landlock tcp: connect only to ports ${list(tcp.connect)}; bind only to ${list(tcp.bind)}`;
}

/**
 * Starts `command` inside a new sandbox; shaped like child_process.spawn(), arguments included:
 * `args` is an array or omitted (`spawnSandboxed(cmd, options)`), anything else throws
 * ERR_INVALID_ARG_TYPE as spawn() does. Invalid options throw synchronously; failures of the
 * spawn itself are emitted as 'error', then 'close'.
 *
 * One difference: the sandbox is set up on the addon's spawner thread, so `pid` is undefined
 * until 'spawn' (spawn() sets it before returning). Writes to stdin and kill() before then are
 * held and delivered once the sandbox runs.
 */
export function spawnSandboxed(command: string, options?: SandboxOptions): SandboxedProcess;
export function spawnSandboxed(command: string, args?: readonly string[], options?: SandboxOptions): SandboxedProcess;
export function spawnSandboxed(command: string, args?: readonly string[] | SandboxOptions, options?: SandboxOptions): SandboxedProcess {
  const [argv, opts] = spawnArguments(args, options);
  return new SandboxedProcess(command, argv, opts);
}

/** spawn()'s normalizeSpawnArguments for (args, options): the same shapes accepted, the same errors. */
export function spawnArguments(args: unknown, options: unknown): [string[], SandboxOptions] {
  let argv: string[];
  if (Array.isArray(args)) {
    argv = [...args];
  } else if (args === undefined || args === null) {
    argv = [];
  } else if (typeof args !== 'object') {
    throw invalidArgType('args', 'object', args);
  } else {
    argv = [];
    options = args;
  }
  if (options === undefined) return [argv, {}];
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw invalidArgType('options', 'object', options);
  return [argv, options as SandboxOptions];
}
