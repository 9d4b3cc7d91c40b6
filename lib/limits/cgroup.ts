// One cgroup per sandbox, on cgroup v2, v1 or the hybrid of both, behind one interface: where
// each controller (memory, pids, cpu) lives, whether this process may make cgroups there, and
// the sandbox's own cgroups — created before the spawn, handed to the addon as open fds
// (native/cgroup.cc places the child), read for OOM and pids events, and removed after exit.
// man 7 cgroups; Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/{memory,pids}.rst.
//
// Where the cgroups go. Every sandbox gets `<parent>/<launcher pid>-<thread id>-<n>` in each hierarchy it
// uses; <parent> is STOCKADE_CGROUP_PARENT (an absolute cgroup path, the same in every
// hierarchy, like Docker's --cgroup-parent; or a path relative to the caller's own cgroup;
// `none` for no cgroups at all), by default `stockade` under the caller's own cgroup (/proc/self/cgroup). That one rule covers
// both cases the issue names:
// - As host root, the caller may write anywhere, and a subtree of its own cgroup keeps the
//   sandboxes accounted where the caller is (a service's sandboxes stay inside the service).
// - Unprivileged, cgroups can only be had where someone delegated a subtree: systemd does for
//   user@UID.service and for units with Delegate=yes (systemd-run --user --scope -p
//   Delegate=yes), by chowning the cgroup to the user. Writing into one's own cgroup then works
//   without any daemon. What the peers do: nsjail writes below the cgroup it is pointed at and,
//   on v2, moves itself into a child cgroup when its own holds processes; podman/crun and runc
//   (rootless) ask systemd over D-Bus for a transient scope with Delegate=yes. A D-Bus client is
//   a dependency and an asynchronous round trip on every spawn, and it only helps under
//   systemd; so stockade does what nsjail does, with one more care: the caller moves itself
//   into a leaf only when it is alone in its cgroup (moving a shell or an MCP client that
//   shares the cgroup would be a side effect on processes that are not ours). Otherwise the
//   controllers are not held by a cgroup, and doctor says what to run instead.
// - cgroup v2's "no internal processes" rule is the reason for that move: a cgroup can hand a
//   controller to its children (cgroup.subtree_control) only while it has no processes of its
//   own, except the root. v1 has no such rule.
//
// Hybrid hosts (this one among them) have memory, pids and cpu on v1 hierarchies and a v2
// hierarchy without controllers. Each controller is taken from where it is; the v2 hierarchy,
// when writable, gets a sandbox cgroup too even without controllers: the child is cloned into it
// (clone3 CLONE_INTO_CGROUP), and its cgroup.kill (5.14) ends every process in it at once if
// anything is left at teardown.
//
// Cgroup file systems hold only what the kernel makes (no symlinks, no files a sandbox can
// plant: the sandbox has a cgroup namespace of its own and no cgroupfs mounted), so plain paths
// are safe to use here.
import fs = require('node:fs');
import path = require('node:path');

import { SandboxError } from '../errors';
import { type NativeCgroup, native } from '../native';

/**
 * Node's thread id (node:worker_threads threadId): 0 on the main thread, which the addon tells
 * without loading node:worker_threads (~2 ms of a cold start).
 */
function nodeThreadId(): number {
  return native().onMainThread() ? 0 : (require('node:worker_threads') as typeof import('node:worker_threads')).threadId;
}

/**
 * The controllers stockade uses. cpuacct is v1's CPU accounting (cpuacct.usage), for limits.cpu
 * on a host without a v2 cgroup; on v2, cpu.stat's usage_usec is in every cgroup whether the cpu
 * controller is enabled or not (cgroup-v2.rst, "Core Interface Files"), so it needs none.
 */
export type Controller = 'memory' | 'pids' | 'cpu' | 'cpuacct';
export const controllers: readonly Controller[] = ['memory', 'pids', 'cpu', 'cpuacct'];

export interface Hierarchy {
  version: 1 | 2;
  /** Where the hierarchy is mounted. */
  mount: string;
  /** The caller's own cgroup in it (a directory under `mount`). */
  own: string;
  /** Of memory, pids and cpu, those this hierarchy offers the caller's cgroup. */
  offers: Controller[];
}

