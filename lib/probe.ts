// probeHost(): what this host offers a sandbox, and for each missing piece, the fix. Used by
// `stockade doctor`; cheap enough to call at startup.
import fs = require('node:fs');
import os = require('node:os');
import util = require('node:util');

import { cgroupMechanism, kernelBudgets } from './limits';
import { cgroupLayout, placement } from './limits/cgroup';
import { native } from './native';

export interface HostCheck {
  ok: boolean;
  detail: string;
  /** What to do about it when !ok. */
  fix?: string;
}

export interface HostReport {
  kernel: string;
  arch: string;
  uid: number;
  /** Every check a sandbox needs passed. */
  ready: boolean;
  userNamespaces: HostCheck;
  seccomp: HostCheck;
  /** The ABI, and what stockade enforces with it (empty when Landlock is not used). */
  landlock: HostCheck & { abi: number; enforced: string[] };
  /** Whether Landlock's denials could be read from the audit log here (they are not violation events). */
  landlockAudit: HostCheck & { auditEnabled: number; readLog: number };
  cgroupDelegation: HostCheck;
  /** What holds the sandbox's memory, pids and cpu here, as a check ... */
  limitsCheck: HostCheck;
  /** ... and in detail. */
  limits: LimitsProbe;
  apparmor: HostCheck;
  kernelVersion: HostCheck;
}

function read(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const [a, b] = release.split('.').map((x) => Number.parseInt(x, 10));
  return a > major || (a === major && b >= minor);
}

export interface LimitsProbe {
  /** Controllers a sandbox cgroup holds here. */
  held: string[];
  /** Per controller: 'cgroup v1 /sys/fs/cgroup/memory/stockade', or why not. */
  controllers: Record<string, string>;
  /** Whether the sandbox's user namespace gets its own inotify/fanotify/namespace budgets. */
  budgets: boolean;
  /** What counts CPU seconds of the whole sandbox (limits.cpu), or 'RLIMIT_CPU per process'. */
  cpuSeconds: string;
  detail: string;
}

/** What holds each limit on this host (lib/limits). */
export function probeLimits(): LimitsProbe {
  const { held, missing, extra } = cgroupMechanism(['memory', 'pids', 'cpu']);
  const controllers: Record<string, string> = {};
  for (const c of ['memory', 'pids', 'cpu'] as const) {
    const p = held[c];
    controllers[c] = p ? `cgroup v${p.hierarchy.version} under ${p.parent}` : `not held: ${missing[c]}`;
  }
  const names = Object.keys(held);
  const budgets = kernelBudgets() !== null;
  // limits.cpu: the v2 cgroup's cpu.stat where the sandbox gets one, else a v1 cpuacct cgroup.
  const cpuSeconds = [...Object.values(held), extra].some((p) => p?.hierarchy.version === 2)
    ? 'cgroup v2 cpu.stat'
    : cgroupMechanism(['cpuacct']).held.cpuacct
      ? 'cgroup v1 cpuacct.usage'
      : 'RLIMIT_CPU per process (no cgroup counts the whole sandbox)';
  // lib/limits/watch.ts: v2 announces a change of pids.events, v1 does not.
  const pidsWatch = !held.pids
    ? ''
    : held.pids.hierarchy.version === 2
      ? '; refused forks reported at once (pids.events watched)'
      : '; refused forks reported within 200 ms (v1 pids.events read)';
  const fallback = names.includes('pids') ? '' : "; pids by RLIMIT_NPROC in the sandbox's own user namespace";
  const detail =
    names.length === 0
      ? `no cgroup for sandboxes (${missing.memory})${fallback}; memory and CPU of the whole sandbox are not held`
      : `sandbox cgroups hold ${names.join(', ')}: ${names.map((c) => `${c} ${controllers[c]}`).join('; ')}${
          names.length < 3 ? `; not held: ${Object.keys(missing).join(', ')}${fallback}` : ''
        }`;
  return {
    held: names,
    controllers,
    budgets,
    cpuSeconds,
    detail: `${detail}${pidsWatch}; CPU seconds (limits.cpu) by ${cpuSeconds}; kernel budgets per sandbox ${budgets ? 'on' : 'off (/proc/sys read-only)'}`,
  };
}

