// Typed binding of the native addon (native/addon.cc). The addon executes a NativePlan and
// knows nothing about policy: lib/plan.ts builds the plan, and every value here has already
// been validated.
import path = require('node:path');

import { packageRoot } from './location';

/** Mount operations, in the order the child applies them (native/plan.h, MountOp::Kind). */
export const MountKind = {
  bind: 0,
  tmpfs: 1,
  proc: 2,
  devpts: 3,
  file: 4,
  symlink: 5,
  maskFile: 6,
  maskDir: 7,
  readOnly: 8,
} as const;

export interface NativeMount {
  kind: (typeof MountKind)[keyof typeof MountKind];
  /** bind: the canonical host path (opened without following symlinks); symlink: the link's text. */
  source?: string;
  /** The path inside the sandbox. */
  target: string;
  /** tmpfs: mount options; file: content. */
  data?: string | Buffer;
  readOnly?: boolean;
  /** A bind of device nodes (/dev/null, ...): the mount keeps device access (no nodev). */
  devices?: boolean;
  /** false: the target lies under a host bind and must exist there (nothing is created). Default true. */
  createTarget?: boolean;
  /** bind, as host root: through an idmapped mount (caller's ids -> the payload's). */
  idmap?: boolean;
  mode?: number;
}

export interface NativeListener {
  type: 'tcp' | 'udp';
  /** 4 bytes (IPv4) or 16 bytes (IPv6), network order. */
  address: Buffer;
  port: number;
}

/** The Landlock rules (native/landlock.h); paths as the sandbox sees them, rights LANDLOCK_ACCESS_FS_*. */
export interface NativeLandlock {
  handledFs: number;
  rules: { path: string; access: number }[];
  /** ABI 4: LANDLOCK_ACCESS_NET_* handled (absent: TCP is left to the network namespace). */
  handledNet?: number;
  /** ABI 4: the TCP ports that grant them. */
  ports?: { port: number; access: number }[];
  /** ABI 6: abstract unix sockets and signals stay inside the sandbox's domain. */
  scope?: boolean;
  /** The payload's stdio files and terminals get a read-write rule (reopening /dev/stdout). */
  allowStdio?: boolean;
}

/** Seccomp profiles by number (native/plan.h, SeccompProfile). */
export const SeccompProfileNumber = { default: 0, strict: 1 } as const;

export interface NativePlan {
  file: string;
  argv: string[];
  envp: string[];
  cwd: string;
  hostname: string;
  uid?: number;
  gid?: number;
  hostUid?: number;
  hostGid?: number;
  baseDir: string;
  rootOptions: string;
  mounts: NativeMount[];
  shareNetwork?: boolean;
  routeAllLocal?: boolean;
  listeners?: NativeListener[];
  /** Parent fds that become 0, 1, 2, ... in the payload; -1 is /dev/null. */
  fds: number[];
  limits?: { resource: number; soft: number; hard: number }[];
  useInit?: boolean;
  initPath?: string;
  seccomp?: boolean;
  seccompProfile?: number;
  /** Absent: no Landlock. Used when the kernel has ABI 2 or later. */
  landlock?: NativeLandlock;
  /**
   * The sandbox's cgroups, made and configured by the spawner thread (native/cgroup.cc), which
   * clones the child into the v2 one and has it move itself into the v1 ones; watchOom registers
   * a v1 memory cgroup's OOM eventfd, which the handle holds (result.watchOom).
   */
  cgroups?: NativeCgroup[];
  /** /proc/sys/user limits the child sets in its own user namespace. */
  budgets?: { path: string; value: string }[];
  /**
   * The sandbox's cgroup directories (lib/limits): removed by the addon only if the environment
   * that spawned it (a Worker) is torn down while it runs, when no JavaScript can.
   */
  cgroupDirs?: string[];
  /**
   * May take the warm child of the spawner's pool (namespaces made ahead of time, native/spawn.cc)
   * and leave one like it for the next spawn. Given per spawn, also with a template.
   */
  warm?: boolean;
  /** false (with warm): takes a warm child made ahead (Addon.prewarm) and leaves none after. */
  warmRefill?: boolean;
}

/** Opaque: a plan held in C++ (Addon.PlanTemplate). */
export interface NativePlanTemplate {
  readonly __planTemplate: never;
}