export interface CgroupLayout {
  /** The unified (v2) hierarchy, when mounted. */
  unified?: Hierarchy;
  /** Where each controller is, when the host has it at all. */
  byController: Partial<Record<Controller, Hierarchy>>;
}

/** Whether sandbox cgroups can be made in one hierarchy, and where. */
export interface Placement {
  hierarchy: Hierarchy;
  ok: boolean;
  /** The directory sandbox cgroups are made in. */
  parent: string;
  /** Why not, when !ok. */
  reason?: string;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function writeText(file: string, text: string): void {
  const fd = fs.openSync(file, fs.constants.O_WRONLY);
  try {
    fs.writeSync(fd, text);
  } finally {
    fs.closeSync(fd);
  }
}

/** /proc/self/mountinfo: mount point, root within its file system, type and super options. */
export function mounts(): { root: string; point: string; type: string; options: string[]; mountOptions: string[] }[] {
  const decode = (s: string) => s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  return (readText('/proc/self/mountinfo') ?? '')
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const [left, right = ''] = line.split(' - ');
      const f = left.split(' ');
      const [type, , superOptions = ''] = right.split(' ');
      return { root: decode(f[3]), point: decode(f[4]), type, options: superOptions.split(','), mountOptions: f[5].split(',') };
    });
}

let layoutCache: { key: string; layout: CgroupLayout } | undefined;

/**
 * Where memory, pids and cpu live on this host, and the caller's cgroup in each hierarchy.
 * Reading the mount table costs about a millisecond on a busy host, so the answer is kept
 * for as long as this process stays in the same cgroups.
 */
export function cgroupLayout(): CgroupLayout {
  const self = readText('/proc/self/cgroup') ?? '';
  if (layoutCache?.key === self) return layoutCache.layout;
  const layout = readLayout(self);
  layoutCache = { key: self, layout };
  return layout;
}

function readLayout(self: string): CgroupLayout {
  // /proc/self/cgroup: "0::/path" for v2, "N:cpu,cpuacct:/path" for each v1 hierarchy.
  const entries: { names: string[]; cgroup: string }[] = [];
  for (const line of self.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) entries.push({ names: m[1] === '' ? [] : m[1].split(','), cgroup: m[2] });
  }
  const ownV2 = entries.find((e) => e.names.length === 0)?.cgroup;
  const layout: CgroupLayout = { byController: {} };
  const dirOf = (mount: { root: string; point: string }, cgroup: string) => {
    // A mount of a sub-tree (a container's) shows cgroups relative to its root.
    const rel = mount.root === '/' ? cgroup : cgroup.startsWith(mount.root) ? cgroup.slice(mount.root.length) : undefined;
    return rel === undefined ? undefined : path.resolve(mount.point, `.${rel}`);
  };
  for (const m of mounts()) {
    if (m.type === 'cgroup2' && layout.unified === undefined) {
      const dir = ownV2 === undefined ? undefined : dirOf(m, ownV2);
      if (dir === undefined) continue;
      const offered = (readText(path.join(dir, 'cgroup.controllers')) ?? '').trim().split(/\s+/);
      const h: Hierarchy = { version: 2, mount: m.point, own: dir, offers: controllers.filter((c) => offered.includes(c)) };
      layout.unified = h;
      for (const c of h.offers) layout.byController[c] ??= h;
    } else if (m.type === 'cgroup') {
      const offers = controllers.filter((c) => m.options.includes(c));
      const cg = entries.find((e) => offers.some((c) => e.names.includes(c)))?.cgroup;
      const dir = cg === undefined ? undefined : dirOf(m, cg);
      if (dir === undefined || offers.length === 0) continue;
      const h: Hierarchy = { version: 1, mount: m.point, own: dir, offers };
      for (const c of offers) if (layout.byController[c]?.version !== 2) layout.byController[c] ??= h;
    }
  }
  return layout;
}

function parentSetting(): string {
  const configured = process.env.STOCKADE_CGROUP_PARENT;
  return configured !== undefined && configured !== '' ? configured : 'stockade';
}

