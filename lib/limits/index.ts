// What holds each resource limit of a sandbox on this host, decided before the spawn: a cgroup
// where one can be had (./cgroup.ts), otherwise the best fallback that truly holds, and the
// kernel budgets of the sandbox's own user namespace. The result is part of the plan (rlimits,
// budgets) plus the cgroup settings process.ts applies per spawn, and a description of every
// limit in force and by what, for the sandbox-start event and `stockade doctor`.
//
// The fallbacks, and what they do not hold:
// - pids: RLIMIT_NPROC set inside the sandbox. Since 5.14 the kernel counts processes per user
//   *per user namespace* (ucounts), and the sandbox's payload is the only user of its own
//   namespace, so the limit counts the sandbox's processes and threads only — not the caller's,
//   not another sandbox's (test/limits.test.ts shows it). It holds for the whole sandbox.
// - memory: RLIMIT_AS, per process and of address space, not memory: N processes get N times
//   the limit, and memfd, tmpfs and pipe buffers are not address space of anyone. So it is set
//   only when asked for (Node reserves about 10 GiB of address space for each WebAssembly memory,
//   and fetch() uses one: any default low enough to protect a host breaks Node). Not held.
// - cpus: nothing holds a rate of CPU for a group of processes without the cpu controller; a
//   policy that asks for it is refused on such a host rather than silently unlimited.
// - cpu (CPU seconds): with a cgroup that counts CPU time (v2 cpu.stat, with or without the cpu
//   controller; v1 cpuacct.usage) the launcher ends the whole sandbox at the limit (./watch.ts);
//   without one, RLIMIT_CPU per process: N processes get N times the limit. Not held then.
// - /tmp, home and /dev/shm are tmpfs with a size cap under every mechanism.
import fs = require('node:fs');
import os = require('node:os');

import type { NativePlan } from '../native';
import type { KernelBudgets, SandboxLimits } from '../options';
import { type CgroupSettings, type Controller, cgroupLayout, controllers, limitFile, mounts, type Placement, placement } from './cgroup';

export { type CgroupEvents, SandboxCgroup } from './cgroup';
export type { LimitViolation } from './watch';

/** RLIMIT_* numbers (identical on x86_64 and aarch64). */
export const RLIMIT = { CPU: 0, FSIZE: 1, CORE: 4, NPROC: 6, NOFILE: 7, AS: 9 } as const;

/** Defaults with no flags, sized for real MCP servers and `npx -y` installs (README: Limits). */
export const DEFAULT_PIDS = 1024;
export function defaultMemory(): number {
  return Math.min(2 * 1024 ** 3, Math.floor(os.totalmem() / 2));
}

/** Limits as validated by lib/plan.ts: positive integers (bytes for memory and fileSize), cpus a positive number. */
/** The limits once checked by lib/plan.ts: sizes in bytes. */
export type ValidLimits = Omit<SandboxLimits, 'wallTime' | 'memory' | 'fileSize'> & { memory?: number; fileSize?: number };

/** One limit in force: its value and what enforces it ('cgroup v1 pids.max', 'RLIMIT_NPROC in the sandbox's user namespace'). */
export interface LimitInForce {
  value: number;
  by: string;
}

export interface LimitsReport {
  memory?: LimitInForce;
  pids?: LimitInForce;
  cpus?: LimitInForce;
  cpu?: LimitInForce;
  openFiles?: LimitInForce;
  fileSize?: LimitInForce;
  /** Limits of the whole sandbox this host cannot hold, and why. */
  notHeld: string[];
  /** The sandbox's own budgets of kernel objects (/proc/sys/user in its user namespace). */
  budgets?: Record<string, number>;
}

export interface LimitsPlan {
  rlimits: NonNullable<NativePlan['limits']>;
  budgets: NonNullable<NativePlan['budgets']>;
  /** Cgroups to make per spawn: each hierarchy's placement and the controllers it holds. */
  cgroup?: { where: { placement: Placement; holds: Controller[] }[]; settings: CgroupSettings };
  report: LimitsReport;
}

/** The hierarchy and placement that would hold each controller, and why not where none does. */
export function cgroupMechanism(wanted: readonly Controller[] = ['memory', 'pids']): {
  held: Partial<Record<Controller, Placement>>;
  missing: Partial<Record<Controller, string>>;
  extra?: Placement;
} {
  const layout = cgroupLayout();
  const held: Partial<Record<Controller, Placement>> = {};
  const missing: Partial<Record<Controller, string>> = {};
  for (const c of wanted) {
    const h = layout.byController[c];
    if (h === undefined) {
      missing[c] = `the host has no ${c} cgroup controller mounted`;
      continue;
    }
    const p = placement(
      h,
      wanted.filter((w) => layout.byController[w] === h),
    );
    if (p.ok) held[c] = p;
    else missing[c] = p.reason;
  }
  // The v2 hierarchy on a hybrid host holds no controller, but the child is cloned into it (cgroup.ts).
  let extra: Placement | undefined;
  if (layout.unified !== undefined && !Object.values(held).some((p) => p?.hierarchy === layout.unified)) {
    const p = placement(layout.unified, []);
    if (p.ok) extra = p;
  }
  return { held, missing, extra };
}

