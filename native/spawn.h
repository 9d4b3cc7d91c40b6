// spawn.h — the parent side of one sandbox spawn.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "plan.h"

namespace stockade {

struct SpawnResult {
  // Success: pid and pidfd of the sandbox's PID 1 (as seen from the host), the read end of
  // stockade-init's status pipe (-1 without init), and the injected listener fds, in plan order.
  pid_t pid = -1;
  int pidfd = -1;
  int statusFd = -1;
  std::vector<int> listenerFds;
  // The layers in force: the Landlock ABI used (0: none), whether stockade-init supervises the
  // seccomp filter (violations are then named).
  int landlockAbi = 0;
  bool seccompNotify = false;
  // Failure: the step, errno and list index the child (or the parent) reported.
  bool failed = false;
  ChildError error = {};
  std::string failedPath;               // for parent-side failures (the id map file, a cgroup file)
  const char* failedSyscall = nullptr;  // where it is not the step's usual one
  // The sandbox's mount namespace (an nsfs fd of /proc/PID/ns/mnt), or -1. Held so that the
  // sandbox's last process, exiting, does not free it: freeing a mount namespace unmounts its
  // tree and waits for an RCU grace period (namespace_unlock) and the unmounted filesystems'
  // teardown, in do_exit before the exit is signalled (0.2 to 1 ms on a 2-core VM, and more on
  // a loaded one). With this reference the exit is reported first, and the namespace is freed
  // when the addon closes the fd on the spawner's releaser thread (Spawner::closeLater).
  int mountNsFd = -1;
  // A v1 memory cgroup's OOM eventfd, registered before clone() (oomwatch.cc), or -1.
  int oomEventFd = -1;
  // Made from a warm child of the pool (its namespaces made ahead of time), not by clone().
  bool warm = false;
};

// The warm pool (spawn.cc, "The warm pool"): a sandbox's namespaces made ahead of time, used by
// the next spawn whose key matches, exactly once. A Warm that is destroyed unused is killed,
// reaped and its cgroup removed.
struct WarmKey {
  bool shareNetwork = false;
  bool hostRoot = false;
  uint32_t uid = 0, gid = 0, hostUid = 0, hostGid = 0;
  uint32_t callerUid = 0, callerGid = 0;  // what an unprivileged caller's id maps name
  std::string cgroupParent;               // where its v2 cgroup is made ("" without one)
  std::vector<Budget> budgets;            // set by the warm child before its wake (limits.cc)
  bool fastOpenOff = false;               // likewise (net.cc, disableFastOpenInChild)
  bool operator==(const WarmKey& o) const {
    return shareNetwork == o.shareNetwork && hostRoot == o.hostRoot && uid == o.uid &&
           gid == o.gid && hostUid == o.hostUid && hostGid == o.hostGid &&
           callerUid == o.callerUid && callerGid == o.callerGid && cgroupParent == o.cgroupParent &&
           fastOpenOff == o.fastOpenOff && sameBudgets(o);
  }
  bool sameBudgets(const WarmKey& o) const {
    if (budgets.size() != o.budgets.size()) return false;
    for (size_t i = 0; i < budgets.size(); ++i)
      if (budgets[i].path != o.budgets[i].path || budgets[i].value != o.budgets[i].value)
        return false;
    return true;
  }
};
struct WarmEntry;
struct WarmDeleter {
  void operator()(WarmEntry* entry) const;
};
using Warm = std::unique_ptr<WarmEntry, WarmDeleter>;

// The key a plan's sandbox would need (its v2 cgroup's parent from plan.cgroups).
WarmKey warmKeyOf(const Plan& plan);
// A warm child for `key`, or null where one cannot be made (the reason does not matter: the
// spawn that wants one makes its namespaces itself, as without a pool).
Warm makeWarm(const WarmKey& key);
bool warmMatches(const WarmEntry& entry, const WarmKey& key);
// The v2 cgroup the warm child lives in ("" if none), handed over: from here on it is the
// cgroup of the spawn that took the entry, and removed with that sandbox, not by the pool.
std::string adoptWarmCgroup(WarmEntry& entry);

// `warm`, if given, is used instead of a clone() (its cgroup is then plan's v2 cgroup).
SpawnResult spawnSandbox(Plan& plan, Warm warm = nullptr);

// cgroup.cc: the sandbox's cgroups, made on the spawner thread before spawnSandbox(); 0 or an
// errno, with result's failedPath and failedSyscall set and nothing left behind.
int makeCgroupsFromParent(Plan& plan, SpawnResult& result);
void closeCgroupFds(Plan& plan);
void removeCgroupsFromParent(const Plan& plan);

// Kills the sandbox whose PID 1 is `pid` (the whole pid namespace) and reaps it; `pidfd` stays
// open. Used when its environment goes first.
void killAndReap(pid_t pid, int pidfd);

// rmdir of each cgroup directory lib/limits made for a sandbox (cgroup.cc), once it is reaped.
// Best effort: what is already gone, or cannot be removed, is left.
void removeCgroupDirs(const std::vector<std::string>& dirs);

// Can this process create the namespaces a sandbox needs? 0 or the errno of clone().
int probeNamespaces();

}  // namespace stockade