function parentDir(h: Hierarchy, setting: string): string | undefined {
  const dir = path.isAbsolute(setting) ? path.join(h.mount, setting) : path.join(h.own, setting);
  const rel = path.relative(h.mount, dir);
  return rel.startsWith('..') ? undefined : dir;
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

/**
 * cgroup v2: `wanted` must reach the sandbox cgroups, so every cgroup from the caller's own down
 * to the parent lists them in cgroup.subtree_control. The caller's own cgroup refuses with
 * EBUSY while it holds processes (not the root); then the caller moves itself into a leaf,
 * `<own>/stockade-launcher`, if it is alone there (see the top of this file).
 */
function enableV2(h: Hierarchy, parent: string, wanted: Controller[]): string | undefined {
  const chain: string[] = [];
  if (parent.startsWith(`${h.own}/`)) {
    for (let d = path.dirname(parent); d.startsWith(h.own); d = path.dirname(d)) chain.unshift(d);
  }
  chain.push(parent);
  for (const dir of chain) {
    const have = (readText(path.join(dir, 'cgroup.subtree_control')) ?? '').trim().split(/\s+/);
    const missing = wanted.filter((c) => !have.includes(c));
    if (missing.length === 0) continue;
    const enable = () => writeText(path.join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
    try {
      enable();
    } catch (err) {
      if (errorCode(err) !== 'EBUSY' || dir !== h.own) return `cannot enable ${missing.join(', ')} in ${dir} (${errorCode(err)})`;
      const members = (readText(path.join(dir, 'cgroup.procs')) ?? '').split('\n').filter((l) => l !== '');
      if (members.length !== 1 || members[0] !== String(process.pid)) {
        return `${dir} holds other processes, so it cannot pass controllers down (cgroup v2's no-internal-processes rule)`;
      }
      try {
        const leaf = path.join(dir, 'stockade-launcher');
        fs.mkdirSync(leaf, { recursive: true });
        writeText(path.join(leaf, 'cgroup.procs'), String(process.pid));
        enable();
      } catch (err2) {
        return `cannot move this process out of ${dir} to enable ${missing.join(', ')} (${errorCode(err2)})`;
      }
    }
  }
  return undefined;
}

/** Sandbox cgroups of dead launchers (a SIGKILLed launcher cannot clean up): removed once, on first use. */
function sweepStale(parent: string): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(parent);
  } catch {
    return;
  }
  for (const name of entries) {
    const m = /^(\d+)-\d+-w?\d+$/.exec(name); // lib/limits' names, and the warm pool's (native/spawn.cc)
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // alive (or another user's): not ours to judge
    } catch (err) {
      if (errorCode(err) !== 'ESRCH') continue;
    }
    try {
      fs.rmdirSync(path.join(parent, name)); // fails harmlessly while populated
    } catch {}
  }
}

const placements = new Map<string, Placement>();

/** Whether and where sandbox cgroups can be made in `h`; settled once per process and parent setting. */
export function placement(h: Hierarchy, wanted: Controller[]): Placement {
  const setting = parentSetting();
  const key = `${h.mount}\0${setting}\0${wanted.join(',')}`;
  const cached = placements.get(key);
  if (cached !== undefined) return cached;
  const parent = parentDir(h, setting);
  let reason: string | undefined;
  if (setting === 'none') {
    reason = 'STOCKADE_CGROUP_PARENT=none: no cgroups';
  } else if (parent === undefined) {
    reason = `STOCKADE_CGROUP_PARENT=${setting} leaves the hierarchy at ${h.mount}`;
  } else {
    try {
      fs.mkdirSync(parent, { recursive: true, mode: 0o755 });
      fs.accessSync(parent, fs.constants.W_OK);
      if (h.version === 2) {
        // v2 moves a process (clone3 CLONE_INTO_CGROUP included) only for a writer of cgroup.procs
        // in the common ancestor of where it is and where it goes: a delegatee must live inside
        // its delegated subtree.
        let common = h.own;
        while (common !== h.mount && !`${parent}/`.startsWith(`${common}/`)) common = path.dirname(common);
        fs.accessSync(path.join(common, 'cgroup.procs'), fs.constants.W_OK);
        if (wanted.length > 0) reason = enableV2(h, parent, wanted);
      }
      // After the spawn under way, not before it: nothing waits for the sweep.
      if (reason === undefined) setImmediate(sweepStale, parent).unref();
    } catch (err) {
      reason = `${parent} is not writable by uid ${process.getuid?.()} (${errorCode(err)}): no delegated cgroup`;
    }
  }
  const result: Placement = { hierarchy: h, ok: reason === undefined, parent: parent ?? h.mount, reason };
  placements.set(key, result);
  return result;
}

