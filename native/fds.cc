// fds.cc — the payload's file descriptors: exactly the planned ones, nothing of the parent's.
// man 2 dup3, man 2 close_range (5.9; CLOSE_RANGE_CLOEXEC 5.11), man 2 fcntl.
//
// Node's process holds many fds (the event loop, sockets, files); the child inherited them all.
// Target layout: plan.fds at 0..n-1, then, with stockade-init, the error pipe and the status
// pipe at n and n+1 (stockade-init is told where) and stockade-init's own executable at n+2, and
// every other fd closed. Sources that sit inside the target range are first moved above it, so no
// dup3() overwrites a source another slot still needs (libuv's process.c does the same).
// Runs in the child: raw system calls (syscall.h); the renumbered error pipe, status pipe and
// stockade-init fds are written to the child's own ChildFds, never to the parent's Prepared.
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/syscall.h>

#include "child.h"
#include "syscall.h"
#include "sysnums.h"

namespace stockade {

static int closeFrom(unsigned first, unsigned last) {
  int err = sysError(sys(SYS_close_range, first, last, 0));
  if (err != ENOSYS) return err;
  for (unsigned fd = first; fd <= last && fd < 65536; ++fd) sys(SYS_close, fd);  // < 5.9
  return 0;
}

// fcntl(F_DUPFD_CLOEXEC, at least `minimum`): the new fd, or -errno.
static long moveAbove(int fd, int minimum) {
  return sys(SYS_fcntl, fd, F_DUPFD_CLOEXEC, minimum);
}

int arrangeFdsInChild(const Plan& plan, const Prepared& prep, ChildFds* fds) {
  int sources[kMaxFds + 3];
  int n = static_cast<int>(plan.fds.size());
  for (int i = 0; i < n; ++i) sources[i] = plan.fds[i] < 0 ? prep.devNull : plan.fds[i];
  int total = n;
  int errorFdInside = -1;
  if (plan.useInit) {
    errorFdInside = total;
    sources[total++] = fds->error;
    sources[total++] = fds->status;
    sources[total++] = fds->init;  // executed with execveat(); close-on-exec is fine for ELF
  }
  if (!plan.useInit && fds->error < total) {
    long moved = moveAbove(fds->error, total);
    if (moved < 0) return sysError(moved);
    fds->error = static_cast<int>(moved);
  }
  for (int i = 0; i < total; ++i) {
    if (sources[i] >= total) continue;
    long moved = moveAbove(sources[i], total);
    if (moved < 0) return sysError(moved);
    for (int j = i + 1; j < total; ++j)
      if (sources[j] == sources[i]) sources[j] = static_cast<int>(moved);
    sources[i] = static_cast<int>(moved);
  }
  for (int i = 0; i < total; ++i) {
    // Without stockade-init the error pipe stays where it is, close-on-exec, so that a
    // successful execve closes it; every fd in the layout itself must survive execve.
    if (int err = sysError(sys(SYS_dup3, sources[i], i, 0))) return err;
  }
  if (plan.useInit) {
    // From here on, failures are reported through the copy stockade-init will inherit.
    fds->error = errorFdInside;
    fds->status = errorFdInside + 1;
    fds->init = total - 1;
    if (int err = sysError(sys(SYS_fcntl, fds->init, F_SETFD, FD_CLOEXEC))) return err;
    return closeFrom(total, ~0U);
  }
  int keep = fds->error;
  if (keep > total) {
    if (int err = closeFrom(total, static_cast<unsigned>(keep - 1))) return err;
  }
  return closeFrom(static_cast<unsigned>(keep + 1), ~0U);
}

}  // namespace stockade
