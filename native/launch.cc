// launch.cc — stockade-launch, the front of `stockade run` that is not a Node process (README,
// "A launcher that is not a Node process").
//
//   stockade-launch NODE LAUNCHER run [FLAGS] -- COMMAND [ARGS...]
//
// is what `stockade wrap` writes; without this program the same start is `NODE LAUNCHER run ...`.
// A Node process costs 30-45 ms on a small VM before its first line, so it is the server's
// start that waits for it. This program looks for the launch record an earlier start left
// (lib/launch: the plan it resolved, under the key below, with every host read of that
// resolution), performs every one of those reads again, and only if each sees exactly what the
// record holds, spawns the sandbox from the record's plan (spawn.cc, the addon's own code) and
// execs `NODE LAUNCHER run ...` with the sandbox's fds, which attaches to it (resolving the plan
// once more and killing the sandbox if it differs). Anything else — no record, a check that
// differs, a record it cannot trust, a spawn that fails — execs the same command with a request
// to record, and the Node launcher resolves and spawns as always. It prints nothing itself.
//
// The key: this program's argv (NODE onward), working directory, environment (sorted, without
// STOCKADE_LAUNCH_*), uid, gid and groups. The record is a file of this user's in the package's
// own dist/.launch-cache, as the scan witnesses are (scanwitness.cc: readOwnFile).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "landlock.h"
#include "launchrecord.h"
#include "planwire.h"
#include "scanwitness.h"
#include "spawn.h"

extern char** environ;

