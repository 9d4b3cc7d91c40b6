// plan.h — the fully resolved description of one sandbox, as the child executes it.
//
// TypeScript (lib/plan.ts) decides everything; addon.cc copies it into a Plan; spawn.cc
// precomputes every byte the child will need (C strings, pointer arrays, netlink messages, the
// BPF program) *before* clone(), because the child of a multi-threaded process may not allocate.
#pragma once

#include <linux/filter.h>
#include <stdint.h>
#include <sys/resource.h>

#include <string>
#include <vector>

#include "landlock.h"
#include "steps.h"

namespace stockade {

// One step of the child's checklist (steps.h, the one list of them). The number travels to the
// parent in a ChildError and becomes a name ('mount', 'pivot_root', ...) in lib/native.ts.
enum class Step : int32_t {
#define STOCKADE_STEP_ENUM(number, Name, name, syscall) k##Name = number,
  STOCKADE_STEPS(STOCKADE_STEP_ENUM)
#undef STOCKADE_STEP_ENUM
};

// What the child writes on the CLOEXEC error pipe when a step fails. EOF instead means execve
// succeeded (libuv's pattern).
struct ChildError {
  int32_t step;
  int32_t err;
  int32_t index;  // which mount/listener/rlimit, or -1
};

// One entry of the sandbox's filesystem, applied in order (mounts.cc). Paths are never resolved
// through a symlink: a host path is opened beneath the old root with RESOLVE_NO_SYMLINKS and
// bound from that fd, a target is walked component by component with O_NOFOLLOW.
struct MountOp {
  enum Kind : int32_t {
    kBind = 0,  // host path `source` bound at target (recursive), read-only or nosuid+nodev
    kTmpfs,     // tmpfs with `data` options
    kProc,      // fresh procfs of the sandbox's pid namespace
    kDevpts,    // private devpts instance
    kFile,      // `data` written to the scratch tmpfs, that file bound read-only over target
    kSymlink,   // symlink(source, target)
    kMaskFile,  // the host's /dev/null bound over target (missing target is fine)
    kMaskDir,   // read-only empty tmpfs over target (missing target is fine)
    kReadOnly,  // target bound onto itself, read-only (missing target is fine)
  };
  Kind kind = kTmpfs;
  std::string source;  // kBind: absolute host path, already canonical; kSymlink: link text
  std::string target;  // absolute path inside the sandbox
  std::string data;    // kTmpfs: mount options; kFile: content
  bool readOnly = true;
  bool devices = false;  // a bind of device nodes: no MOUNT_ATTR_NODEV on this mount
  // false: the target lies under a host bind, where setup must not create anything; a missing
  // component is ENOENT. true: missing components are made on the sandbox's own tmpfs.
  bool createTarget = true;
  // kBind as host root: bound through an idmapped mount the parent prepared, so that files the
  // caller owns belong to the payload inside and what the payload creates to the caller outside.
  bool idmap = false;
  uint32_t mode = 0755;
};

constexpr size_t kMaxListeners = 64;
constexpr int kMaxFds = 64;

struct Listener {
  int32_t family = 0;  // AF_INET or AF_INET6
  int32_t type = 0;    // SOCK_STREAM or SOCK_DGRAM
  uint8_t addr[16] = {};
  uint16_t port = 0;
};

// The seccomp profiles (seccomp.cc); the numbers are lib/native.ts's.
enum class SeccompProfile : int32_t { kDefault = 0, kStrict = 1 };

struct Limit {
  int32_t resource;
  struct rlimit value;
};

// One ucount limit of the sandbox's own user namespace (man 7 user_namespaces, /proc/sys/user):
// `path` is /proc/sys/user/<name>, `value` the decimal text written there.
struct Budget {
  std::string path;
  std::string value;
};

// One sandbox cgroup in one hierarchy (lib/limits/cgroup.ts decides all of it): the directory
// to make, the files to write there in order (an optional one is skipped where the kernel has
// no such file), and, for a v1 memory cgroup, whether to register an OOM eventfd.
struct CgroupFile {
  std::string name;
  std::string value;
  bool optional = false;
};
struct CgroupSpec {
  std::string dir;
  int version = 2;
  std::vector<CgroupFile> files;
  bool watchOom = false;
  bool premade = false;  // a warm child's cgroup (spawner.cc): it exists, and the child is in it
};

struct Plan {
  // Payload
  std::string file;  // absolute path inside the sandbox
  std::vector<std::string> argv;
  std::vector<std::string> envp;
  std::string cwd = "/";
  std::string hostname = "stockade";

