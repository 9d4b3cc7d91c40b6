// fds.cc — the payload's file descriptors: exactly the planned ones, nothing of the parent's.
// man 2 dup3, man 2 close_range (5.9; CLOSE_RANGE_CLOEXEC 5.11), man 2 fcntl.
//
// Node's process holds many fds (the event loop, sockets, files); the child inherited them all.
// Target layout: plan.fds at 0..n-1, then, with stockade-init, the error pipe and the status
// pipe at n and n+1 (stockade-init is told where) and stockade-init's own executable at n+2, and
// every other fd closed. Sources that sit inside the target range are first moved above it, so no
// dup3() overwrites a source another slot still needs (libuv's process.c does the same).
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

namespace stockade {

static int closeFrom(unsigned first, unsigned last) {
  if (syscall(SYS_close_range, first, last, 0) == 0) return 0;
  if (errno != ENOSYS) return errno;
  for (unsigned fd = first; fd <= last && fd < 65536; ++fd) close(static_cast<int>(fd));  // < 5.9
  return 0;
}

int arrangeFdsInChild(const Plan& plan, Prepared& prep) {
  int sources[kMaxFds + 3];
  int n = static_cast<int>(plan.fds.size());
  for (int i = 0; i < n; ++i) sources[i] = plan.fds[i] < 0 ? prep.devNull : plan.fds[i];
  int total = n;
  if (plan.useInit) {
    prep.errorFdInside = total;
    sources[total++] = prep.errorPipe[1];
    prep.statusFdInside = total;
    sources[total++] = prep.statusPipe[1];
    sources[total++] = prep.initFd;  // executed with execveat(); close-on-exec is fine for ELF
  }
  if (!plan.useInit && prep.errorPipe[1] < total) {
    int moved = fcntl(prep.errorPipe[1], F_DUPFD_CLOEXEC, total);
    if (moved < 0) return errno;
    prep.errorPipe[1] = moved;
  }
  for (int i = 0; i < total; ++i) {
    if (sources[i] >= total) continue;
    int moved = fcntl(sources[i], F_DUPFD_CLOEXEC, total);
    if (moved < 0) return errno;
    for (int j = i + 1; j < total; ++j)
      if (sources[j] == sources[i]) sources[j] = moved;
    sources[i] = moved;
  }
  for (int i = 0; i < total; ++i) {
    // Without stockade-init the error pipe stays where it is, close-on-exec, so that a
    // successful execve closes it; every fd in the layout itself must survive execve.
    if (dup3(sources[i], i, 0) < 0) return errno;
  }
  if (plan.useInit) {
    // From here on, failures are reported through the copy stockade-init will inherit.
    prep.errorPipe[1] = prep.errorFdInside;
    prep.initFd = total - 1;
    if (fcntl(prep.initFd, F_SETFD, FD_CLOEXEC) != 0) return errno;
    return closeFrom(total, ~0U);
  }
  int keep = prep.errorPipe[1];
  if (keep > total) {
    if (int err = closeFrom(total, static_cast<unsigned>(keep - 1))) return err;
  }
  return closeFrom(static_cast<unsigned>(keep + 1), ~0U);
}

}  // namespace stockade
