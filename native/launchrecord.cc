// launchrecord.cc — reading a launch record and performing its checks again (launchrecord.h).
// Each check repeats the call the resolution made (lib/launch/readset.ts), with that call's
// semantics: Node's statSync is stat(2), existsSync is access(F_OK), readFileSync opens and reads
// following symlinks, readdirSync lists through libuv's scandir (sorted with strcmp, d_type of
// unknown entries by lstat), realpathSync.native is realpath(3). A check that cannot be
// performed, or sees anything else, fails the record.
#include "launchrecord.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>

#include "landlock.h"
#include "scanwitness.h"
#include "spawn.h"

namespace stockade {
bool seccompNotifyAvailable();

namespace {

constexpr char kMagic[8] = {'S', 'T', 'K', 'L', 'R', 'E', 'C', '1'};
constexpr uint32_t kMaxEntries = 1u << 20;

struct Reader {
  const std::string& s;
  size_t at = 0;
  size_t end;
  bool ok = true;
  template <typename T>
  T get() {
    T v{};
    if (!ok || end - at < sizeof v) {
      ok = false;
      return v;
    }
    memcpy(&v, s.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
  std::string str() {
    uint32_t n = get<uint32_t>();
    if (!ok || end - at < n) {
      ok = false;
      return "";
    }
    std::string out = s.substr(at, n);
    at += n;
    return out;
  }
};

bool parseCheck(const std::string& s, size_t at, size_t end, LaunchCheck* c) {
  Reader r{s, at, end};
  c->op = r.get<uint8_t>();
  switch (c->op) {
    case 1:
    case 2:
      c->path = r.str();
      c->err = r.get<int32_t>();
      if (c->err == 0)
        for (uint64_t& v : c->stat) v = r.get<uint64_t>();
      break;
    case 3:
      c->path = r.str();
      c->mode = r.get<int32_t>();
      c->err = r.get<int32_t>();
      break;
    case 4:
    case 6:
    case 7:
      c->path = r.str();
      c->err = r.get<int32_t>();
      if (c->err == 0) c->bytes = r.str();
      break;
    case 5: {
      c->path = r.str();
      c->err = r.get<int32_t>();
      if (c->err != 0) break;
      uint32_t n = r.get<uint32_t>();
      if (n > kMaxEntries) return false;
      for (uint32_t i = 0; i < n && r.ok; ++i) {
        uint8_t type = r.get<uint8_t>();
        c->entries.emplace_back(type, r.str());
      }
      break;
    }
    case 8:
      c->value = r.get<uint64_t>();
      break;
    case 9:
      c->path = r.str();
      c->file = r.str();
      c->value = r.get<uint64_t>();
      break;
    case 10:
      c->path = r.str();
      c->value = r.get<uint64_t>();
      break;
    default:
      return false;
  }
  return r.ok && r.at == end;
}

// statx, as scanwitness.cc uses it (the prebuilt addon's glibc floor has no fstatat of its own).
int statOf(const std::string& path, bool follow, uint64_t out[10]) {
  struct statx stx;
  int flags = AT_STATX_SYNC_AS_STAT | (follow ? 0 : AT_SYMLINK_NOFOLLOW);
  if (statx(AT_FDCWD, path.c_str(), flags, STATX_BASIC_STATS, &stx) != 0) return errno;
  uint64_t v[10] = {
      makedev(stx.stx_dev_major, stx.stx_dev_minor),
      stx.stx_ino,
      stx.stx_mode,
      stx.stx_nlink,
      stx.stx_uid,
      stx.stx_gid,
      makedev(stx.stx_rdev_major, stx.stx_rdev_minor),
      stx.stx_size,
      static_cast<uint64_t>(stx.stx_mtime.tv_sec) * 1000000000 + stx.stx_mtime.tv_nsec,
      static_cast<uint64_t>(stx.stx_ctime.tv_sec) * 1000000000 + stx.stx_ctime.tv_nsec};
  memcpy(out, v, sizeof v);
  return 0;
}

bool readFile(const std::string& path, std::string* out, int* err) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return *err = errno, true;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno;
      break;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > (64u << 20)) {
      close(fd);
      return false;
    }
  }
  close(fd);
  return true;
}

uint8_t typeOfMode(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFIFO:
      return DT_FIFO;
    case S_IFCHR:
      return DT_CHR;
    case S_IFDIR:
      return DT_DIR;
    case S_IFBLK:
      return DT_BLK;
    case S_IFREG:
      return DT_REG;
    case S_IFLNK:
      return DT_LNK;
    case S_IFSOCK:
      return DT_SOCK;
  }
  return DT_UNKNOWN;
}

