// child.h — the steps of the child's checklist (child.cc) and of the parent side (spawn.cc),
// one file per kernel concern. Functions named ...InChild run between clone() and execve():
// they make system calls only (no allocation, no locks, no stdio) and return 0 or an errno,
// with *index set for steps that work on a list.
#pragma once

#include <sys/types.h>

#include "plan.h"

namespace stockade {

// userns.cc
int writeIdMapsFromParent(pid_t pid, const Plan& plan, bool hostRoot, std::string* failedPath);
int setIdentityInChild(const Plan& plan, bool hostRoot);

// mounts.cc
int buildRootInChild(Plan& plan, Step* step, int* index);

// net.cc
void prepareRouteMessages(Prepared& prep);
int setupNetworkInChild(const Plan& plan, Prepared& prep, Step* step, int* index);
int receiveListenersFromChild(int socket, size_t count, std::vector<int>* fds);

// caps.cc
int readLastCap();
int dropBoundingSetInChild(int lastCap);
int dropCapabilitiesInChild();

// seccomp.cc
const struct sock_fprog* defaultFilter();
int installFilterInChild(const struct sock_fprog* filter);

// fds.cc
int arrangeFdsInChild(const Plan& plan, Prepared& prep);

// child.cc
[[noreturn]] void runChild(Plan& plan, Prepared& prep);
[[noreturn]] void failInChild(const Prepared& prep, Step step, int err, int index = -1);

}  // namespace stockade
