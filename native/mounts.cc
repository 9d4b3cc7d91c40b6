// mounts.cc — the sandbox's filesystem, built in the child's private mount namespace, and the
// idmapped mounts a host-root parent prepares for it.
// man 2 mount, man 2 pivot_root, man 2 open_tree and move_mount (5.2), man 2 openat2 (5.6),
// man 2 mount_setattr (5.12; MOUNT_ATTR_IDMAP), man 7 mount_namespaces.
//
// The sequence follows bubblewrap: a scratch tmpfs on plan.baseDir holds newroot/ and
// oldroot/; the first pivot_root moves the host's root to /oldroot (so bind sources stay
// reachable beneath /oldroot even where the scratch tmpfs shadows them); the sandbox's tree is
// assembled under /newroot; procfs is mounted while the host's /proc is still visible (the kernel
// refuses a new proc mount in a user namespace otherwise); then the old root is detached, and a
// second pivot_root(".", ".") makes newroot the root, detaching the scratch tmpfs beneath it.
// Finally / itself is made read-only; only the tmpfs and read-write binds stay writable.
//
// The host side is hostile territory: a payload can leave symlinks, renamed directories, FIFOs
// and sockets in whatever it could write, and wait for the next start. So no path is ever
// handed to the kernel as a string to resolve:
// - a bind's source is opened beneath the old root with openat2(RESOLVE_NO_SYMLINKS |
//   RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH) — per component with O_NOFOLLOW before 5.6 — and
//   bound *from that fd* (open_tree(OPEN_TREE_CLONE) + move_mount), so what is bound is exactly
//   what was checked;
// - a target is walked from an fd of /newroot component by component with O_NOFOLLOW; missing
//   components are made only where the plan says the target lies on the sandbox's own tmpfs
//   (createTarget). Under a host bind nothing is created: setup never writes a host directory;
// - synthesized files (/etc, the CA bundle, secret files, the fetch preload) are written to the
//   scratch tmpfs and that file is bound read-only over the target (bubblewrap's
//   --ro-bind-data), so their content never lands in a host directory, and mountinfo names a
//   file of a tmpfs, not a host path;
// - tmpfs, proc and devpts are mounted on "." after fchdir() to the walked target fd.
//
// Runs in the child, in the parent's address space: raw system calls only (syscall.h), and the
// plan is read-only here — a walk works on a copy of the path on the child's stack.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "syscall.h"
#include "sysnums.h"

namespace stockade {

// <linux/mount.h> and <linux/openat2.h> clash with glibc 2.36's headers; these are the ABI values.
namespace {
struct MountAttr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};
struct OpenHow {
  uint64_t flags, mode, resolve;
};
constexpr uint64_t kAttrRdonly = 0x1, kAttrNosuid = 0x2, kAttrNodev = 0x4;
constexpr uint64_t kAttrIdmap = 0x00100000;  // 5.12
constexpr int kAtRecursive = 0x8000;
constexpr int kOpenTreeClone = 1;
constexpr int kMoveFromEmptyPath = 0x4, kMoveToEmptyPath = 0x40;
constexpr uint64_t kResolveNoMagiclinks = 0x02, kResolveNoSymlinks = 0x04, kResolveBeneath = 0x08;

int mountIn(const char* source, const char* target, const char* type, unsigned long flags,
            const void* data) {
  return sysError(sys(SYS_mount, source, target, type, flags, data));
}

int chdirIn(const char* path) {
  return sysError(sys(SYS_chdir, path));
}

void closeIn(long fd) {
  if (fd >= 0) sys(SYS_close, fd);
}

// An fd the child owns for the length of a scope (raw close, no allocation).
struct ScopedFd {
  long fd;
  explicit ScopedFd(long value) : fd(value) {}
  ~ScopedFd() { closeIn(fd); }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int err() const { return sysError(fd); }
};

// A path from the plan, copied to the child's stack so that a walk can cut it at each '/'.
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

long statMode(long fd, mode_t* mode) {
  struct stat st;
  long rc = sys(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH);
  if (rc == 0) *mode = st.st_mode;
  return rc;
}

enum class Leaf { kDir, kNonDir, kAny };

// Refuses what the walk below refuses: ELOOP for a symlink, ENOTDIR or EISDIR for the wrong
// kind of leaf; 0 if `mode` may be the leaf.
long refuseLeaf(mode_t mode, bool wantDir, Leaf leaf) {
  if (S_ISLNK(mode)) return -ELOOP;
  if (wantDir && !S_ISDIR(mode)) return -ENOTDIR;
  if (leaf == Leaf::kNonDir && S_ISDIR(mode)) return -EISDIR;
  return 0;
}

bool hasDotComponent(const std::string& path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    size_t n = end - start;
    if ((n == 1 || n == 2) && path.compare(start, n, n == 1 ? "." : "..") == 0) return true;
    start = end + 1;
  }
  return false;
}

