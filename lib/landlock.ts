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

/** The Landlock part of the native plan, for the mounts of one sandbox. */
export function landlockPlan(mounts: readonly NativeMount[]): NativeLandlock {
  const rules = [{ path: '/', access: FS.readDir }];
  for (const m of mounts) {
    const access = rightsOf(m);
    if (access !== undefined) rules.push({ path: m.target, access });
  }
  return { handledFs: HANDLED, rules, scope: true, allowStdio: true };
}