export interface NativeCgroup {
  dir: string;
  version: 1 | 2;
  files: { name: string; value: string; optional?: boolean }[];
  watchOom?: boolean;
}

/** A refused syscall, as stockade-init's seccomp supervisor saw it (native/initproto.h). */
export interface NativeViolation {
  nr: number;
  /** AUDIT_ARCH_* of the call. */
  arch: number;
  args: bigint[];
  /** 0: the sandbox was killed; otherwise the errno the call was answered with. */
  errno: number;
  /** The caller's pid inside the sandbox. */
  pid: number;
  /** When the supervisor received the call, ms on the monotonic clock (lib/violations.ts monotonicMs). */
  seenAt: number;
}

export interface NativeError {
  step: number;
  errno: number;
  index: number;
  path?: string;
  /** Where the failing syscall is not the step's usual one (cgroup: mkdir, open, write). */
  syscall?: string;
}

export interface NativeHandle {
  /** Sends a signal through the pidfd; returns 0 or an errno (ESRCH after exit). */
  kill(signal: number): number;
  ref(): void;
  unref(): void;
  /**
   * listenerFds[index] is wrapped now (net.Server, UdpEndpoint): the wrapper owns it. Until then
   * the handle does, and closes it when the sandbox ends or its environment is torn down.
   */
  adoptListener(index: number): void;
  /** callback() once the exited sandbox's mount namespace is freed (off the JS thread), at once if it is. */
  released(callback: () => void): void;
}

export type NativeSpawnResult =
  | { error: NativeError }
  | {
      pid: number;
      handle: NativeHandle;
      listenerFds: number[];
      /** The Landlock ABI the sandbox runs under, 0 for none. */
      landlockAbi: number;
      /** stockade-init supervises the seccomp filter: violations are named. */
      seccompNotify: boolean;
      /** The handle holds a v1 memory cgroup's OOM eventfd (plan.cgroups watchOom): for new OomWatch(handle, onOom). */
      watchOom: boolean;
      /** The cgroups the sandbox is in, in plan.cgroups order (a warm child's v2 cgroup is its own). */
      cgroupDirs: string[];
      /** Made from the spawner's warm child (namespaces made ahead of time), not a fresh clone(). */
      warm: boolean;
    };

/** Serves a UDP socket bound inside a sandbox's netns (native/udp.cc); owns the fd. */
export interface NativeUdpEndpoint {
  /** Sends a datagram to `peer` (a sockaddr as received); returns 0 or an errno. */
  send(data: Buffer, peer: Buffer): number;
  close(): void;
}

/**
 * Relays two connected sockets both ways with splice(2) (native/relay.cc). Constructed with the
 * bytes already read from each side (written first) and the idle timeout; start() duplicates the
 * two fds and returns 0 or an errno (then nothing was taken). onDone is called exactly once:
 * the bytes read from the client and from the upstream by the relay, an errno (0: both sides
 * closed normally, or close() was called) and whether the idle timeout ended it.
 */
export interface NativeRelay {
  start(clientFd: number, upstreamFd: number): number;
  /** Closes both sockets at once; reports through onDone if still running. */
  close(): void;
}

export type RelayDone = (bytesUp: number, bytesDown: number, errno: number, timedOut: boolean) => void;

/** native/toolrelay.cc: the tool layer's stdio on two threads (lib/mcp/native-relay.ts). */
export interface NativeToolRelay {
  /** 0 or an errno. The client's fds are duplicated; the server's pipe ends become the relay's. */
  start(clientIn: number, clientOut: number, serverIn: number, serverOut: number): number;
  /** What the line the side holds (kind 'defer' or 'oversize') becomes; null for nothing. */
  answer(side: 0 | 1, toServer: Buffer | null, toClient: Buffer | null): void;
  /** Delivers what the threads have queued, now. */
  drain(): void;
  /** Stops both threads and closes the relay's fds (idempotent). */
  close(): void;
}

/** native/toolrelay.h Kind, in order. Side 0 is the client's (client to server), 1 the server's. */
export const TOOL_RELAY_EVENTS = ['observe', 'defer', 'oversize', 'end', 'client-gone', 'done'] as const;
/** `at`: when the event was queued, ms on the monotonic clock (lib/violations.ts monotonicMs). */
export type ToolRelayEvent = (side: 0 | 1, kind: number, bytes: Buffer | undefined, errno: number, at: number) => void;

