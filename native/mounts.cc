// mounts.cc — the sandbox's filesystem, built in the child's private mount namespace.
// man 2 mount, man 2 pivot_root, man 2 mount_setattr (5.12), man 7 mount_namespaces.
//
// The sequence follows bubblewrap: a scratch tmpfs on plan.baseDir holds newroot/ and
// oldroot/; the first pivot_root moves the host's root to /oldroot (so bind sources stay
// reachable as /oldroot/<path> even where the scratch tmpfs shadows them); the sandbox's tree is
// assembled under /newroot; procfs is mounted while the host's /proc is still visible (the kernel
// refuses a new proc mount in a user namespace otherwise); then the old root is detached, and a
// second pivot_root(".", ".") makes newroot the root, detaching the scratch tmpfs beneath it.
// Finally / itself is made read-only; only the tmpfs and read-write binds stay writable.
//
// Runs in the child, in the parent's address space: raw system calls only (syscall.h), and the
// plan is read-only here — mkdir -p works on a copy of the target on the child's stack.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "child.h"
#include "syscall.h"
#include "sysnums.h"

namespace stockade {

// <linux/mount.h> clashes with glibc 2.36's <sys/mount.h>; these are the 5.12 ABI values.
namespace {
struct MountAttr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};
constexpr uint64_t kAttrRdonly = 0x1, kAttrNosuid = 0x2, kAttrNodev = 0x4;
constexpr int kAtRecursive = 0x8000;

int mountIn(const char* source, const char* target, const char* type, unsigned long flags,
            const void* data) {
  return sysError(sys(SYS_mount, source, target, type, flags, data));
}

int mkdirIn(const char* path, mode_t mode) {
  return sysError(sys(SYS_mkdirat, AT_FDCWD, path, mode));
}

int chdirIn(const char* path) {
  return sysError(sys(SYS_chdir, path));
}

// A path from the plan, copied to the child's stack so that mkdir -p can cut it at each '/'.
// The plan's own string is the parent's memory (CLONE_VM): writing there would change the
// parent's Plan, and a child killed halfway would leave it cut.
struct PathCopy {
  char path[PATH_MAX];
  int err = 0;
  explicit PathCopy(const std::string& from) {
    if (from.size() >= sizeof path) {
      err = ENAMETOOLONG;
      path[0] = '\0';
      return;
    }
    memcpy(path, from.data(), from.size());
    path[from.size()] = '\0';
  }
};
}  // namespace

// Sets flags on the mount at `path` (and, with `recursive`, every mount below it). Adding flags
// is always permitted, so unlike MS_REMOUNT this never trips over flags the host locked.
// Kernels before 5.12 lack mount_setattr: fall back to a bind remount of the top mount, which
// must repeat the locked flags read by the parent with statvfs().
static int setMountFlags(const char* path, bool readOnly, bool recursive, uint32_t lockedFlags,
                         bool devices = false) {
  MountAttr attr = {};
  attr.attr_set = kAttrNosuid | (devices ? 0 : kAttrNodev) | (readOnly ? kAttrRdonly : 0);
  int err = sysError(
      sys(SYS_mount_setattr, AT_FDCWD, path, recursive ? kAtRecursive : 0, &attr, sizeof attr));
  if (err != ENOSYS) return err;
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (devices ? 0 : MS_NODEV) | lockedFlags;
  if (readOnly) flags |= MS_RDONLY;
  return mountIn(nullptr, path, nullptr, flags, nullptr);
}

// mkdir -p of every parent of `path`, in place: '/' is replaced by NUL and restored. `path` is
// the child's own copy (PathCopy).
static int makeParents(char* path) {
  for (char* p = path + 1; *p != '\0'; ++p) {
    if (*p != '/') continue;
    *p = '\0';
    int err = mkdirIn(path, 0755);
    *p = '/';
    if (err != 0 && err != EEXIST) return err;
  }
  return 0;
}

