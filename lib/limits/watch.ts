// Watching a running sandbox's cgroups for the limits that need the launcher while it runs:
// a fork refused at pids.max, reported the moment it happens (not only at exit), and CPU seconds
// of the whole sandbox (limits.cpu), which no cgroup file enforces, ended at the limit.
// Documentation/admin-guide/cgroup-v2.rst ("PID", "CPU", "Core Interface Files"),
// cgroup-v1/pids.rst, cgroup-v1/cpuacct.rst; man 7 inotify.
//
// Refused forks. pids.events' `max` counts forks and clones refused at the limit. On v2 the
// kernel announces each change of the file (cgroup_file_notify -> kernfs_notify, a modified-file
// event to inotify and POLLPRI to poll), so an fs.watch (libuv's inotify, one instance per event
// loop plus one watch per sandbox, charged to the launcher's uid) wakes the launcher at once.
// On v1 the same file is never announced — kernel/cgroup/pids.c notifies only through the v2
// file handle; checked on 6.18: no inotify event and no POLLPRI after a refused fork — so it is
// read every PIDS_POLL_MS, a bounded delay for one small read. Where the watch cannot be had
// (the launcher's own inotify budget spent) v2 falls back to the same reading.
//
// CPU seconds. Neither hierarchy has a "kill at N CPU seconds" file (cpu.max is a rate, not a
// budget), so the launcher reads the usage — v2 cpu.stat usage_usec, present in every v2 cgroup
// with or without the cpu controller, or v1 cpuacct.usage — and ends the sandbox when it reaches
// the limit. It reads no more often than needed and never late: the sandbox cannot use more than
// `rate` CPU seconds per second (the online CPUs, or `cpus` when a quota holds it), so after a
// reading it sleeps remaining / rate — before which the limit cannot be reached — with a floor of
// CPU_MIN_MS (the overshoot is at most rate x (floor + timer lateness)) and a ceiling of
// CPU_MAX_MS (CPUs brought online later). A long limit costs a handful of reads; the last
// stretch one read every 10 ms. RLIMIT_CPU per process stays the fallback where the sandbox has
// no cgroup (lib/limits/index.ts).
import fs = require('node:fs');
import os = require('node:os');

import type { SandboxCgroup } from './cgroup';

const PIDS_POLL_MS = 200;
const CPU_MIN_MS = 10;
const CPU_MAX_MS = 2000;

/** A limit that struck while the sandbox ran or as it ended: a 'violation' event and audit record. */
export interface LimitViolation {
  kind: 'oom' | 'pids-limit' | 'cpu-limit';
  /** The limit: bytes (oom), processes and threads (pids-limit), CPU seconds (cpu-limit). */
  limit: number;
  /** What enforces it: 'cgroup v1 pids.max', 'cgroup v2 cpu.stat usage_usec'. */
  by: string;
  /** 'killed': the sandbox was ended; 'refused': the call failed (EAGAIN) and the sandbox runs on. */
  action: 'killed' | 'refused';
  /** OOM kills, or forks refused so far. */
  count?: number;
  /** cpu-limit: CPU seconds of the whole sandbox when it was stopped. */
  used?: number;
  message: string;
}

function readCount(file: string): number {
  try {
    return Number(/^max (\d+)$/m.exec(fs.readFileSync(file, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0; // the cgroup is being removed
  }
}

let onlineCpus: number | undefined;

export interface LimitWatchOptions {
  /** Called once, on the first refused fork, with the count so far. */
  onPidsRefused?: (count: number) => void;
  /** CPU seconds of the whole sandbox, and what may run at once (cpus), for limits.cpu. */
  cpu?: { seconds: number; cpus?: number; onLimit: (used: number) => void };
}

/** Watches one sandbox's cgroups; close() when it has exited. Timers and watches never keep the loop alive. */
export class LimitWatch {
  private timers: NodeJS.Timeout[] = [];
  private watcher: fs.FSWatcher | undefined;
  private closed = false;
  private pidsReported = false;

  constructor(
    private readonly cgroup: SandboxCgroup,
    private readonly options: LimitWatchOptions,
  ) {
    const pids = options.onPidsRefused && cgroup.pidsEvents();
    if (pids) this.watchPids(pids.file, pids.version);
    if (options.cpu && cgroup.cpuAccounting()) this.checkCpu();
  }

  private watchPids(file: string, version: 1 | 2): void {
    const check = () => {
      if (this.closed || this.pidsReported) return;
      const count = readCount(file);
      if (count === 0) return;
      this.pidsReported = true;
      this.watcher?.close();
      this.options.onPidsRefused?.(count);
    };
    if (version === 2) {
      try {
        this.watcher = fs.watch(file, { persistent: false }, check);
        this.watcher.on('error', () => {});
        check(); // a fork refused before the watch existed
        return;
      } catch {
        // ENOSPC/EMFILE: the launcher's inotify budget is spent; read it instead.
      }
    }
    const poll = () => {
      check();
      if (!this.closed && !this.pidsReported) this.schedule(poll, PIDS_POLL_MS);
    };
    this.schedule(poll, PIDS_POLL_MS);
  }

  private checkCpu(): void {
    const cpu = this.options.cpu;
    if (this.closed || cpu === undefined) return;
    const used = this.cgroup.cpuSeconds();
    if (used === undefined) {
      // Unreadable: removed as the sandbox ended (close() follows), or a passing failure.
      this.schedule(() => this.checkCpu(), CPU_MIN_MS * 10);
      return;
    }
    if (used >= cpu.seconds) {
      cpu.onLimit(used);
      return;
    }
    onlineCpus ??= Math.max(1, os.cpus().length);
    const rate = Math.min(onlineCpus, cpu.cpus ?? onlineCpus);
    const ms = ((cpu.seconds - used) / rate) * 1000;
    this.schedule(() => this.checkCpu(), Math.min(CPU_MAX_MS, Math.max(CPU_MIN_MS, ms)));
  }

  private schedule(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers = this.timers.filter((x) => x !== t);
      fn();
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  /** Stops every timer and watch; the last pids reading is the caller's (SandboxCgroup.events). */
  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  /** Whether the first refused fork was reported while the sandbox ran. */
  get pidsRefusalReported(): boolean {
    return this.pidsReported;
  }
}