namespace stockade {
bool seccompNotifyAvailable();
namespace {

constexpr const char kRecordEnv[] = "STOCKADE_LAUNCH_RECORD";
constexpr const char kAttachEnv[] = "STOCKADE_LAUNCH_ATTACH";
constexpr size_t kMaxRecord = 16u << 20;

void put32(std::string* out, uint32_t v) {
  out->append(reinterpret_cast<const char*>(&v), 4);
}
void putStr(std::string* out, const std::string& s) {
  put32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

bool launchVariable(const char* entry) {
  return strncmp(entry, "STOCKADE_LAUNCH_", 16) == 0;
}

std::string keyOf(int argc, char** argv) {
  std::string key;
  put32(&key, static_cast<uint32_t>(argc - 1));
  for (int i = 1; i < argc; ++i) putStr(&key, argv[i]);
  char cwd[PATH_MAX];
  putStr(&key, getcwd(cwd, sizeof cwd) != nullptr ? cwd : "");
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (!launchVariable(*e)) env.emplace_back(*e);
  std::sort(env.begin(), env.end());
  put32(&key, static_cast<uint32_t>(env.size()));
  for (const std::string& e : env) putStr(&key, e);
  put32(&key, getuid());
  put32(&key, getgid());
  gid_t groups[256];
  int n = getgroups(256, groups);
  put32(&key, n < 0 ? UINT32_MAX : static_cast<uint32_t>(n));
  for (int i = 0; i < n; ++i) put32(&key, groups[i]);
  return key;
}

// The package's root: this program is <root>/build/Release/stockade-launch or
// <root>/prebuilds/<platform>-<arch>/stockade-launch.
std::string packageRoot() {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return "";
  std::string p(exe, static_cast<size_t>(n));
  for (int up = 0; up < 3; ++up) {
    size_t slash = p.rfind('/');
    if (slash == std::string::npos || slash == 0) return "";
    p.resize(slash);
  }
  return p;
}

std::string hex16(uint64_t v) {
  char out[17];
  snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(v));
  return out;
}

// An fd holding `bytes` from offset 0, for the exec'd launcher (lib/launch), or -1.
int memfdOf(const char* name, const std::string& bytes) {
  int fd = static_cast<int>(syscall(SYS_memfd_create, name, 0));
  if (fd < 0) return -1;
  size_t at = 0;
  while (at < bytes.size()) {
    ssize_t w = write(fd, bytes.data() + at, bytes.size() - at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      close(fd);
      return -1;
    }
    at += static_cast<size_t>(w);
  }
  if (lseek(fd, 0, SEEK_SET) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// STOCKADE_LAUNCH_DEBUG: why a start is the Node launcher's, on stderr (lib/launch says the rest).
void say(const std::string& what) {
  if (getenv("STOCKADE_LAUNCH_DEBUG") != nullptr)
    fprintf(stderr, "stockade: launch record: %s\n", what.c_str());
}

[[noreturn]] void execLauncher(char** argv) {
  execv(argv[1], argv + 1);
  // The Node launcher could not be exec'd: say so, as a shell would (nothing else can).
  fprintf(stderr, "stockade-launch: cannot run %s: %s\n", argv[1], strerror(errno));
  _exit(127);
}

// The Node launcher resolves as it would without this program, and records for the next start.
[[noreturn]] void fallBack(char** argv, const std::string& key, const std::string& file,
                           const std::string& why) {
  say("not used (" + why + ")");
  int fd = file.empty() ? -1 : memfdOf("stockade-launch-key", key);
  if (fd >= 0) {
    std::string value = std::to_string(fd) + ":" + file;
    setenv(kRecordEnv, value.c_str(), 1);
  }
  execLauncher(argv);
}

// The sandbox's v1 and v2 cgroups are named <pid>-<thread>-<n> (lib/limits/cgroup.ts): the
// recording launcher's pid becomes this process's, which the attaching launcher has too.
void renameCgroups(Plan& plan, const std::string& recordedPid) {
  std::string mine = std::to_string(getpid());
  auto rename = [&](std::string& dir) {
    size_t slash = dir.rfind('/');
    std::string prefix = "/" + recordedPid + "-";
    if (slash != std::string::npos && dir.compare(slash, prefix.size(), prefix) == 0)
      dir.replace(slash + 1, recordedPid.size(), mine);
  };
  for (CgroupSpec& cg : plan.cgroups) rename(cg.dir);
  for (std::string& dir : plan.cgroupDirs) rename(dir);
}

}  // namespace
}  // namespace stockade

int main(int argc, char** argv) {
  using namespace stockade;
  if (argc < 4 || strcmp(argv[3], "run") != 0) {
    if (argc < 2) {
      fprintf(stderr, "usage: stockade-launch NODE LAUNCHER run [FLAGS] -- COMMAND [ARGS...]\n");
      return 2;
    }
    execLauncher(argv);
  }
  std::string key = keyOf(argc, argv);
  std::string root = packageRoot();
  std::string file = root.empty() ? ""
                                  : root + "/dist/.launch-cache/" + std::to_string(geteuid()) +
                                        "-" + hex16(fnv1a(key.data(), key.size()));
  std::string bytes;
  LaunchRecord record;
  std::string differs;
  if (file.empty()) fallBack(argv, key, file, "no package directory");
  if (!readOwnFile(file, kMaxRecord, &bytes)) fallBack(argv, key, file, "none of this user's own");
  if (!parseLaunchRecord(bytes, &record) || record.key != key)
    fallBack(argv, key, file, "not a record of this start");
  if (!checksHold(record, &differs)) fallBack(argv, key, file, "a check differs: " + differs);
  Plan plan;
  std::string error;
  if (!decodePlan(record.plan, &plan, &error)) fallBack(argv, key, file, "its plan: " + error);
  renameCgroups(plan, record.pid);
  // The plan as the attaching launcher must make it again, before its fds become duplicates.
  std::string used = encodePlan(plan);
  // The payload's stdio is this process's 0, 1, 2, as the Node launcher hands over its own; the
  // child maps them from duplicates above them, as the addon does (addon.cc Spawn).
  std::vector<int> owned;
  for (int& fd : plan.fds) {
    if (fd < 0) continue;
    fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) fallBack(argv, key, file, std::string("a stdio fd: ") + strerror(errno));
    owned.push_back(fd);
  }
  // As the addon's spawner thread does it (spawner.cc): the cgroups, then the spawn.
  SpawnResult made;
  if (int err = makeCgroupsFromParent(plan, made)) {
    for (int fd : owned) close(fd);
    fallBack(argv, key, file, std::string("its cgroups: ") + strerror(err));
  }
  SpawnResult result = spawnSandbox(plan);
  result.oomEventFd = made.oomEventFd;
  closeCgroupFds(plan);
  for (int fd : owned) close(fd);
  if (result.failed) {
    // What the Node launcher would have reported, it reports now: it spawns again itself.
    removeCgroupsFromParent(plan);
    if (result.oomEventFd >= 0) close(result.oomEventFd);
    fallBack(
        argv, key, file,
        "the spawn: step " + std::to_string(result.error.step) + ", " + strerror(result.error.err));
  }
  int planFd = memfdOf("stockade-launch-plan", used);
  if (planFd < 0) {
    killAndReap(result.pid, result.pidfd);
    removeCgroupsFromParent(plan);
    fallBack(argv, key, file, "memfd_create");
  }
  for (int fd : {result.pidfd, result.statusFd, result.mountNsFd, result.oomEventFd})
    if (fd >= 0) fcntl(fd, F_SETFD, 0);
  std::string value =
      "plan=" + std::to_string(planFd) + ",pid=" + std::to_string(result.pid) +
      ",pidfd=" + std::to_string(result.pidfd) + ",status=" + std::to_string(result.statusFd) +
      ",mntns=" + std::to_string(result.mountNsFd) + ",oom=" + std::to_string(result.oomEventFd) +
      ",landlock=" + std::to_string(result.landlockAbi) +
      ",notify=" + (result.seccompNotify ? "1" : "0") + ",file=" + file;
  setenv(kAttachEnv, value.c_str(), 1);
  execLauncher(argv);
}