/** Opaque: a scan of native/hostscan.cc in progress (an external). */
export interface SpecialScanHandle {
  readonly __specialScan: never;
}

interface Addon {
  /** Calls onOom() on every OOM in a cgroup v1 memory cgroup (native/oomwatch.cc); throws with .errno. */
  OomWatch: new (
    handle: NativeHandle,
    onOom: () => void,
  ) => { close(): void };
  /**
   * pipeRoom: bytes of pipe buffers the uid must still be able to add under pipe-user-pages-soft
   * once the relay's pipes exist (start() returns ENOBUFS otherwise); 0 or absent: no check.
   */
  Relay: new (
    upHead: Buffer,
    downHead: Buffer,
    idleMs: number,
    onDone: RelayDone,
    growPipes?: boolean,
    pipeRoom?: number,
  ) => NativeRelay;
  ToolRelay: new (
    allow: string[],
    deferCalls: boolean,
    maxLineBytes: number,
    maxDepth: number,
    onEvent: ToolRelayEvent,
    batchMs?: number,
  ) => NativeToolRelay;
  UdpEndpoint: new (fd: number, onMessage: (data: Buffer, peer: Buffer) => void) => NativeUdpEndpoint;
  /**
   * Queues the spawn on the environment's spawner thread (native/spawner.cc) and returns at once;
   * onSpawn follows from the event loop once the payload has exec'd or the setup failed. The
   * plan's fds are duplicated before this returns: the caller may close its own.
   */
  spawn(
    plan: NativePlan,
    onExit: (code: number | null, signal: NodeJS.Signals | null) => void,
    onSpawn: (result: NativeSpawnResult) => void,
    onViolation?: (violation: NativeViolation) => void,
  ): void;
  /** With a template, the plan gives only what differs per spawn: file, fds, cgroups, warm. */
  spawn(
    plan: Pick<NativePlan, 'file' | 'fds' | 'cgroups' | 'warm' | 'warmRefill'>,
    onExit: (code: number | null, signal: NodeJS.Signals | null) => void,
    onSpawn: (result: NativeSpawnResult) => void,
    onViolation: ((violation: NativeViolation) => void) | undefined,
    template: NativePlanTemplate,
  ): void;
  /**
   * A sandbox native/launch.cc spawned from a launch record before it exec'd this process, its fds
   * inherited (lib/launch): handed over as spawn() hands one, onSpawn called at once. Throws a
   * TypeError where the fds are not the sandbox's.
   */
  adopt(
    sandbox: {
      pid: number;
      pidfd: number;
      statusFd: number;
      mountNsFd: number;
      oomEventFd: number;
      landlockAbi: number;
      seccompNotify: boolean;
      cgroupDirs: string[];
    },
    onExit: (code: number | null, signal: NodeJS.Signals | null) => void,
    onSpawn: (result: NativeSpawnResult) => void,
    onViolation?: (violation: NativeViolation) => void,
  ): void;
  /** A plan checked and converted once, for every spawn of one resolved definition (native/addon.cc). */
  PlanTemplate: new (
    plan: NativePlan,
  ) => NativePlanTemplate;
  pipe(): [number, number];
  /** Closes an fd pipe() made (fs.closeSync warns about those in a Worker); 0 or an errno. */
  closeFd(fd: number): number;
  probeNamespaces(): number;
  landlockAbi(): number;
  /** Whether the host's audit is on (1/0, or -errno) and its read-only log joinable (0 or -errno). */
  auditProbe(): { enabled: number; readLog: number };
  /** Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft limit now, or -errno. */
  raiseOpenFileLimit(): number;
  seccompNotify(): boolean;
  /**
   * On the libuv pool: reads each of readFiles (null where unreadable), then rmdir()s each of
   * dirs; done gets the texts and how many directories are left (native/addon.cc).
   */
  releaseCgroup(readFiles: string[], dirs: string[], done: (texts: (string | null)[], left: number) => void): void;
  /** SHA-256 of `text` (UTF-8) in hex, with the OpenSSL of the Node process; null where it has none. */
  sha256Hex(text: string): string | null;
  /** The calling thread is the process's first (gettid() == getpid()): Node's main thread. */
  onMainThread(): boolean;
  /** CPU time of the calling thread, ms (for bench/). */
  threadCpuTime(): number;
  /** The checklist's steps by number (native/steps.h), frozen. */
  steps: Readonly<Record<number, { step: string; syscall: string }>>;
  /**
   * Starts looking for a unix socket or FIFO at or below `root` on threads of the addon's own
   * (lib/hostpath.ts, native/hostscan.cc); a handle dropped unfinished is stopped when collected.
   * `witness`: the file of this root's witness (native/scanwitness.cc), checked before the walk
   * and written after a clean one that saw no directory changed within `racyMs`.
   */
  startSpecialScan(root: string, limit: number, witness?: string, racyMs?: number): SpecialScanHandle;
  /**
   * Waits for the scan: the first unix socket or FIFO found, the errno (E2BIG past `limit`
   * entries) and the path where it gave up, or, clean, what became of the witness. Once per handle.
   */
  finishSpecialScan(
    handle: SpecialScanHandle,
  ): { type: 'unix socket' | 'FIFO'; path: string } | { errno: number; path: string } | { witness: 'none' | 'held' | 'written' };
  /**
   * Has the spawner thread make a warm child (the warm pool) for a plan still being resolved: the
   * parts of the plan its key is made of, and the directory its v2 cgroup will be made in. 0, or
   * the errno of starting the spawner thread.
   */
  prewarm(key: Pick<NativePlan, 'shareNetwork' | 'budgets'> & { landlock?: { handledNet?: number }; cgroupParent?: string }): number;
  /**
   * The plan, checked as spawn() checks it (the same TypeError), in the binary form a launcher
   * that is not a Node process spawns from (native/planwire.h). A RangeError for a plan past that
   * form's limits (a string over 1 MiB, a list over 4096 entries), which the launcher would refuse.
   */
  encodePlan(plan: NativePlan): Buffer;
  /** For tests: decodes a recorded plan and encodes it again; the bytes so made, or why decoding refused them. */
  planRoundTrip(bytes: Buffer): Buffer | string;
  /** Stops a scan without its answer (workers stop at their next directory). Once per handle, instead of finishSpecialScan. */
  cancelSpecialScan(handle: SpecialScanHandle): void;
  /** The capacity of pipe `fd` after setting it to `bytes` if given (F_SETPIPE_SZ), or -errno. */
  pipeSize(fd: number, bytes?: number): number;
}