export function probeHost(): HostReport {
  const kernel = os.release();
  const addon = native();

  const maxUserNs = read('/proc/sys/user/max_user_namespaces');
  const debianClone = read('/proc/sys/kernel/unprivileged_userns_clone');
  const apparmorRestrict = read('/proc/sys/kernel/apparmor_restrict_unprivileged_userns');
  const cloneErr = addon.probeNamespaces();
  const errName = cloneErr === 0 ? '' : util.getSystemErrorName(-cloneErr);
  let userNsFix: string | undefined;
  if (maxUserNs === '0') userNsFix = 'sysctl -w user.max_user_namespaces=15000';
  else if (debianClone === '0') userNsFix = 'sysctl -w kernel.unprivileged_userns_clone=1';
  else if (apparmorRestrict === '1')
    userNsFix =
      'Ubuntu 23.10+ restricts unprivileged user namespaces with AppArmor: `stockade doctor --apparmor-profile | sudo tee /etc/apparmor.d/stockade-node && sudo apparmor_parser -r /etc/apparmor.d/stockade-node`, or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0';
  else if (cloneErr !== 0)
    userNsFix =
      'user, mount, pid and network namespaces must be enabled in the kernel (CONFIG_USER_NS, CONFIG_NET_NS, ...), and a container runtime must allow them';
  const userNamespaces: HostCheck = {
    ok: cloneErr === 0,
    detail:
      cloneErr === 0
        ? `clone() with user, mount, pid, net, ipc, uts, cgroup namespaces works (max_user_namespaces=${maxUserNs ?? '?'})`
        : `clone() failed with ${errName}`,
    fix: cloneErr === 0 ? undefined : userNsFix,
  };

  const actions = read('/proc/sys/kernel/seccomp/actions_avail') ?? '';
  const seccompOk = actions.includes('kill_process') && actions.includes('errno');
  const named = addon.seccompNotify();
  const seccomp: HostCheck = {
    ok: seccompOk,
    detail: seccompOk
      ? `seccomp filters available (${actions}); ${named ? 'violations are named (user_notif)' : 'violations are not named (no user_notif: Linux 5.0+)'}`
      : 'seccomp filter actions kill_process/errno missing',
    fix: seccompOk ? undefined : 'a kernel with CONFIG_SECCOMP_FILTER, 4.14 or newer',
  };

  const abi = addon.landlockAbi();
  const enforced: string[] = [];
  if (abi >= 2) {
    enforced.push('filesystem rules mirroring the mounts');
    if (abi >= 3) enforced.push('truncation');
    if (abi >= 4)
      enforced.push('TCP bind/connect by port (proxy mode: the proxy listeners and localPorts; none mode: localPorts when given)');
    if (abi >= 5) enforced.push('device ioctls');
    if (abi >= 6) enforced.push('signals and abstract unix sockets scoped to the sandbox');
    if (abi >= 7) enforced.push("denials logged to the kernel audit log while the host's audit is on");
  }
  const landlock = {
    ok: abi >= 2,
    abi,
    enforced,
    detail:
      abi >= 2
        ? `Landlock ABI ${abi}, enforced under the mounts: ${enforced.join(', ')}`
        : abi === 1
          ? 'Landlock ABI 1: not used (it cannot allow renames across directories; Linux 5.19+ has ABI 2)'
          : `Landlock unavailable (${util.getSystemErrorName(abi)}): sandboxes run without this second filesystem layer`,
    fix:
      abi >= 2 ? undefined : 'optional: Linux 5.19+ booted with Landlock among the LSMs (lsm=...,landlock) adds a second filesystem layer',
  };

  // Landlock's audit records (ABI 7): where they would come from, and why they are not events
  // (native/audit.cc). A note, never a failure: the denial itself does not depend on it.
  const audit = addon.auditProbe();
  const sysErr = (e: number) => util.getSystemErrorName(e);
  const enabledText =
    audit.enabled === 1
      ? 'enabled'
      : audit.enabled === 0
        ? 'disabled, so the kernel logs no Landlock denial'
        : audit.enabled === -111
          ? 'unknown (ECONNREFUSED: not in the initial user namespace)'
          : `unknown (AUDIT_GET: ${sysErr(audit.enabled)}; needs CAP_AUDIT_CONTROL)`;
  const readText = audit.readLog === 0 ? 'joinable' : `not joinable (${sysErr(audit.readLog)}; needs CAP_AUDIT_READ)`;
  const landlockAudit = {
    ok: false,
    auditEnabled: audit.enabled,
    readLog: audit.readLog,
    detail:
      abi >= 7
        ? `not violation events: Landlock ABI ${abi} logs denials to the kernel audit log only while the host's audit is on (here: ${enabledText}), and its read-only log is ${readText}; a denial is the EACCES/EPERM the payload sees (seccomp violations are named)`
        : `not violation events: Landlock ${abi >= 2 ? `ABI ${abi}` : ''} has no audit records before ABI 7 (Linux 6.15); a denial is the EACCES/EPERM the payload sees`.replace(
            '  ',
            ' ',
          ),
    fix: 'optional: where auditd runs, `ausearch -m 1423,1424` (LANDLOCK_ACCESS, LANDLOCK_DOMAIN) lists the denials and the domains (pid, exe) they belong to',
  };

  // cgroup v2 delegation: whether this process may make cgroups in the unified hierarchy (as root,
  // or in a subtree systemd delegated: user@UID.service, Delegate=yes), and what it offers.
  const unified = cgroupLayout().unified;
  const v2 = unified === undefined ? undefined : placement(unified, []);
  const offers = unified?.offers.length ? unified.offers.join(', ') : 'no memory, pids or cpu controller';
  const cgroupDelegation: HostCheck = {
    ok: v2?.ok === true,
    detail:
      unified === undefined
        ? 'no cgroup v2 hierarchy mounted'
        : v2?.ok
          ? `cgroup v2, ${unified.own} is writable (${offers})`
          : `cgroup v2, ${v2?.reason} (${offers})`,
    fix: v2?.ok ? undefined : 'optional: run under `systemd-run --user --scope -p Delegate=yes` for a delegated cgroup',
  };
  const limits = probeLimits();
  const limitsCheck: HostCheck = {
    ok: limits.held.length === 3,
    detail: limits.detail,
    fix:
      limits.held.length === 3
        ? undefined
        : 'optional: run as root, or under a delegated cgroup (`systemd-run --user --scope -p Delegate=yes stockade run ...`, or STOCKADE_CGROUP_PARENT naming a cgroup this user may write); without one, memory and CPU of the whole sandbox are not held (README: Resource limits)',
  };

  const apparmorEnabled = read('/sys/module/apparmor/parameters/enabled') === 'Y';
  const apparmor: HostCheck = {
    ok: apparmorRestrict !== '1' || cloneErr === 0,
    detail: !apparmorEnabled
      ? 'AppArmor not enabled'
      : `AppArmor enabled, apparmor_restrict_unprivileged_userns=${apparmorRestrict ?? 'absent'}`,
    fix: apparmorRestrict === '1' && cloneErr !== 0 ? userNsFix : undefined,
  };

  const versionOk = kernelAtLeast(kernel, 5, 12);
  const kernelVersion: HostCheck = {
    ok: versionOk,
    detail: `Linux ${kernel}`,
    fix: versionOk ? undefined : 'Linux 5.12 or newer is needed (pidfd, close_range, mount_setattr)',
  };

  return {
    kernel,
    arch: os.arch(),
    uid: process.getuid?.() ?? -1,
    ready: userNamespaces.ok && seccomp.ok && kernelVersion.ok,
    userNamespaces,
    seccomp,
    landlock,
    landlockAudit,
    cgroupDelegation,
    limitsCheck,
    limits,
    apparmor,
    kernelVersion,
  };
}