/** What one sandbox's cgroups hold. Absent fields are not set. */
export interface CgroupSettings {
  memory?: number;
  pids?: number;
  /** CPUs (0.5 = half of one), as a cfs quota over a 100 ms period. */
  cpus?: number;
  /** CPU seconds of the whole sandbox (lib/limits/watch.ts reads the usage and ends it there). */
  cpuSeconds?: number;
}

const CPU_PERIOD_US = 100_000;

/** The files that set each limit, per cgroup version, for the start event and the README. */
export function limitFile(c: Controller, version: 1 | 2): string {
  const files = {
    memory: ['memory.limit_in_bytes', 'memory.max'],
    pids: ['pids.max', 'pids.max'],
    cpu: ['cpu.cfs_quota_us', 'cpu.max'],
    cpuacct: ['cpuacct.usage', 'cpu.stat usage_usec'],
  } as const;
  return files[c][version - 1];
}

let counter = 0;

/** cpuacct.usage (v1, nanoseconds) or cpu.stat's usage_usec (v2), in seconds. */
function cpuSecondsOf(text: string | undefined, version: 1 | 2): number | undefined {
  if (text === undefined) return undefined;
  if (version === 1) return Number(text.trim()) / 1e9;
  const usec = /^usage_usec (\d+)$/m.exec(text)?.[1];
  return usec === undefined ? undefined : Number(usec) / 1e6;
}

/** The files that set controller `c`'s limits in a sandbox cgroup, in the order they are written. */
function settingFiles(version: 1 | 2, c: Controller, s: CgroupSettings): NativeCgroup['files'] {
  if (c === 'memory' && s.memory !== undefined) {
    if (version === 2) {
      return [
        { name: 'memory.max', value: String(s.memory) },
        // No swap: a limit that swaps is a limit on RAM only, and swapping is how a host slows to a halt.
        { name: 'memory.swap.max', value: '0', optional: true },
        // An OOM kill takes the whole sandbox, not one process of it (4.19).
        { name: 'memory.oom.group', value: '1' },
      ];
    }
    return [
      { name: 'memory.limit_in_bytes', value: String(s.memory) },
      // memory+swap equal to memory: no swap. Absent without swap accounting (swapaccount=0).
      { name: 'memory.memsw.limit_in_bytes', value: String(s.memory), optional: true },
      // v1 has no oom.group, and its OOM killer takes one process: the rest of the sandbox would
      // see it die and run on. So the killer is off for this cgroup (a task that hits the limit
      // waits instead), and process.ts kills the whole sandbox on the OOM notification, which
      // the spawner registers before the child exists (native/cgroup.cc, oomwatch.cc): all of it
      // or nothing, as v2's memory.oom.group.
      { name: 'memory.oom_control', value: '1' },
    ];
  }
  if (c === 'pids' && s.pids !== undefined) return [{ name: 'pids.max', value: String(s.pids) }];
  if (c === 'cpu' && s.cpus !== undefined) {
    const quota = Math.max(1000, Math.round(s.cpus * CPU_PERIOD_US));
    if (version === 2) return [{ name: 'cpu.max', value: `${quota} ${CPU_PERIOD_US}` }];
    return [
      { name: 'cpu.cfs_period_us', value: String(CPU_PERIOD_US) },
      { name: 'cpu.cfs_quota_us', value: String(quota) },
    ];
  }
  return [];
}

/** Counters read from the sandbox's cgroups: OOM kills and refused forks. */
export interface CgroupEvents {
  oomKills: number;
  pidsRefused: number;
  /** CPU seconds of the whole sandbox (release() only; undefined where unreadable). */
  cpuSeconds?: number;
}