static int makeMountPoint(char* path, bool isDir) {
  if (int err = makeParents(path)) return err;
  if (isDir) {
    int err = mkdirIn(path, 0755);
    return err == EEXIST ? 0 : err;
  }
  struct stat st;
  if (sys(SYS_newfstatat, AT_FDCWD, path, &st, 0) == 0)
    return 0;  // e.g. inside a read-only bind, where O_CREAT fails
  long fd = sys(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
  if (fd < 0) return sysError(fd) == EEXIST ? 0 : sysError(fd);
  sys(SYS_close, fd);
  return 0;
}

static int writeFile(char* path, const std::string& content, uint32_t mode) {
  if (int err = makeParents(path)) return err;
  long fd =
      sys(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return sysError(fd);
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    long n = sys(SYS_write, fd, p, left);
    if (n < 0) {
      if (n == -EINTR) continue;
      sys(SYS_close, fd);
      return sysError(n);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  sys(SYS_close, fd);
  return 0;
}

static bool exists(const char* path) {
  struct stat st;
  return sys(SYS_newfstatat, AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int applyMount(const MountOp& op) {
  PathCopy copy(op.target);
  if (copy.err != 0) return copy.err;
  char* target = copy.path;
  constexpr unsigned long kQuiet = MS_NOSUID | MS_NODEV;
  switch (op.kind) {
    case MountOp::kBind:
      if (int err = makeMountPoint(target, op.sourceIsDir)) return err;
      if (int err = mountIn(op.source.c_str(), target, nullptr, MS_BIND | MS_REC, nullptr))
        return err;
      return setMountFlags(target, op.readOnly, true, op.lockedFlags, op.devices);
    case MountOp::kTmpfs:
      if (int err = makeMountPoint(target, true)) return err;
      return mountIn("tmpfs", target, "tmpfs", kQuiet, op.data.c_str());
    case MountOp::kProc:
      if (int err = makeMountPoint(target, true)) return err;
      return mountIn("proc", target, "proc", kQuiet | MS_NOEXEC, nullptr);
    case MountOp::kDevpts:
      // newinstance: a private pty namespace; no gid= option, as group 5 is not mapped.
      if (int err = makeMountPoint(target, true)) return err;
      return mountIn("devpts", target, "devpts", MS_NOSUID | MS_NOEXEC,
                     "newinstance,ptmxmode=0666,mode=0620");
    case MountOp::kDir:
      if (int err = makeMountPoint(target, true)) return err;
      return sysError(sys(SYS_fchmodat, AT_FDCWD, target, op.mode, 0));
    case MountOp::kFile:
      return writeFile(target, op.data, op.mode);
    case MountOp::kSymlink:
      if (int err = makeParents(target)) return err;
      return sysError(sys(SYS_symlinkat, op.source.c_str(), AT_FDCWD, target));
    case MountOp::kMaskFile:
      if (!exists(target)) return 0;
      if (int err = mountIn("/oldroot/dev/null", target, nullptr, MS_BIND, nullptr)) return err;
      return setMountFlags(target, true, false, op.lockedFlags, true);  // reads as empty
    case MountOp::kMaskDir:
      if (!exists(target)) return 0;
      return mountIn("tmpfs", target, "tmpfs", kQuiet | MS_NOEXEC | MS_RDONLY, "mode=0555");
    case MountOp::kReadOnly:
      if (!exists(target)) return 0;
      if (int err = mountIn(target, target, nullptr, MS_BIND | MS_REC, nullptr)) return err;
      return setMountFlags(target, true, true, op.lockedFlags);
  }
  return EINVAL;
}

int buildRootInChild(const Plan& plan, Step* step, int* index) {
  *step = Step::kMountPrivate;
  if (int err = mountIn(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) return err;

  *step = Step::kMountBase;
  if (int err = mountIn("tmpfs", plan.baseDir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"))
    return err;
  if (int err = chdirIn(plan.baseDir.c_str())) return err;
  if (int err = mkdirIn("newroot", 0755)) return err;
  if (int err = mkdirIn("oldroot", 0755)) return err;

  *step = Step::kPivotBase;
  if (int err = sysError(sys(SYS_pivot_root, ".", "oldroot"))) return err;
  if (int err = chdirIn("/")) return err;

  *step = Step::kMountRoot;
  if (int err =
          mountIn("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, plan.rootOptions.c_str()))
    return err;

  *step = Step::kMount;
  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    *index = static_cast<int>(i);
    if (int err = applyMount(plan.mounts[i])) return err;
  }
  *index = -1;

  *step = Step::kDetachOldRoot;
  if (int err = sysError(sys(SYS_umount2, "/oldroot", MNT_DETACH))) return err;

  // pivot_root(".", ".") stacks the scratch tmpfs on top of newroot; detaching "." removes it
  // (man 2 pivot_root, NOTES), and no directory for the old root is needed inside.
  *step = Step::kPivotRoot;
  if (int err = chdirIn("/newroot")) return err;
  if (int err = sysError(sys(SYS_pivot_root, ".", "."))) return err;
  if (int err = sysError(sys(SYS_umount2, ".", MNT_DETACH))) return err;
  if (int err = chdirIn("/")) return err;

  *step = Step::kRemountRoot;
  if (int err = setMountFlags("/", true, false, 0)) return err;

  *step = Step::kChdir;
  return chdirIn(plan.cwd.c_str());
}

}  // namespace stockade
