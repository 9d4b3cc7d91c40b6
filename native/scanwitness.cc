// scanwitness.cc — the witness of a clean socket scan (hostscan.cc, lib/hostpath.ts).
//
// Why: the scan reads every directory of a grant, and ext4 hashes and sorts every name of every
// directory it lists (a granted node_modules: 1,500 directories, ~23 ms of CPU and ~12 ms of a
// start on this 2-CPU VM). A directory's entries cannot change without its change time (ctime)
// moving: creating, linking, renaming or removing an entry updates the ctime of the directory
// that holds it, and so do chmod and chown of the directory itself (POSIX; Linux for every
// local file system and NFS). A tree whose every directory has the identity and the ctime the
// clean scan saw has the same entries, so it still holds no socket and no FIFO; checking that
// is one statx per directory (~2.5 ms for node_modules, on the scan's own thread).
//
// What makes that sound, and what the witness refuses to vouch for:
// - ctime cannot be set by its owner (utimensat sets atime and mtime, and moves ctime to now),
//   so a payload that planted a socket in its read-write grant cannot hide it; only a change of
//   the system clock (root) could.
// - A change in the same clock tick as the scan could leave a ctime as it was (timestamps are
//   taken from a coarse clock on many file systems: the "racy" entries of git's index). A scan
//   that saw a directory changed within `racyMs` of its start writes no witness; the next start
//   after the tree has settled does.
// - Mounts do not move a ctime: a mount over a directory of the tree changes that directory's
//   identity (device, inode), one over a file does not, so the mounts at or below the root are
//   part of the witness (mountsBelow).
// - A scan that skipped anything (a directory it could not read, an entry that vanished while it
//   looked) writes no witness.
// - The witness is trusted as the code is: it lives beside the bundle, in the package's own
//   dist/.scan-cache (lib/hostpath.ts), and is read only when it and its directory are this
//   user's and writable by nobody else. A sandbox that could write there could as well rewrite
//   the launcher. Its digest is against a torn or truncated file, not an attacker.
// A witness that does not hold costs its check (it stops at the first directory that differs),
// then the walk runs as without one.
#include "scanwitness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