  // Identity: inside, the payload is `uid`/`gid`; as host root it is `hostUid`/`hostGid` outside.
  uint32_t uid = 65534, gid = 65534;
  uint32_t hostUid = 65534, hostGid = 65534;

  // Filesystem
  std::string baseDir = "/tmp";  // host dir to mount the scratch tmpfs on
  std::string rootOptions = "mode=0755,size=16m";
  std::vector<MountOp> mounts;

  // Network
  bool shareNetwork = false;        // 'host' mode: no CLONE_NEWNET
  bool routeAllLocal = false;       // every address local to lo (transparent interception)
  std::vector<Listener> listeners;  // bound inside, fds handed to the parent

  // Process
  std::vector<int> fds;  // parent fds that become 0,1,2,... in the payload; -1 = /dev/null
  std::vector<Limit> limits;
  bool useInit = true;   // stockade-init as PID 1
  std::string initPath;  // host path of the stockade-init executable
  bool seccomp = true;
  // Set by the spawner thread, not the plan: it runs SCHED_BATCH, which the child resets.
  bool resetScheduler = false;
  // May take a warm child of the pool and leave one like it for the next spawn (spawner.cc);
  // with warmRefill false, takes one (made ahead by prewarm) and leaves none.
  bool warm = false;
  bool warmRefill = true;

  // Defense in depth (landlock.h, seccomp.cc)
  SeccompProfile seccompProfile = SeccompProfile::kDefault;
  LandlockPlan landlock;
  // Limits (lib/limits). The v2 cgroup the child is cloned into (a directory fd, or -1); the
  // `tasks` files of v1 hierarchies the child moves itself into right after the sync point
  // (cgroup.cc); the budgets the child sets in its user namespace before anything else.
  // The cgroups are made by the spawner thread (cgroup.cc, makeCgroupsFromParent) from
  // `cgroups`, which then fills in cgroupFd and cgroupTasksFds.
  std::vector<CgroupSpec> cgroups;
  int cgroupFd = -1;
  std::vector<int> cgroupTasksFds;
  std::vector<Budget> budgets;
  // The host directories of those cgroups, removed by the addon only if the environment that
  // spawned the sandbox is torn down while it runs (removeCgroupDirs, spawn.h).
  std::vector<std::string> cgroupDirs;
};

// Everything derived from a Plan that the child needs, ready before clone(). From clone() until
// the child has exec'd or died, the child reads this (and the Plan) in the parent's memory:
// neither side may change it then (spawn.cc).
struct Prepared {
  std::vector<char*> argv;  // NULL-terminated; points into Plan or initArgv
  std::vector<char*> envp;
  std::vector<std::string> initArgv;
  std::vector<char> routeMessages;  // two RTM_NEWROUTE messages, back to back
  size_t routeMessage4Len = 0;
  const struct sock_fprog* filter = nullptr;  // the seccomp program, or null
  bool notify = false;  // the filter notifies stockade-init (a listener fd is made for it)
  int landlockAbi = 0;  // the ABI the child uses, 0 when Landlock is not used
  int lastCap = 40;
  bool hostRoot = false;  // caller is root in the initial user namespace
  int devNull = -1;
  int initFd = -1;       // O_PATH fd of stockade-init
  int parentPidfd = -1;  // the child polls it to notice a parent that died early
  int errorPipe[2] = {-1, -1};
  int syncPipe[2] = {-1, -1};
  int statusPipe[2] = {-1, -1};
  int listenerSocket[2] = {-1, -1};
  std::vector<int> mountFds;  // per plan.mounts entry: a detached mount the parent made, or -1
};

}  // namespace stockade