/**
 * The cgroups of one sandbox, one per hierarchy it uses. Decided here, made by the addon's
 * spawner thread (native/cgroup.cc) from spec(): the mkdir and the writes are system calls the
 * JS thread need not wait for. The addon removes them again when the spawn fails.
 */
export class SandboxCgroup {
  /** Directory of the sandbox's cgroup per hierarchy, with what it holds there. */
  readonly dirs: { hierarchy: Hierarchy; dir: string; holds: Controller[] }[] = [];
  private readonly settings: CgroupSettings;
  private removed = false;
  /** OOMs the launcher acted on (v1, where the kernel's killer is off and counts none). */
  private oomsHandled = 0;

  /**
   * `where` says which hierarchy holds which controller (holds [] for a hierarchy that holds
   * none, the v2 one on a hybrid host).
   */
  constructor(where: { placement: Placement; holds: Controller[] }[], settings: CgroupSettings, opts: { bySpawner?: boolean } = {}) {
    // Each Worker has its own copy of this module (and counter): the thread id keeps names apart.
    const name = `${process.pid}-${nodeThreadId()}-${++counter}`;
    for (const { placement: p, holds } of where) this.dirs.push({ hierarchy: p.hierarchy, dir: path.join(p.parent, name), holds });
    this.settings = settings;
    if (!opts.bySpawner) this.createNow();
  }

  /**
   * The same cgroups made here, synchronously (a caller outside spawnSandboxed, which lets the
   * spawner thread make them: process.ts passes bySpawner). Throws a SandboxError with step
   * 'cgroup' and leaves nothing behind.
   */
  private createNow(): void {
    const step = (syscall: string, file: string, fn: () => void) => {
      try {
        fn();
      } catch (err) {
        this.removeNow();
        throw new SandboxError({ errno: (err as NodeJS.ErrnoException).errno ?? -22, syscall, step: 'cgroup', path: file });
      }
    };
    for (const { dir, files } of this.spec()) {
      step('mkdir', dir, () => {
        try {
          fs.mkdirSync(dir, { mode: 0o755 });
        } catch (err) {
          // An empty parent removed since placement() settled it is made again, once.
          if (errorCode(err) !== 'ENOENT') throw err;
          fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
          fs.mkdirSync(dir, { mode: 0o755 });
        }
      });
      for (const f of files) {
        const full = path.join(dir, f.name);
        if (f.optional && !fs.existsSync(full)) continue;
        step('write', full, () => writeText(full, f.value));
      }
    }
  }

  /** What the spawner thread makes: each directory, the files to write in it, the v1 OOM watch. */
  spec(): NativeCgroup[] {
    return this.dirs.map(({ hierarchy, dir, holds }) => {
      const files: NativeCgroup['files'] = [];
      for (const c of holds) files.push(...settingFiles(hierarchy.version, c, this.settings));
      const watchOom = hierarchy.version === 1 && holds.includes('memory') && this.settings.memory !== undefined;
      return { dir, version: hierarchy.version, files, watchOom };
    });
  }

  /**
   * The directories the spawner put the sandbox in (native result.cgroupDirs, spec() order): a
   * warm child's v2 cgroup is the one it was born in, made by the spawner, not the one named here.
   */
  adopt(dirs: readonly string[]): void {
    dirs.forEach((dir, i) => {
      const d = this.dirs[i];
      if (d !== undefined && d.dir !== dir) this.dirs[i] = { ...d, dir };
    });
  }

  /** Records an OOM the launcher ended the sandbox for (v1). */
  noteOom(): void {
    this.oomsHandled++;
  }

  /** The files whose counters events() reads, and the key of each. */
  private eventFiles(): { file: string; key: string; kind: keyof CgroupEvents }[] {
    const out: { file: string; key: string; kind: keyof CgroupEvents }[] = [];
    for (const { hierarchy, dir, holds } of this.dirs) {
      if (holds.includes('memory'))
        out.push({
          file: path.join(dir, hierarchy.version === 2 ? 'memory.events' : 'memory.oom_control'),
          key: 'oom_kill',
          kind: 'oomKills',
        });
      if (holds.includes('pids')) out.push({ file: path.join(dir, 'pids.events'), key: 'max', kind: 'pidsRefused' });
    }
    return out;
  }