namespace stockade {
namespace {

constexpr char kMagic[8] = {'S', 'T', 'K', 'W', 'I', 'T', '0', '1'};
constexpr size_t kMaxWitness = 64u << 20;  // bytes: a tree of ~1M directories
constexpr size_t kKeptWitnesses = 64;      // per directory, the newest

// statx throughout, not fstat or fstatat: glibc 2.33 made those symbols of its own, past the
// prebuilt addon's glibc 2.28 floor (scripts/check-prebuilds.js).
bool statOf(int fd, const char* name, int flags, struct statx* stx) {
  return statx(fd, name, flags, STATX_TYPE | STATX_MODE | STATX_UID | STATX_SIZE | STATX_MTIME,
               stx) == 0;
}

// A directory or file of this user's that nobody else may write.
bool ownedAlone(int fd, bool wantDir) {
  struct statx stx;
  if (!statOf(fd, "", AT_EMPTY_PATH, &stx)) return false;
  if (wantDir ? !S_ISDIR(stx.stx_mode) : !S_ISREG(stx.stx_mode)) return false;
  return stx.stx_uid == geteuid() && (stx.stx_mode & 022) == 0;
}

// `file` split at its last '/', the directory opened (not following a final symlink) and checked.
int openWitnessDir(const std::string& file, std::string* name, bool create) {
  size_t slash = file.rfind('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == file.size()) return -1;
  std::string dir = file.substr(0, slash);
  *name = file.substr(slash + 1);
  if (create && mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return -1;
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  if (!ownedAlone(fd, true)) {
    close(fd);
    return -1;
  }
  return fd;
}

bool readAll(int fd, std::string* out, size_t max = kMaxWitness) {
  struct statx stx;
  if (!statOf(fd, "", AT_EMPTY_PATH, &stx) || stx.stx_size > max) return false;
  out->resize(static_cast<size_t>(stx.stx_size));
  size_t at = 0;
  while (at < out->size()) {
    ssize_t n = read(fd, &(*out)[at], out->size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    at += static_cast<size_t>(n);
  }
  return true;
}

// Bounds-checked reads from a witness's bytes.
struct Reader {
  const std::string& s;
  size_t at = 0;
  bool ok = true;
  template <typename T>
  T get() {
    T v{};
    if (!ok || s.size() - at < sizeof v) {
      ok = false;
      return v;
    }
    memcpy(&v, s.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
  std::string bytes(size_t n) {
    if (!ok || s.size() - at < n) {
      ok = false;
      return {};
    }
    std::string v = s.substr(at, n);
    at += n;
    return v;
  }
};

template <typename T>
void put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}

bool octal(char c) {
  return c >= '0' && c <= '7';
}

// A mount point of mountinfo as the kernel escapes it (space, tab, newline, backslash as \ooo).
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && s.size() - i > 3 && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The oldest witnesses beyond kKeptWitnesses are removed (one per granted root is written: a
// launcher that grants many different temporary directories would otherwise fill the directory).
void prune(int dirFd) {
  int fd = openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return;
  }
  std::vector<std::pair<int64_t, std::string>> found;
  while (struct dirent* e = readdir(d)) {
    if (strncmp(e->d_name, "scan-", 5) != 0) continue;
    struct statx stx;
    if (!statOf(dirFd, e->d_name, AT_SYMLINK_NOFOLLOW, &stx)) continue;
    found.emplace_back(stx.stx_mtime.tv_sec * 1000000000 + stx.stx_mtime.tv_nsec, e->d_name);
  }
  closedir(d);
  if (found.size() <= kKeptWitnesses) return;
  std::sort(found.begin(), found.end());
  for (size_t i = 0; i + kKeptWitnesses < found.size(); ++i)
    unlinkat(dirFd, found[i].second.c_str(), 0);
}

}  // namespace

bool stampDir(int rootFd, const std::string& rel, DirStamp* out) {
  struct statx stx;
  int flags = AT_SYMLINK_NOFOLLOW | (rel.empty() ? AT_EMPTY_PATH : 0);
  if (statx(rootFd, rel.c_str(), flags, STATX_TYPE | STATX_INO | STATX_CTIME, &stx) != 0)
    return false;
  if ((stx.stx_mask & (STATX_TYPE | STATX_INO | STATX_CTIME)) !=
          (STATX_TYPE | STATX_INO | STATX_CTIME) ||
      !S_ISDIR(stx.stx_mode))
    return false;
  out->rel = rel;
  out->dev = static_cast<uint64_t>(stx.stx_dev_major) << 32 | stx.stx_dev_minor;
  out->ino = stx.stx_ino;
  out->sec = stx.stx_ctime.tv_sec;
  out->nsec = stx.stx_ctime.tv_nsec;
  return true;
}

bool mountsBelow(const std::string& root, uint64_t* digest, std::vector<std::string>* points) {
  int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return false;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxWitness) {
      close(fd);
      return false;
    }
  }
  close(fd);
  uint64_t h = fnv1a("mounts", 6);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw: id, parent, device,
    // root, mount point first.
    std::string field[5];
    size_t at = start;
    for (int i = 0; i < 5 && at < end; ++i) {
      size_t sp = text.find(' ', at);
      if (sp == std::string::npos || sp > end) sp = end;
      field[i] = text.substr(at, sp - at);
      at = sp + 1;
    }
    std::string point = unescape(field[4]);
    if (point == root || (point.size() > root.size() && point.compare(0, root.size(), root) == 0 &&
                          point[root.size()] == '/')) {
      std::string line = field[0] + ' ' + field[2] + ' ' + field[3] + ' ' + field[4] + '\n';
      h = fnv1a(line.data(), line.size(), h);
      points->push_back(std::move(point));
    }
    start = end + 1;
  }
  *digest = h == 0 ? 1 : h;  // 0 is "unknown" to the witness
  return true;
}

uint64_t fnv1a(const char* data, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ull;
  }
  return h;
}

bool readOwnFile(const std::string& file, size_t max, std::string* out) {
  std::string name;
  int dirFd = openWitnessDir(file, &name, false);
  if (dirFd < 0) return false;
  int fd = openat(dirFd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  close(dirFd);
  if (fd < 0) return false;
  bool read = ownedAlone(fd, false) && readAll(fd, out, max);
  close(fd);
  return read;
}

bool witnessedClean(const std::string& root, const std::string& witness, size_t limit) {
  uint64_t mounts = 0;
  std::vector<std::string> points;
  if (!mountsBelow(root, &mounts, &points)) return false;
  for (const std::string& point : points) {
    struct statx stx;
    if (statx(AT_FDCWD, point.c_str(), AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) == 0 &&
        (S_ISSOCK(stx.stx_mode) || S_ISFIFO(stx.stx_mode)))
      return false;
  }
  return witnessHolds(witness, root, limit, mounts);
}

bool witnessHolds(const std::string& file, const std::string& root, size_t limit, uint64_t mounts) {
  if (mounts == 0) return false;
  std::string bytes;
  if (!readOwnFile(file, kMaxWitness, &bytes) || bytes.size() < sizeof kMagic + 8 ||
      memcmp(bytes.data(), kMagic, sizeof kMagic))
    return false;
  uint64_t digest;
  memcpy(&digest, bytes.data() + bytes.size() - 8, 8);
  if (fnv1a(bytes.data(), bytes.size() - 8) != digest) return false;
  Reader r{bytes, sizeof kMagic};
  if (r.get<uint64_t>() != geteuid() || r.get<uint64_t>() != mounts) return false;
  if (r.get<uint64_t>() > limit) return false;
  if (r.bytes(r.get<uint32_t>()) != root) return false;
  uint32_t count = r.get<uint32_t>();
  if (!r.ok || count == 0) return false;
  int rootFd = open(root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rootFd < 0) return false;
  bool holds = true;
  for (uint32_t i = 0; holds && i < count; ++i) {
    DirStamp want;
    want.dev = r.get<uint64_t>();
    want.ino = r.get<uint64_t>();
    want.sec = r.get<int64_t>();
    want.nsec = r.get<uint32_t>();
    want.rel = r.bytes(r.get<uint32_t>());
    DirStamp now;
    // A path of the witness's own, below the root; a component replaced by a symlink since is
    // a change of the directory holding it, whose own stamp then differs.
    holds = r.ok && (want.rel.empty() || want.rel[0] != '/') && stampDir(rootFd, want.rel, &now) &&
            now.dev == want.dev && now.ino == want.ino && now.sec == want.sec &&
            now.nsec == want.nsec;
  }
  close(rootFd);
  return holds && r.ok && r.at == bytes.size() - 8;
}

bool writeWitness(const std::string& file, const WitnessHead& head,
                  const std::vector<DirStamp>& dirs) {
  if (head.mounts == 0 || dirs.empty() || dirs.size() > UINT32_MAX) return false;
  std::string out(kMagic, sizeof kMagic);
  put<uint64_t>(&out, geteuid());
  put<uint64_t>(&out, head.mounts);
  put<uint64_t>(&out, head.entries);
  put<uint32_t>(&out, static_cast<uint32_t>(head.root.size()));
  out += head.root;
  put<uint32_t>(&out, static_cast<uint32_t>(dirs.size()));
  for (const DirStamp& d : dirs) {
    put<uint64_t>(&out, d.dev);
    put<uint64_t>(&out, d.ino);
    put<int64_t>(&out, d.sec);
    put<uint32_t>(&out, d.nsec);
    put<uint32_t>(&out, static_cast<uint32_t>(d.rel.size()));
    out += d.rel;
  }
  put<uint64_t>(&out, fnv1a(out.data(), out.size()));
  if (out.size() > kMaxWitness) return false;
  std::string name;
  int dirFd = openWitnessDir(file, &name, true);
  if (dirFd < 0) return false;
  static std::atomic<unsigned> serial{0};
  char suffix[64];
  snprintf(suffix, sizeof suffix, ".tmp.%d.%u", static_cast<int>(getpid()), serial.fetch_add(1));
  std::string tmp = name + suffix;
  int fd = openat(dirFd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  bool ok = fd >= 0;
  for (size_t at = 0; ok && at < out.size();) {
    ssize_t n = write(fd, out.data() + at, out.size() - at);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) at += static_cast<size_t>(n);
  }
  if (fd >= 0 && close(fd) != 0) ok = false;
  if (ok) ok = renameat(dirFd, tmp.c_str(), dirFd, name.c_str()) == 0;
  if (!ok && fd >= 0) unlinkat(dirFd, tmp.c_str(), 0);
  if (ok) prune(dirFd);
  close(dirFd);
  return ok;
}

}  // namespace stockade
