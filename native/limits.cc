// limits.cc — the kernel budgets of the sandbox's own user namespace, set by the child.
// man 7 user_namespaces ("/proc/sys/user"), man 7 inotify, man 7 fanotify; kernel/ucount.c.
//
// inotify instances and watches, fanotify groups and marks, and namespaces of every kind are
// counted per user *and per user namespace*, up the chain of namespaces: an object the sandbox
// creates is charged to its own namespace and to the namespace's owner (the caller's uid) in
// every ancestor, and the creation fails once any level is at its limit (inc_ucount()). Without
// a limit of its own (a new namespace starts at INT_MAX), a sandbox could take the caller's
// whole budget — 128 inotify instances by default — and the caller's own inotify_init() (tail
// -f, editors, file watchers) would fail with EMFILE until the sandbox ended. So the child,
// while it is still root with every capability in its new namespace (writing these needs
// CAP_SYS_RESOURCE there), writes the sandbox's share into /proc/sys/user: the files show the
// limits of the writer's namespace, whatever procfs instance they are reached through. This runs
// before the filesystem is built, through the procfs the host has at /proc (the one the sandbox
// gets is read-only at /proc/sys once built); lib/limits checks that it is writable first.
// A knob this kernel does not have (fanotify's came in 5.13) is skipped: ENOENT.
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>

#include "child.h"
#include "syscall.h"

namespace stockade {

int setBudgetsInChild(const Plan& plan, int* index) {
  for (size_t i = 0; i < plan.budgets.size(); ++i) {
    const Budget& budget = plan.budgets[i];
    *index = static_cast<int>(i);
    long fd = sys(SYS_openat, AT_FDCWD, budget.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (sysError(fd) == ENOENT) continue;
    if (int err = sysError(fd)) return err;
    long n = sys(SYS_write, fd, budget.value.data(), budget.value.size());
    sys(SYS_close, fd);
    if (int err = sysError(n)) return err;
  }
  return 0;
}

}  // namespace stockade