/** The budgets a policy may set (limits.kernel), by their /proc/sys/user names. */
export const kernelBudgetNames: Record<keyof KernelBudgets, string> = {
  inotifyInstances: 'max_inotify_instances',
  inotifyWatches: 'max_inotify_watches',
  fanotifyGroups: 'max_fanotify_groups',
  fanotifyMarks: 'max_fanotify_marks',
};

/**
 * Budgets by default: a quarter of what the caller's uid may have, so the host keeps the rest; no
 * namespaces at all. The namespace budgets are not settable: the payload's seccomp profile kills
 * every way to make a namespace under every profile, so a budget above 0 would buy nothing.
 */
const budgetSources: [string, string | number][] = [
  ['max_inotify_instances', '/proc/sys/user/max_inotify_instances'],
  ['max_inotify_watches', '/proc/sys/user/max_inotify_watches'],
  ['max_fanotify_groups', '/proc/sys/user/max_fanotify_groups'],
  ['max_fanotify_marks', '/proc/sys/user/max_fanotify_marks'],
  // seccomp already kills every way to make a namespace; these make it hold without the filter too.
  // Not max_mnt_namespaces: the child's own setup still makes mount namespaces after this —
  // open_tree(OPEN_TREE_CLONE) puts each bind's copy in an anonymous one (ENOSPC at 0) — and for
  // the payload seccomp kills open_tree, fsmount and unshare/clone with CLONE_NEWNS alike.
  ['max_user_namespaces', 0],
  ['max_pid_namespaces', 0],
  ['max_net_namespaces', 0],
  ['max_ipc_namespaces', 0],
  ['max_uts_namespaces', 0],
  ['max_cgroup_namespaces', 0],
  ['max_time_namespaces', 0],
];

let budgetCache: { budgets: NonNullable<NativePlan['budgets']>; values: Record<string, number> } | null | undefined;

/** The budgets, or null where /proc/sys is read-only on the host (a container), which the child could not write. */
export function kernelBudgets(): typeof budgetCache {
  if (budgetCache !== undefined) return budgetCache;
  const target = '/proc/sys/user';
  const mount = mounts()
    .filter((m) => target === m.point || target.startsWith(`${m.point === '/' ? '' : m.point}/`))
    .sort((a, b) => b.point.length - a.point.length)[0];
  if (mount === undefined || mount.mountOptions.includes('ro') || !fs.existsSync(target)) {
    budgetCache = null;
    return budgetCache;
  }
  const budgets: NonNullable<NativePlan['budgets']> = [];
  const values: Record<string, number> = {};
  for (const [name, source] of budgetSources) {
    let value: number;
    if (typeof source === 'number') {
      value = source;
    } else {
      const host = Number.parseInt(fs.existsSync(source) ? fs.readFileSync(source, 'utf8') : '', 10);
      if (!Number.isSafeInteger(host)) continue; // this kernel has no such knob
      value = Math.max(1, Math.floor(host / 4));
    }
    budgets.push({ path: `${target}/${name}`, value: String(value) });
    values[name] = value;
  }
  budgetCache = { budgets, values };
  return budgetCache;
}

/**
 * The budgets of one sandbox: the defaults, with what `kernel` sets in their place. A value is
 * the sandbox's own limit; the caller's own limit still caps every object up the chain, so a
 * value at or above it lets the sandbox take all of the caller's (README: Kernel budgets).
 */
function sandboxBudgets(
  kernel: KernelBudgets | undefined,
  fail: (field: string, message: string) => never,
): { budgets: NonNullable<NativePlan['budgets']>; values: Record<string, number>; missing: string[] } | null {
  const defaults = kernelBudgets() ?? null;
  const asked = Object.entries(kernel ?? {}) as [keyof KernelBudgets, number][];
  if (!defaults) {
    if (asked.length > 0)
      fail('limits.kernel', 'needs a writable /proc/sys, which this host does not give (read-only, as in some containers)');
    return null;
  }
  if (asked.length === 0) return { ...defaults, missing: [] };
  const values = { ...defaults.values };
  const missing: string[] = [];
  for (const [key, value] of asked) {
    const name = kernelBudgetNames[key];
    if (values[name] === undefined) missing.push(`limits.kernel.${key}: this kernel has no /proc/sys/user/${name}`);
    else values[name] = value;
  }
  const budgets = defaults.budgets.map((b) => {
    const name = b.path.slice(b.path.lastIndexOf('/') + 1);
    return { path: b.path, value: String(values[name]) };
  });
  return { budgets, values, missing };
}

