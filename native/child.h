// child.h — the steps of the child's checklist (child.cc) and of the parent side (spawn.cc),
// one file per kernel concern. Functions named ...InChild run between clone() and execve():
// they make raw system calls only (syscall.h: no glibc wrappers, no errno, no allocation, no
// locks, no stdio) and return 0 or an errno, with *index set for steps that work on a list.
// The child shares the parent's memory (CLONE_VM, see spawn.cc): it reads Plan and Prepared
// through const references and writes only to its own stack.
#pragma once

#include <sys/types.h>

#include "plan.h"

namespace stockade {

// The descriptors the child renumbers while it arranges the payload's fds (fds.cc). They live
// on the child's stack: Prepared is the parent's memory, which the parent still reads and
// closes, so the child must not write the new numbers there.
struct ChildFds {
  int error;   // write end of the error pipe, where failInChild() reports
  int status;  // write end of stockade-init's status pipe, or -1
  int init;    // O_PATH fd of stockade-init, or -1
};

// userns.cc
int writeIdMapsFromParent(pid_t pid, const Plan& plan, bool hostRoot, std::string* failedPath);
int setIdentityInChild(const Plan& plan, bool hostRoot);
int openIdmapUsernsFromParent(const Plan& plan, int* usernsFd);

// mounts.cc
int prepareMountsFromParent(const Plan& plan, Prepared& prep, int* index);
int buildRootInChild(const Plan& plan, const Prepared& prep, Step* step, int* index);

// net.cc
void prepareRouteMessages(Prepared& prep);
int setupNetworkInChild(const Plan& plan, const Prepared& prep, Step* step, int* index);
// net.cc: TCP Fast Open off in the sandbox's network namespace where Landlock restricts TCP
// connect (the reason is there). Before the mounts: written through the host's /proc.
int disableFastOpenInChild(const Plan& plan);
// net.cc: CUBIC (or Reno) for the loopback-only namespace, before the mounts (the reason is there).
void loopbackCongestionInChild(const Plan& plan);
int receiveListenersFromChild(int socket, size_t count, std::vector<int>* fds);

// caps.cc
int readLastCap();
int dropBoundingSetInChild(int lastCap);
int dropCapabilitiesInChild();

// seccomp.cc
const struct sock_fprog* filterFor(SeccompProfile profile, bool notify);
bool seccompNotifyAvailable();
int installFilterInChild(const struct sock_fprog* filter, bool notify, int* listener);

// fds.cc
int arrangeFdsInChild(const Plan& plan, const Prepared& prep, ChildFds* fds);

// limits.cc
int setBudgetsInChild(const Plan& plan, int* index);

// cgroup.cc
pid_t cloneIntoCgroup(unsigned long flags, void* stackBase, size_t stackSize, int cgroupFd,
                      int (*fn)(void*), void* arg, int* pidfd);
int joinV2CgroupFromParent(pid_t pid, const Plan& plan);

int joinCgroupsInChild(const Plan& plan, int* index);

// A warm child (spawn.cc, "The warm pool"): made ahead of time in fresh user, pid, net, ipc,
// uts and cgroup namespaces, sharing the parent's fd table (CLONE_FILES) and living in the
// host's mount namespace, until a spawn hands it a plan. The parent fills in plan and prep,
// then writes one byte ('G') on `channel`; the child answers one byte there once it holds a fd
// table and a mount namespace of its own (or exits).
struct WarmChild {
  int channel = -1;      // the child's end of the wake socketpair
  int parentPidfd = -1;  // as Prepared::parentPidfd, for the time before the wake
  // What it applies before the wake, once the parent says its id maps are written ('M'): the
  // budgets and Fast Open setting of its key (a Plan with only those fields set).
  const Plan* early = nullptr;
  const Plan* plan = nullptr;
  const Prepared* prep = nullptr;
};

// child.cc
[[noreturn]] void runChild(const Plan& plan, const Prepared& prep);
[[noreturn]] void runWarmChild(const WarmChild& warm);
[[noreturn]] void failInChild(const ChildFds& fds, Step step, int err, int index = -1);

}  // namespace stockade
