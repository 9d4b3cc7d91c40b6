// hostscan.cc — the check that a host directory about to be granted holds no unix socket or
// FIFO (lib/hostpath.ts findSocketOrFifo). A read-only bind stops neither connect() to a socket
// nor a write to a FIFO (the kernel applies MNT_READONLY to regular files, directories and
// symlinks only), so a grant holding one (docker.sock, $XDG_RUNTIME_DIR) reaches a host
// service. man 3 readdir, man 2 openat, man 7 unix, man 7 fifo.
//
// Why native: a granted node_modules is some 15,000 entries in 1,500 directories, and reading
// them with fs.readdirSync (a Dirent and a joined path string per entry) took ~45 ms of every
// `stockade run` that granted it; this walk makes one openat and a few getdents64 per
// directory and builds a path only for the directories it enters.
//
// The walk runs on the calling thread, with the host's view, as the launcher's user: depth
// first, each directory opened relative to its parent's fd with O_NOFOLLOW | O_DIRECTORY, so a
// symlink planted anywhere below the root (by a payload that had it read-write) is not followed:
// inside the sandbox it points into the sandbox's own view, not the host's. It descends into
// submounts, as the bind takes them along (AT_RECURSIVE). Entry types come from d_type; a file
// system that leaves it DT_UNKNOWN gets a statx (AT_SYMLINK_NOFOLLOW) per entry.
//
// What cannot be looked at is handled as fs.readdirSync was: a directory the launcher may not
// read (EACCES, EPERM) is skipped, since the sandbox, with less privilege, cannot list it
// either; one that vanished or became something else since it was listed (ENOENT, ENOTDIR,
// ELOOP) is looked at again as an entry. Anything else (EMFILE, EIO, ENOMEM...) ends the scan
// with that errno, and the caller refuses the grant: what was not looked at may hold one.
#include "hostscan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>
#include <vector>

namespace stockade {
namespace {

// One open directory per level: bounded so that a hostile tree (a payload can nest directories
// in its read-write grant for the next start) cannot exhaust the launcher's fds or memory.
constexpr size_t kMaxDepth = 512;  // lib/hostpath.ts MAX_SCAN_DEPTH

// getdents64 straight into a buffer of its own per level (no fdopendir, which adds an fcntl
// and an fstat per directory: a quarter of the walk's system calls).
constexpr size_t kBufferSize = 32 * 1024;

struct linux_dirent64 {
  ino64_t d_ino;
  off64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

struct Level {
  int fd = -1;
  size_t pathLength = 0;   // of the walk's path when this directory was entered
  size_t at = 0, end = 0;  // the unread part of buffer
  std::unique_ptr<char[]> buffer;
};

// The type of `name` below `dir`, not following a final symlink, or -1 (errno set). statx, not
// lstat or fstatat: glibc 2.33 made those symbols of its own, past the prebuilt addon's glibc
// 2.28 floor (scripts/check-prebuilds.js).
int typeAt(int dir, const char* name) {
  struct statx stx;
  if (statx(dir, name, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) != 0) return -1;
  return stx.stx_mode & S_IFMT;
}

SpecialKind kindOf(int mode) {
  if (S_ISSOCK(mode)) return SpecialKind::socket;
  if (S_ISFIFO(mode)) return SpecialKind::fifo;
  return SpecialKind::none;
}

bool unreadable(int err) {
  return err == EACCES || err == EPERM;
}

// The entry changed between getdents64 and the open: it is no longer a directory here.
bool changed(int err) {
  return err == ENOENT || err == ENOTDIR || err == ELOOP;
}

}  // namespace

SpecialScan findSpecialFileOnHost(const std::string& root, size_t limit) {
  SpecialScan out;
  int rootType = typeAt(AT_FDCWD, root.c_str());
  if (rootType < 0) {
    out.err = errno;
    out.path = root;
    return out;
  }
  out.kind = kindOf(rootType);
  if (out.kind != SpecialKind::none) {
    out.path = root;
    return out;
  }
  if (!S_ISDIR(rootType)) return out;
  int top = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (top < 0) {
    if (!unreadable(errno) && !changed(errno)) {
      out.err = errno;
      out.path = root;
    }
    return out;
  }

  // levels[0..depth) are open; a Level's buffer is kept for the next directory at its depth.
  std::vector<Level> levels(1);
  size_t depth = 1;
  levels[0].fd = top;
  levels[0].pathLength = root.size();
  levels[0].buffer.reset(new char[kBufferSize]);
  std::string path = root;
  size_t seen = 0;
  auto fail = [&](int err) {
    out.err = err;
    out.path = path;
  };
  while (depth > 0 && out.err == 0 && out.kind == SpecialKind::none) {
    Level& level = levels[depth - 1];
    path.resize(level.pathLength);
    if (level.at >= level.end) {
      long n = syscall(SYS_getdents64, level.fd, level.buffer.get(), kBufferSize);
      if (n <= 0) {
        if (n < 0) fail(errno);
        close(level.fd);
        level.fd = -1;
        --depth;
        continue;
      }
      level.at = 0;
      level.end = static_cast<size_t>(n);
    }
    auto* e = reinterpret_cast<linux_dirent64*>(level.buffer.get() + level.at);
    level.at += e->d_reclen;
    const char* name = e->d_name;
    if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
    if (++seen > limit) {
      path = root;
      fail(E2BIG);
      break;
    }
    if (path.back() != '/') path += '/';
    path += name;
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      int mode = typeAt(level.fd, name);
      if (mode < 0) {
        if (errno != ENOENT) fail(errno);
        continue;
      }
      type = S_ISDIR(mode) ? DT_DIR : S_ISSOCK(mode) ? DT_SOCK : S_ISFIFO(mode) ? DT_FIFO : DT_REG;
    }
    if (type == DT_SOCK || type == DT_FIFO) {
      out.kind = type == DT_SOCK ? SpecialKind::socket : SpecialKind::fifo;
      out.path = path;
      break;
    }
    if (type != DT_DIR) continue;
    if (depth >= kMaxDepth) {
      fail(ELOOP);
      break;
    }
    int fd = openat(level.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (unreadable(err)) continue;
      if (!changed(err)) {
        fail(err);
        break;
      }
      // Replaced since it was listed: by a socket or FIFO, that is what the sandbox would see.
      int mode = typeAt(level.fd, name);
      if (mode >= 0 && kindOf(mode) != SpecialKind::none) {
        out.kind = kindOf(mode);
        out.path = path;
      }
      continue;
    }
    if (levels.size() == depth) levels.emplace_back();
    Level& next = levels[depth++];  // `level` may have moved: not used below
    next.fd = fd;
    next.pathLength = path.size();
    next.at = next.end = 0;
    if (!next.buffer) next.buffer.reset(new char[kBufferSize]);
  }
  for (size_t i = 0; i < depth; ++i) close(levels[i].fd);
  if (out.err != 0) out.kind = SpecialKind::none;
  return out;
}

}  // namespace stockade