let addon: Addon | undefined;
let addonPath: string | undefined;

/** node-gyp-build's choice: build/Release/ (a build from source) before prebuilds/<platform>-<arch>/. */
function load(): Addon {
  if (addon === undefined) {
    const gypBuild = require('node-gyp-build') as { path(dir: string): string };
    addonPath = gypBuild.path(packageRoot);
    // process.dlopen, what require() of a .node file calls, without the module resolution around
    // it (~0.5 ms of every launcher's start): the path is node-gyp-build's, absolute.
    const loaded = { exports: {} as Addon };
    process.dlopen(loaded, addonPath);
    addon = loaded.exports;
  }
  return addon;
}

export function native(): Addon {
  return load();
}

/**
 * SHA-256 in hex: the addon's (the OpenSSL Node carries, no module to load), else node:crypto's.
 */
export function sha256Hex(text: string): string {
  return load().sha256Hex(text) ?? (require('node:crypto') as typeof import('node:crypto')).createHash('sha256').update(text).digest('hex');
}

/** stockade-init lives beside the addon, in the prebuild or the build directory. */
export function initPath(): string {
  load();
  return path.join(path.dirname(addonPath as string), 'stockade-init');
}

/** stockade-launch, the front of `stockade run` that is not a Node process (native/launch.cc), beside it. */
export function launchPath(): string {
  return path.join(path.dirname(initPath()), 'stockade-launch');
}

/**
 * Names of the child's steps, by number, with the syscall each is named after in messages:
 * the addon's table, built from native/steps.h (the list native/plan.h and native/init.c use).
 */
export function stepNames(): Readonly<Record<number, { step: string; syscall: string }>> {
  return load().steps;
}