  private count(texts: (string | undefined | null)[]): CgroupEvents {
    const out: CgroupEvents = { oomKills: this.oomsHandled, pidsRefused: 0 };
    this.eventFiles().forEach(({ key, kind }, i) => {
      out[kind] += Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(texts[i] ?? '')?.[1] ?? 0);
    });
    return out;
  }

  /** OOM kills and refused forks so far. */
  events(): CgroupEvents {
    return this.count(this.eventFiles().map(({ file }) => readText(file)));
  }

  /**
   * Once the sandbox has ended: its counters, read, and its cgroups removed, on the libuv pool
   * (native/addon.cc releaseCgroup), so that neither holds the JS thread; what is still
   * populated goes through remove().
   */
  release(): Promise<CgroupEvents> {
    if (this.removed) return Promise.resolve(this.events());
    const files = this.eventFiles().map((f) => f.file);
    const cpu = this.cpuAccounting();
    if (cpu !== undefined) files.push(cpu.file);
    return new Promise<CgroupEvents>((resolve) => {
      native().releaseCgroup(
        files,
        this.dirs.map((d) => d.dir),
        (texts, left) => {
          const events = this.count(texts);
          if (cpu !== undefined) events.cpuSeconds = cpuSecondsOf(texts[files.length - 1] ?? undefined, cpu.version);
          if (left === 0) {
            this.removed = true;
            resolve(events);
          } else {
            void this.remove().then(() => resolve(events));
          }
        },
      );
    });
  }

  /**
   * The file that counts refused forks, where a pids controller holds the sandbox: pids.events,
   * whose `max` line counts forks and clones refused at pids.max. v2 notifies a change of it
   * (a modified-file event, cgroup_file_notify); v1 does not, so it is read periodically
   * (./watch.ts).
   */
  pidsEvents(): { file: string; version: 1 | 2 } | undefined {
    const d = this.dirs.find((x) => x.holds.includes('pids'));
    return d && { file: path.join(d.dir, 'pids.events'), version: d.hierarchy.version };
  }

  /**
   * Where the CPU time of the whole sandbox is counted: the v2 cgroup's cpu.stat (present with or
   * without the cpu controller) or else the v1 cpuacct cgroup's cpuacct.usage; undefined where
   * the sandbox has neither.
   */
  cpuAccounting(): { file: string; version: 1 | 2 } | undefined {
    const v2 = this.dirs.find((x) => x.hierarchy.version === 2);
    if (v2) return { file: path.join(v2.dir, 'cpu.stat'), version: 2 };
    const v1 = this.dirs.find((x) => x.holds.includes('cpuacct'));
    return v1 && { file: path.join(v1.dir, 'cpuacct.usage'), version: 1 };
  }

  /** CPU seconds used by every process of the sandbox so far, dead ones included; undefined if unreadable. */
  cpuSeconds(): number | undefined {
    const source = this.cpuAccounting();
    return source && cpuSecondsOf(readText(source.file), source.version);
  }

  /**
   * Removes the cgroups. After the sandbox's PID 1 has exited they are empty (the kernel reaps
   * every other process of a pid namespace before its init becomes a zombie), so rmdir works at
   * once; anything still inside is killed (v2 cgroup.kill, 5.14; v1 each pid) and rmdir retried,
   * a bounded number of times.
   */
  async remove(): Promise<void> {
    for (let attempt = 0; attempt < 50 && !this.removeNow(); attempt++) {
      for (const { hierarchy, dir } of this.dirs) {
        if (hierarchy.version === 2 && fs.existsSync(path.join(dir, 'cgroup.kill'))) {
          try {
            writeText(path.join(dir, 'cgroup.kill'), '1');
          } catch {}
        } else {
          for (const pid of (readText(path.join(dir, 'cgroup.procs')) ?? '').split('\n').filter(Boolean)) {
            try {
              process.kill(Number(pid), 'SIGKILL');
            } catch {}
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** rmdir of every cgroup not yet removed; true when none is left. */
  private removeNow(): boolean {
    if (this.removed) return true;
    let left = 0;
    for (const { dir } of this.dirs) {
      try {
        fs.rmdirSync(dir);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') left++;
      }
    }
    this.removed = left === 0;
    return this.removed;
  }
}
