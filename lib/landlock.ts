// The Landlock rules of a sandbox (native/landlock.cc executes them), derived from its mount
// list so that the two layers cannot drift: what the mounts bind read-only is read-only to
// Landlock, what they bind read-write is read-write, the synthesized files are readable, the
// devices and /proc are what they must be, and nothing else is granted — beyond listing
// directories, which `ls /` needs and which reveals names, not contents.
import { MountKind, type NativeLandlock, type NativeMount } from './native';

/** LANDLOCK_ACCESS_FS_* (include/uapi/linux/landlock.h); the ABI that added each in comments. */
export const FS = {
  execute: 1 << 0,
  writeFile: 1 << 1,
  readFile: 1 << 2,
  readDir: 1 << 3,
  removeDir: 1 << 4,
  removeFile: 1 << 5,
  makeChar: 1 << 6,
  makeDir: 1 << 7,
  makeReg: 1 << 8,
  makeSock: 1 << 9,
  makeFifo: 1 << 10,
  makeBlock: 1 << 11,
  makeSym: 1 << 12,
  refer: 1 << 13, // ABI 2
  truncate: 1 << 14, // ABI 3
  ioctlDev: 1 << 15, // ABI 5
} as const;

/** LANDLOCK_ACCESS_NET_* (ABI 4): TCP only, by port. */
export const NET = { bindTcp: 1 << 0, connectTcp: 1 << 1 } as const;

/** The TCP ports a sandbox may connect() to and bind(), when Landlock handles TCP for it. */
export interface TcpRules {
  connect: number[];
  bind: number[];
}

/**
 * Which TCP ports Landlock (ABI 4) leaves open, by network mode (native/landlock.cc says why):
 * - proxy: connect() to the injected listeners and the declared local ports, bind() to the
 *   declared local ports. Every other port is EACCES, whatever the address.
 * - none: the same for the declared local ports; with none declared, TCP is left to the network
 *   namespace, which has only lo and nothing of ours listening on it — the payload's only TCP
 *   peer is itself, on ports it picks at run time (port 0, a browser's debugging port) that no
 *   rule can name in advance, and a connect() elsewhere is already ECONNREFUSED/ENETUNREACH.
 * - host: never (the explicit escape hatch; the user asked for the host's network).
 */
export function tcpRules(
  mode: 'none' | 'host' | 'proxy',
  listenerPorts: readonly number[],
  localPorts?: readonly number[],
): TcpRules | undefined {
  if (mode === 'host' || (mode === 'none' && localPorts === undefined)) return undefined;
  const bind = [...new Set(localPorts ?? [])].sort((a, b) => a - b);
  const connect = [...new Set([...listenerPorts, ...bind])].sort((a, b) => a - b);
  return { connect, bind };
}

/** Every right: all are handled, so each is denied unless a rule below grants it. */
const HANDLED = 0xffff;
const readOnlyDir = FS.execute | FS.readFile | FS.readDir;
/** Device nodes are neither made nor needed (nodev, no CAP_MKNOD), so MAKE_CHAR/BLOCK stay out. */
const readWriteDir =
  readOnlyDir |
  FS.writeFile |
  FS.truncate |
  FS.removeDir |
  FS.removeFile |
  FS.makeDir |
  FS.makeReg |
  FS.makeSock |
  FS.makeFifo |
  FS.makeSym |
  FS.refer;
const device = FS.readFile | FS.writeFile | FS.truncate | FS.ioctlDev;

/** The rights a mount grants beneath its target, or undefined for entries that need no rule. */
function rightsOf(m: NativeMount): number | undefined {
  switch (m.kind) {
    case MountKind.bind:
      // A bind of a file gets the file rights of these (native/landlock.cc narrows them).
      if (m.devices) return device;
      return m.readOnly === false ? readWriteDir : readOnlyDir;
    case MountKind.tmpfs:
      // /dev itself is a tmpfs only root inside could write: listing it is all the payload does.
      return m.target === '/dev' ? FS.readDir : readWriteDir;
    case MountKind.proc:
      // Writable files of the payload's own processes (/proc/self/oom_score_adj, comm, ...);
      // the masked and read-only parts are mounts over it, and procfs is mounted noexec.
      return FS.readFile | FS.writeFile | FS.readDir;
    case MountKind.devpts:
      return device | FS.readDir;
    case MountKind.file:
      return FS.readFile;
    default:
      // Symlinks (Landlock checks what they resolve to) and the masks under /proc (covered by the /proc rule, and read-only mounts anyway).
      return undefined;
  }
}

/** The Landlock part of the native plan, for the mounts of one sandbox and its TCP ports. */
export function landlockPlan(mounts: readonly NativeMount[], tcp?: TcpRules): NativeLandlock {
  const rules = [{ path: '/', access: FS.readDir }];
  for (const m of mounts) {
    const access = rightsOf(m);
    if (access !== undefined) rules.push({ path: m.target, access });
  }
  const plan: NativeLandlock = { handledFs: HANDLED, rules, scope: true, allowStdio: true };
  if (tcp !== undefined) {
    const ports = new Map<number, number>();
    for (const p of tcp.connect) ports.set(p, (ports.get(p) ?? 0) | NET.connectTcp);
    for (const p of tcp.bind) ports.set(p, (ports.get(p) ?? 0) | NET.bindTcp);
    plan.handledNet = NET.bindTcp | NET.connectTcp;
    plan.ports = [...ports].map(([port, access]) => ({ port, access }));
  }
  return plan;
}