// One component of a walk: `name` opened beneath `dir` with O_PATH|O_NOFOLLOW (a symlink is
// opened as itself and refused, ELOOP; "." and ".." are refused, EINVAL), made first where it
// is missing and `create` allows — a directory (0755), or for a kNonDir leaf an empty file
// (0444). An fd of it, or -errno; `dir` stays open. A leaf to create is usually missing (the
// sandbox's tmpfs is fresh), so it is made before it is looked for: a file made with O_EXCL is
// the leaf itself, and its fd the target, in one system call instead of five.
long stepInto(long dir, const char* name, bool last, bool create, Leaf leaf) {
  if ((name[0] == '.' && name[1] == '\0') || (name[0] == '.' && name[1] == '.' && name[2] == '\0'))
    return -EINVAL;
  bool wantDir = !last || leaf == Leaf::kDir;
  bool make = create && (wantDir || leaf == Leaf::kNonDir);
  if (make && last && !wantDir) {
    long made =
        sys(SYS_openat, dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (made != -EEXIST) return made;  // the new file's fd, or a failure
  } else if (make && last) {
    long made = sys(SYS_mkdirat, dir, name, 0755);
    if (made < 0 && made != -EEXIST) return made;
  }
  long fd = sys(SYS_openat, dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd == -ENOENT && make && !last) {
    long made = sys(SYS_mkdirat, dir, name, 0755);
    if (made < 0 && made != -EEXIST) return made;
    fd = sys(SYS_openat, dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd < 0) return fd;
  mode_t mode = 0;
  long rc = statMode(fd, &mode);
  if (rc == 0) rc = refuseLeaf(mode, wantDir, last ? leaf : Leaf::kDir);
  if (rc < 0) {
    closeIn(fd);
    return rc;
  }
  return fd;
}

// Opens `path` (absolute, read beneath `root`) one component at a time (stepInto). With
// `create`, missing components are made, which the plan asks for only on the sandbox's own
// tmpfs. Returns an O_PATH fd of the last component, or -errno. Raw system calls only: used by
// the child and, for the fallback before openat2, by the parent.
long walkNoFollow(long root, const std::string& path, bool create, Leaf leaf) {
  PathCopy copy(path);
  if (copy.err != 0) return -copy.err;
  char* p = copy.path;
  while (*p == '/') ++p;
  long dir = sys(SYS_openat, root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  while (dir >= 0 && *p != '\0') {
    char* end = p;
    while (*end != '\0' && *end != '/') ++end;
    char* next = end;
    while (*next == '/') ++next;
    *end = '\0';
    long fd = stepInto(dir, p, *next == '\0', create, leaf);
    closeIn(dir);
    dir = fd;
    p = next;
  }
  return dir;
}

// walkNoFollow's result for a path that exists, in one openat2 (5.6) and one fstat, where the
// walk costs three system calls per component: the same refusals, as RESOLVE_NO_SYMLINKS fails
// on a symlink in the middle (ELOOP) and opens a trailing one as itself (O_NOFOLLOW), which
// refuseLeaf refuses, and "." and ".." are refused before (EINVAL). Kernels without openat2
// take the walk.
long openExisting(long root, const std::string& path, Leaf leaf) {
  if (hasDotComponent(path)) return -EINVAL;
  const char* rel = path.c_str();
  while (*rel == '/') ++rel;
  if (*rel == '\0') return walkNoFollow(root, path, false, leaf);
  OpenHow how = {O_PATH | O_NOFOLLOW | O_CLOEXEC, 0,
                 kResolveNoSymlinks | kResolveNoMagiclinks | kResolveBeneath};
  long fd = sys(SYS_openat2, root, rel, &how, sizeof how);
  if (fd == -ENOSYS || fd == -EAGAIN) return walkNoFollow(root, path, false, leaf);
  if (fd < 0) return fd;
  mode_t mode = 0;
  long rc = statMode(fd, &mode);
  if (rc == 0) rc = refuseLeaf(mode, leaf == Leaf::kDir, leaf);
  if (rc < 0) {
    closeIn(fd);
    return rc;
  }
  return fd;
}

// A mount target (walkNoFollow's result) with as few system calls as it takes: a sandbox's root
// has some 45 targets. One that must exist (a mask over /proc, a deny rule) is opened at once
// (openExisting); one to create, usually in a directory an earlier target made, is made in its
// parent opened at once, and only where the parent is missing too is the path walked.
long openNoFollow(long root, const std::string& path, bool create, Leaf leaf) {
  if (!create) return openExisting(root, path, leaf);
  PathCopy copy(path);
  if (copy.err != 0) return -copy.err;
  char* slash = strrchr(copy.path, '/');
  if (slash == nullptr || slash == copy.path || slash[1] == '\0')
    return walkNoFollow(root, path, create, leaf);
  *slash = '\0';
  long parent = openExisting(root, copy.path, Leaf::kDir);
  if (parent == -ENOENT) return walkNoFollow(root, path, create, leaf);
  if (parent < 0) return parent;
  long fd = stepInto(parent, slash + 1, true, create, leaf);
  closeIn(parent);
  return fd;
}

// A host path, opened beneath `root` (the old root in the child, / in the parent) without
// following any symlink, as an O_PATH fd; -errno otherwise (ELOOP: a symlink on the way).
long openHostPath(long root, const std::string& path) {
  const char* rel = path.c_str();
  while (*rel == '/') ++rel;
  OpenHow how = {O_PATH | O_NOFOLLOW | O_CLOEXEC, 0,
                 kResolveNoSymlinks | kResolveNoMagiclinks | kResolveBeneath};
  long fd = *rel == '\0' ? -EINVAL : sys(SYS_openat2, root, rel, &how, sizeof how);
  if (fd == -ENOSYS) return walkNoFollow(root, path, false, Leaf::kAny);  // before 5.6
  if (fd < 0) return fd;
  mode_t mode = 0;
  long rc = statMode(fd, &mode);
  if (rc == 0 && S_ISLNK(mode)) rc = -ELOOP;  // the last component, opened as itself
  if (rc < 0) {
    closeIn(fd);
    return rc;
  }
  return fd;
}

uint64_t bindAttrs(bool readOnly, bool devices) {
  return kAttrNosuid | (devices ? 0 : kAttrNodev) | (readOnly ? kAttrRdonly : 0);
}

// A detached copy of the tree at `source` (recursive: submounts come along). On a detached
// mount, mount_setattr applies the flags before anything can see the mount; AT_RECURSIVE makes
// submounts read-only too.
long cloneTree(long source, uint64_t attrs, int usernsFd = -1) {
  long mnt =
      sys(SYS_open_tree, source, "", AT_EMPTY_PATH | kOpenTreeClone | O_CLOEXEC | kAtRecursive);
  if (mnt < 0) return mnt;
  MountAttr attr = {attrs, 0, 0, 0};
  if (usernsFd >= 0) {
    attr.attr_set |= kAttrIdmap;
    attr.userns_fd = static_cast<uint64_t>(usernsFd);
  }
  long rc = sys(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH | kAtRecursive, &attr, sizeof attr);
  if (rc < 0) {
    closeIn(mnt);
    return rc;
  }
  return mnt;
}

int attach(long mnt, long target) {
  return sysError(sys(SYS_move_mount, mnt, "", target, "", kMoveFromEmptyPath | kMoveToEmptyPath));
}

int bindFd(long source, long target, uint64_t attrs) {
  ScopedFd mnt(cloneTree(source, attrs));
  if (int err = mnt.err()) return err;
  return attach(mnt.fd, target);
}

// mount(2) onto the walked target itself: fchdir there and mount on ".", which the kernel
// does not resolve any further.
int mountOn(long target, const char* source, const char* type, unsigned long flags,
            const char* data) {
  if (int err = sysError(sys(SYS_fchdir, target))) return err;
  return mountIn(source, ".", type, flags, data);
}

// "f<index>" on the scratch tmpfs: the synthesized file of mount entry `index`.
void scratchName(int index, char (&name)[16]) {
  char digits[12];
  int n = 0;
  unsigned value = static_cast<unsigned>(index);
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && n < 11);
  name[0] = 'f';
  for (int i = 0; i < n; ++i) name[1 + i] = digits[n - 1 - i];
  name[1 + n] = '\0';
}

// Writes `content` to a new file of the scratch tmpfs (never reachable from inside) and returns
// an O_PATH fd of it, or -errno.
long writeScratchFile(long scratch, int index, const std::string& content, uint32_t mode) {
  char name[16];
  scratchName(index, name);
  long fd =
      sys(SYS_openat, scratch, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return fd;
  const char* p = content.data();
  size_t left = content.size();
  long rc = 0;
  while (left > 0 && rc >= 0) {
    rc = sys(SYS_write, fd, p, left);
    if (rc == -EINTR) {
      rc = 0;
      continue;
    }
    if (rc > 0) {
      p += rc;
      left -= static_cast<size_t>(rc);
    }
  }
  if (rc >= 0) rc = sys(SYS_fchmod, fd, mode);  // exact mode, whatever the umask
  closeIn(fd);
  if (rc < 0) return rc;
  return sys(SYS_openat, scratch, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

// symlink(op.source) at op.target: the parent directory is walked like any target.
int makeSymlink(long newroot, const MountOp& op) {
  PathCopy copy(op.target);
  if (copy.err != 0) return copy.err;
  char* slash = strrchr(copy.path, '/');
  if (slash == nullptr || slash[1] == '\0') return EINVAL;
  *slash = '\0';
  ScopedFd parent(
      openNoFollow(newroot, copy.path[0] == '\0' ? "/" : copy.path, op.createTarget, Leaf::kDir));
  if (int err = parent.err()) return err;
  return sysError(sys(SYS_symlinkat, op.source.c_str(), parent.fd, slash + 1));
}

struct Roots {
  long scratch, newroot, oldroot;
};

int applyMount(const MountOp& op, int index, long prepared, const Roots& roots) {
  constexpr unsigned long kQuiet = MS_NOSUID | MS_NODEV;
  switch (op.kind) {
    case MountOp::kBind: {
      ScopedFd source(prepared >= 0 ? -EBADF : openHostPath(roots.oldroot, op.source));
      long from = prepared >= 0 ? prepared : source.fd;
      if (from < 0) return sysError(from);
      mode_t mode = 0;
      if (int err = sysError(statMode(from, &mode))) return err;
      ScopedFd target(openNoFollow(roots.newroot, op.target, op.createTarget,
                                   S_ISDIR(mode) ? Leaf::kDir : Leaf::kNonDir));
      if (int err = target.err()) return err;
      // A prepared (idmapped) mount already carries its flags: set by the parent, which alone
      // may idmap a host filesystem.
      if (prepared >= 0) return attach(prepared, target.fd);
      return bindFd(source.fd, target.fd, bindAttrs(op.readOnly, op.devices));
    }
    case MountOp::kTmpfs: {
      ScopedFd target(openNoFollow(roots.newroot, op.target, op.createTarget, Leaf::kDir));
      if (int err = target.err()) return err;
      return mountOn(target.fd, "tmpfs", "tmpfs", kQuiet, op.data.c_str());
    }
    case MountOp::kProc: {
      ScopedFd target(openNoFollow(roots.newroot, op.target, op.createTarget, Leaf::kDir));
      if (int err = target.err()) return err;
      return mountOn(target.fd, "proc", "proc", kQuiet | MS_NOEXEC, nullptr);
    }
    case MountOp::kDevpts: {
      // newinstance: a private pty namespace; no gid= option, as group 5 is not mapped.
      ScopedFd target(openNoFollow(roots.newroot, op.target, op.createTarget, Leaf::kDir));
      if (int err = target.err()) return err;
      return mountOn(target.fd, "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
                     "newinstance,ptmxmode=0666,mode=0620");
    }
    case MountOp::kFile: {
      ScopedFd source(writeScratchFile(roots.scratch, index, op.data, op.mode));
      if (int err = source.err()) return err;
      ScopedFd target(openNoFollow(roots.newroot, op.target, op.createTarget, Leaf::kNonDir));
      if (int err = target.err()) return err;
      return bindFd(source.fd, target.fd, bindAttrs(true, false));
    }
    case MountOp::kSymlink:
      return makeSymlink(roots.newroot, op);
    case MountOp::kMaskFile: {
      ScopedFd target(openNoFollow(roots.newroot, op.target, false, Leaf::kNonDir));
      if (target.fd == -ENOENT) return 0;
      if (int err = target.err()) return err;
      ScopedFd null(openHostPath(roots.oldroot, "/dev/null"));
      if (int err = null.err()) return err;
      return bindFd(null.fd, target.fd, bindAttrs(true, true));  // reads as empty
    }
    case MountOp::kMaskDir: {
      ScopedFd target(openNoFollow(roots.newroot, op.target, false, Leaf::kDir));
      if (target.fd == -ENOENT) return 0;
      if (int err = target.err()) return err;
      return mountOn(target.fd, "tmpfs", "tmpfs", kQuiet | MS_NOEXEC | MS_RDONLY, "mode=0555");
    }
    case MountOp::kReadOnly: {
      ScopedFd target(openNoFollow(roots.newroot, op.target, false, Leaf::kDir));
      if (target.fd == -ENOENT) return 0;
      if (int err = target.err()) return err;
      return bindFd(target.fd, target.fd, bindAttrs(true, false));
    }
  }
  return EINVAL;
}

}  // namespace

int prepareMountsFromParent(const Plan& plan, Prepared& prep, int* index) {
  prep.mountFds.assign(plan.mounts.size(), -1);
  int userns = -1;
  ScopedFd root(-1);
  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    const MountOp& op = plan.mounts[i];
    if (op.kind != MountOp::kBind || !op.idmap) continue;
    *index = static_cast<int>(i);
    // Only the initial user namespace's root may idmap a host filesystem (the superblock
    // belongs to it), so this cannot be done by the child.
    if (!prep.hostRoot) return EPERM;
    if (userns < 0) {
      if (int err = openIdmapUsernsFromParent(plan, &userns)) return err;
      root.fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (root.fd < 0) {
        close(userns);
        return errno;
      }
    }
    long source = openHostPath(root.fd, op.source);
    if (source < 0) {
      close(userns);
      return sysError(source);
    }
    long mnt = cloneTree(source, bindAttrs(op.readOnly, op.devices), userns);
    close(static_cast<int>(source));
    if (mnt < 0) {
      close(userns);
      return sysError(mnt);
    }
    prep.mountFds[i] = static_cast<int>(mnt);
  }
  if (userns >= 0) close(userns);
  *index = -1;
  return 0;
}

int buildRootInChild(const Plan& plan, const Prepared& prep, Step* step, int* index) {
  *step = Step::kMountPrivate;
  if (int err = mountIn(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) return err;

  *step = Step::kMountBase;
  if (int err = mountIn("tmpfs", plan.baseDir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"))
    return err;
  if (int err = chdirIn(plan.baseDir.c_str())) return err;
  if (int err = sysError(sys(SYS_mkdirat, AT_FDCWD, "newroot", 0755))) return err;
  if (int err = sysError(sys(SYS_mkdirat, AT_FDCWD, "oldroot", 0755))) return err;

  *step = Step::kPivotBase;
  if (int err = sysError(sys(SYS_pivot_root, ".", "oldroot"))) return err;
  if (int err = chdirIn("/")) return err;

  *step = Step::kMountRoot;
  if (int err =
          mountIn("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, plan.rootOptions.c_str()))
    return err;

  *step = Step::kMount;
  {
    ScopedFd scratch(sys(SYS_openat, AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    ScopedFd newroot(sys(SYS_openat, AT_FDCWD, "/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC));
    ScopedFd oldroot(sys(SYS_openat, AT_FDCWD, "/oldroot", O_PATH | O_DIRECTORY | O_CLOEXEC));
    for (long fd : {scratch.fd, newroot.fd, oldroot.fd})
      if (int err = sysError(fd)) return err;
    Roots roots = {scratch.fd, newroot.fd, oldroot.fd};
    for (size_t i = 0; i < plan.mounts.size(); ++i) {
      *index = static_cast<int>(i);
      long prepared = i < prep.mountFds.size() ? prep.mountFds[i] : -1;
      if (int err = applyMount(plan.mounts[i], *index, prepared, roots)) return err;
    }
    *index = -1;
  }  // no fd of the old root survives its detachment

  // pivot_root(".", ".") stacks the scratch tmpfs, with the host's tree beneath it on
  // /oldroot, on top of newroot, and no directory for the old root is needed inside; detaching
  // "." then removes both in one umount2 (man 2 pivot_root, NOTES; MNT_DETACH takes the whole
  // subtree). One, not one per tree: each umount2 waits for an RCU grace period
  // (namespace_unlock), 0.1 to 1 ms on a 2-core VM. The binds of synthesized files keep their
  // own reference to the scratch tmpfs.
  *step = Step::kPivotRoot;
  if (int err = chdirIn("/newroot")) return err;
  if (int err = sysError(sys(SYS_pivot_root, ".", "."))) return err;
  *step = Step::kDetachOldRoot;
  if (int err = sysError(sys(SYS_umount2, ".", MNT_DETACH))) return err;
  if (int err = chdirIn("/")) return err;

  *step = Step::kRemountRoot;
  MountAttr attr = {kAttrRdonly | kAttrNosuid | kAttrNodev, 0, 0, 0};
  if (int err = sysError(sys(SYS_mount_setattr, AT_FDCWD, "/", 0, &attr, sizeof attr))) return err;

  *step = Step::kChdir;
  return chdirIn(plan.cwd.c_str());
}

}  // namespace stockade
