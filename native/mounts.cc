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
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"

namespace stockade {

// <linux/mount.h> clashes with glibc 2.36's <sys/mount.h>; these are the 5.12 ABI values.
namespace {
struct MountAttr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};
constexpr uint64_t kAttrRdonly = 0x1, kAttrNosuid = 0x2, kAttrNodev = 0x4;
constexpr int kAtRecursive = 0x8000;
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
}  // namespace

// Sets flags on the mount at `path` (and, with `recursive`, every mount below it). Adding flags
// is always permitted, so unlike MS_REMOUNT this never trips over flags the host locked.
// Kernels before 5.12 lack mount_setattr: fall back to a bind remount of the top mount, which
// must repeat the locked flags read by the parent with statvfs().
static int setMountFlags(const char* path, bool readOnly, bool recursive, uint32_t lockedFlags,
                         bool devices = false) {
  MountAttr attr = {};
  attr.attr_set = kAttrNosuid | (devices ? 0 : kAttrNodev) | (readOnly ? kAttrRdonly : 0);
  if (syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? kAtRecursive : 0, &attr,
              sizeof attr) == 0)
    return 0;
  if (errno != ENOSYS) return errno;
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (devices ? 0 : MS_NODEV) | lockedFlags;
  if (readOnly) flags |= MS_RDONLY;
  return mount(nullptr, path, nullptr, flags, nullptr) == 0 ? 0 : errno;
}

// mkdir -p of every parent of `path`, in place: '/' is replaced by NUL and restored.
static int makeParents(char* path) {
  for (char* p = path + 1; *p != '\0'; ++p) {
    if (*p != '/') continue;
    *p = '\0';
    int rc = mkdir(path, 0755);
    int err = errno;
    *p = '/';
    if (rc != 0 && err != EEXIST) return err;
  }
  return 0;
}

static int makeMountPoint(char* path, bool isDir) {
  if (int err = makeParents(path)) return err;
  if (isDir) return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : errno;
  struct stat st;
  if (stat(path, &st) == 0) return 0;  // e.g. inside a read-only bind, where O_CREAT fails
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
  if (fd < 0) return errno == EEXIST ? 0 : errno;
  close(fd);
  return 0;
}

static int writeFile(char* path, const std::string& content, uint32_t mode) {
  if (int err = makeParents(path)) return err;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return errno;
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return err;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  close(fd);
  return 0;
}

static bool exists(const char* path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static int applyMount(MountOp& op) {
  char* target = &op.target[0];
  constexpr unsigned long kQuiet = MS_NOSUID | MS_NODEV;
  switch (op.kind) {
    case MountOp::kBind:
      if (int err = makeMountPoint(target, op.sourceIsDir)) return err;
      if (mount(op.source.c_str(), target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return errno;
      return setMountFlags(target, op.readOnly, true, op.lockedFlags, op.devices);
    case MountOp::kTmpfs:
      if (int err = makeMountPoint(target, true)) return err;
      return mount("tmpfs", target, "tmpfs", kQuiet, op.data.c_str()) == 0 ? 0 : errno;
    case MountOp::kProc:
      if (int err = makeMountPoint(target, true)) return err;
      return mount("proc", target, "proc", kQuiet | MS_NOEXEC, nullptr) == 0 ? 0 : errno;
    case MountOp::kDevpts:
      // newinstance: a private pty namespace; no gid= option, as group 5 is not mapped.
      if (int err = makeMountPoint(target, true)) return err;
      return mount("devpts", target, "devpts", MS_NOSUID | MS_NOEXEC,
                   "newinstance,ptmxmode=0666,mode=0620") == 0
                 ? 0
                 : errno;
    case MountOp::kDir:
      if (int err = makeMountPoint(target, true)) return err;
      return chmod(target, op.mode) == 0 ? 0 : errno;
    case MountOp::kFile:
      return writeFile(target, op.data, op.mode);
    case MountOp::kSymlink:
      if (int err = makeParents(target)) return err;
      return symlink(op.source.c_str(), target) == 0 ? 0 : errno;
    case MountOp::kMaskFile:
      if (!exists(target)) return 0;
      if (mount("/oldroot/dev/null", target, nullptr, MS_BIND, nullptr) != 0) return errno;
      return setMountFlags(target, true, false, op.lockedFlags, true);  // reads as empty
    case MountOp::kMaskDir:
      if (!exists(target)) return 0;
      return mount("tmpfs", target, "tmpfs", kQuiet | MS_NOEXEC | MS_RDONLY, "mode=0555") == 0
                 ? 0
                 : errno;
    case MountOp::kReadOnly:
      if (!exists(target)) return 0;
      if (mount(target, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return errno;
      return setMountFlags(target, true, true, op.lockedFlags);
  }
  return EINVAL;
}

int buildRootInChild(Plan& plan, Step* step, int* index) {
  *step = Step::kMountPrivate;
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;

  *step = Step::kMountBase;
  if (mount("tmpfs", plan.baseDir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
    return errno;
  if (chdir(plan.baseDir.c_str()) != 0 || mkdir("newroot", 0755) != 0 ||
      mkdir("oldroot", 0755) != 0)
    return errno;

  *step = Step::kPivotBase;
  if (syscall(SYS_pivot_root, ".", "oldroot") != 0 || chdir("/") != 0) return errno;

  *step = Step::kMountRoot;
  if (mount("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, plan.rootOptions.c_str()) != 0)
    return errno;

  *step = Step::kMount;
  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    *index = static_cast<int>(i);
    if (int err = applyMount(plan.mounts[i])) return err;
  }
  *index = -1;

  *step = Step::kDetachOldRoot;
  if (umount2("/oldroot", MNT_DETACH) != 0) return errno;

  // pivot_root(".", ".") stacks the scratch tmpfs on top of newroot; detaching "." removes it
  // (man 2 pivot_root, NOTES), and no directory for the old root is needed inside.
  *step = Step::kPivotRoot;
  if (chdir("/newroot") != 0 || syscall(SYS_pivot_root, ".", ".") != 0 ||
      umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
    return errno;

  *step = Step::kRemountRoot;
  if (int err = setMountFlags("/", true, false, 0)) return err;

  *step = Step::kChdir;
  return chdir(plan.cwd.c_str()) == 0 ? 0 : errno;
}

}  // namespace stockade