int listDir(const std::string& path, std::vector<std::pair<uint8_t, std::string>>* out) {
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return errno;
  errno = 0;
  while (struct dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    uint8_t type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct statx stx;
      if (statx(dirfd(d), e->d_name, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) == 0)
        type = typeOfMode(stx.stx_mode);
    }
    out->emplace_back(type, e->d_name);
    if (out->size() > kMaxEntries) break;
  }
  int err = errno;
  closedir(d);
  if (err != 0) return err;
  std::sort(out->begin(), out->end(), [](const auto& a, const auto& b) {
    return strcmp(a.second.c_str(), b.second.c_str()) < 0;
  });
  return 0;
}

// os.totalmem(), as libuv reads it: MemTotal of /proc/meminfo, in bytes.
uint64_t totalMemory() {
  std::string text;
  int err = 0;
  if (!readFile("/proc/meminfo", &text, &err) || err != 0) return 0;
  size_t at = text.find("MemTotal:");
  return at == std::string::npos ? 0 : strtoull(text.c_str() + at + 9, nullptr, 10) * 1024;
}

bool holds(const LaunchCheck& c) {
  switch (c.op) {
    case 1:
    case 2: {
      uint64_t now[10];
      int err = statOf(c.path, c.op == 2, now);
      if (err != c.err) return false;
      if (err != 0) return true;
      // A directory is compared by what it is (device, inode, mode, owner), not by its link
      // count, size and times, which move with every entry made in it (/tmp, a home): no
      // resolution reads those of a directory (test/launch.test.ts holds lib/ to that), and what
      // is in one is a check of its own (a readdir, an lstat of each name, a scan's witness).
      static constexpr int kDirFields[] = {0, 1, 2, 4, 5, 6};
      if (S_ISDIR(c.stat[2])) {
        for (int i : kDirFields)
          if (now[i] != c.stat[i]) return false;
        return true;
      }
      return memcmp(now, c.stat, sizeof now) == 0;
    }
    case 3:
      return (access(c.path.c_str(), c.mode) == 0 ? 0 : errno) == c.err;
    case 4: {
      std::string now;
      int err = 0;
      return readFile(c.path, &now, &err) && err == c.err && (err != 0 || now == c.bytes);
    }
    case 5: {
      std::vector<std::pair<uint8_t, std::string>> now;
      int err = listDir(c.path, &now);
      return err == c.err && (err != 0 || now == c.entries);
    }
    case 6: {
      char* real = realpath(c.path.c_str(), nullptr);
      int err = real == nullptr ? errno : 0;
      bool same = err == c.err && (err != 0 || c.bytes == real);
      free(real);
      return same;
    }
    case 7: {
      char link[PATH_MAX];
      ssize_t n = readlink(c.path.c_str(), link, sizeof link);
      int err = n < 0 ? errno : 0;
      return err == c.err && (err != 0 || c.bytes == std::string(link, static_cast<size_t>(n)));
    }
    case 8:
      return totalMemory() == c.value;
    case 9:
      return witnessedClean(c.path, c.file, static_cast<size_t>(c.value));
    case 10: {
      int64_t want = static_cast<int64_t>(c.value);
      if (c.path == "landlockAbi") return landlockAbi() == want;
      if (c.path == "seccompNotify") return (seccompNotifyAvailable() ? 1 : 0) == want;
      if (c.path == "probeNamespaces") return probeNamespaces() == want;
      return false;
    }
  }
  return false;
}

}  // namespace

bool parseLaunchRecord(const std::string& bytes, LaunchRecord* out) {
  if (bytes.size() < sizeof kMagic || memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return false;
  Reader r{bytes, sizeof kMagic, bytes.size()};
  bool key = false, plan = false, pid = false;
  while (r.ok && r.at < bytes.size()) {
    uint8_t tag = r.get<uint8_t>();
    uint32_t n = r.get<uint32_t>();
    if (!r.ok || bytes.size() - r.at < n) return false;
    size_t at = r.at, end = r.at + n;
    switch (tag) {
      case 1:
        out->key = bytes.substr(at, n);
        key = true;
        break;
      case 2: {
        LaunchCheck c;
        if (!parseCheck(bytes, at, end, &c)) return false;
        out->checks.push_back(std::move(c));
        break;
      }
      case 3:
        out->plan = bytes.substr(at, n);
        plan = true;
        break;
      case 4:
        out->pid = bytes.substr(at, n);
        pid = !out->pid.empty() && out->pid.find_first_not_of("0123456789") == std::string::npos;
        break;
      default:
        return false;
    }
    r.at = end;
  }
  return r.ok && key && plan && pid;
}

bool checksHold(const LaunchRecord& record, std::string* differs) {
  static const char* const kOps[] = {"",         "lstat",   "stat",     "access",
                                     "read",     "readdir", "realpath", "readlink",
                                     "totalmem", "witness", "native"};
  for (const LaunchCheck& c : record.checks) {
    if (holds(c)) continue;
    *differs = std::string(c.op < 11 ? kOps[c.op] : "?") + " " + c.path;
    return false;
  }
  return true;
}

}  // namespace stockade