function by(p: Placement, c: Controller): string {
  return `cgroup v${p.hierarchy.version} ${limitFile(c, p.hierarchy.version)}`;
}

/** Decides what holds each limit; throws `fail(field, message)` for a limit this host cannot hold at all. */
export function planLimits(limits: ValidLimits, fail: (field: string, message: string) => never): LimitsPlan {
  const rlimits: LimitsPlan['rlimits'] = [{ resource: RLIMIT.CORE, soft: 0, hard: 0 }];
  const report: LimitsReport = { notHeld: [] };
  const rlimit = (resource: number, value: number) => rlimits.push({ resource, soft: value, hard: value });

  const wanted: Controller[] = ['memory', 'pids'];
  if (limits.cpus !== undefined) wanted.push('cpu');
  let mechanism = cgroupMechanism(wanted);
  // CPU seconds of the whole sandbox are counted by its v2 cgroup (cpu.stat, in every v2 cgroup),
  // or else by a v1 cpuacct cgroup made for the purpose.
  let cpuBy: string | undefined;
  if (limits.cpu !== undefined) {
    const v2 = [...Object.values(mechanism.held), mechanism.extra].some((p) => p?.hierarchy.version === 2);
    if (!v2) mechanism = cgroupMechanism([...wanted, 'cpuacct']);
    if (v2) cpuBy = `cgroup v2 ${limitFile('cpuacct', 2)}`;
    else if (mechanism.held.cpuacct) cpuBy = `cgroup v1 ${limitFile('cpuacct', 1)}`;
  }
  const { held, missing, extra } = mechanism;
  const settings: CgroupSettings = {};

  const pids = limits.pids ?? DEFAULT_PIDS;
  if (held.pids) {
    settings.pids = pids;
    report.pids = { value: pids, by: by(held.pids, 'pids') };
  } else {
    rlimit(RLIMIT.NPROC, pids);
    report.pids = { value: pids, by: "RLIMIT_NPROC in the sandbox's own user namespace" };
  }

  if (held.memory) {
    settings.memory = limits.memory ?? defaultMemory();
    report.memory = { value: settings.memory, by: `${by(held.memory, 'memory')}, no swap, OOM ends the sandbox` };
  } else {
    report.notHeld.push(`memory of the whole sandbox: ${missing.memory}`);
    if (limits.memory !== undefined) {
      rlimit(RLIMIT.AS, limits.memory);
      report.memory = { value: limits.memory, by: 'RLIMIT_AS per process' };
    }
  }

  if (limits.cpus !== undefined) {
    if (!held.cpu) fail('limits.cpus', `needs the cgroup cpu controller, which this host does not give stockade: ${missing.cpu}`);
    settings.cpus = limits.cpus;
    report.cpus = { value: limits.cpus, by: by(held.cpu, 'cpu') };
  }

  if (limits.cpu !== undefined && cpuBy !== undefined) {
    settings.cpuSeconds = limits.cpu;
    report.cpu = { value: limits.cpu, by: `${cpuBy}, all processes together; the launcher ends the sandbox at the limit` };
  } else if (limits.cpu !== undefined) {
    rlimit(RLIMIT.CPU, limits.cpu);
    report.cpu = { value: limits.cpu, by: 'RLIMIT_CPU per process' };
    report.notHeld.push(
      `CPU seconds of the whole sandbox (limits.cpu holds per process only): ${missing.cpuacct ?? 'no cgroup counts its CPU time'}`,
    );
  }
  if (limits.openFiles !== undefined) {
    rlimit(RLIMIT.NOFILE, limits.openFiles);
    report.openFiles = { value: limits.openFiles, by: 'RLIMIT_NOFILE per process' };
  }
  if (limits.fileSize !== undefined) {
    rlimit(RLIMIT.FSIZE, limits.fileSize);
    report.fileSize = { value: limits.fileSize, by: 'RLIMIT_FSIZE per process' };
  }

  const budgets = sandboxBudgets(limits.kernel, fail);
  if (budgets) report.budgets = budgets.values;
  else report.notHeld.push("kernel budgets of the sandbox's user namespace: /proc/sys is read-only on this host");
  if (budgets) report.notHeld.push(...budgets.missing);

  const where = controllers
    .map((c) => held[c])
    .filter((p, i, all): p is Placement => p !== undefined && all.indexOf(p) === i)
    .map((p) => ({ placement: p, holds: controllers.filter((c) => held[c] === p) }));
  if (extra !== undefined) where.push({ placement: extra, holds: [] });
  return {
    rlimits,
    budgets: budgets?.budgets ?? [],
    cgroup: where.length > 0 ? { where, settings } : undefined,
    report,
  };
}
