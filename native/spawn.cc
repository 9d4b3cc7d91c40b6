// spawn.cc — the parent side: prepare, clone(), write the id maps, collect the outcome.
// man 2 clone (CLONE_PIDFD, 5.2), man 2 pidfd_open (5.3), man 7 namespaces.
//
// unshare(CLONE_NEWUSER) fails with EINVAL in a multi-threaded process such as Node, so the
// namespaces are created by clone() itself, with fork semantics (no CLONE_VM): the child gets
// its own copy of memory, so everything prepared here stays valid there without locks.
// Signals are blocked around clone() so that no Node handler runs in the child before it
// resets them. The parent then blocks on the error pipe until execve (EOF) or a failure
// record: like libuv's uv_spawn, a spawn either fails synchronously or has exec'd.
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

namespace stockade {

namespace {

constexpr unsigned long kNamespaces =
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;

void closeFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

void closeAll(Prepared& prep) {
  for (int* pair : {prep.errorPipe, prep.syncPipe, prep.statusPipe, prep.listenerSocket}) {
    closeFd(pair[0]);
    closeFd(pair[1]);
  }
  closeFd(prep.devNull);
  closeFd(prep.initFd);
  closeFd(prep.parentPidfd);
}

// Builds every array and buffer the child will read; returns an errno.
int prepare(Plan& plan, Prepared& prep) {
  prep.hostRoot = geteuid() == 0;
  prep.lastCap = readLastCap();
  if (plan.useInit) {
    int n = static_cast<int>(plan.fds.size());
    prep.initArgv = {"stockade-init", std::to_string(n), std::to_string(n + 1), plan.file};
    for (auto& s : prep.initArgv) prep.argv.push_back(&s[0]);
  }
  for (auto& s : plan.argv) prep.argv.push_back(&s[0]);
  prep.argv.push_back(nullptr);
  for (auto& s : plan.envp) prep.envp.push_back(&s[0]);
  prep.envp.push_back(nullptr);
  if (plan.routeAllLocal) prepareRouteMessages(prep);
  prep.cmsgBuffer.assign(CMSG_SPACE(kMaxListeners * sizeof(int)), 0);
  if (plan.seccomp) defaultFilter();  // built once, before any clone()

  if (pipe2(prep.errorPipe, O_CLOEXEC) != 0 || pipe2(prep.syncPipe, O_CLOEXEC) != 0) return errno;
  if (plan.useInit) {
    if (pipe2(prep.statusPipe, O_CLOEXEC) != 0) return errno;
    prep.initFd = open(plan.initPath.c_str(), O_PATH | O_CLOEXEC);
    if (prep.initFd < 0) return errno;
  }
  if (!plan.listeners.empty() &&
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, prep.listenerSocket) != 0)
    return errno;
  for (int fd : plan.fds) {
    if (fd < 0 && prep.devNull < 0) {
      prep.devNull = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (prep.devNull < 0) return errno;
    }
  }
  prep.parentPidfd = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  return 0;
}

pid_t cloneChild(unsigned long flags, int* pidfd) {
  // Raw clone with fork semantics. The pidfd lands in the third argument (parent_tid) on both
  // x86_64 and aarch64.
  return static_cast<pid_t>(
      syscall(SYS_clone, flags | CLONE_PIDFD | SIGCHLD, nullptr, pidfd, nullptr, nullptr));
}

void reap(pid_t pid, int pidfd) {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  int status;
  while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
  }
}

}  // namespace

SpawnResult spawnSandbox(Plan& plan) {
  SpawnResult result;
  Prepared prep;
  auto fail = [&](Step step, int err) {
    result.failed = true;
    result.error = {static_cast<int32_t>(step), err, -1};
    return result;
  };
  if (int err = prepare(plan, prep)) {
    closeAll(prep);
    return fail(Step::kClone, err);
  }

  unsigned long flags = kNamespaces | (plan.shareNetwork ? 0 : CLONE_NEWNET);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  pid_t pid = cloneChild(flags, &pidfd);
  if (pid == 0) runChild(plan, prep);
  int cloneErr = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    closeAll(prep);
    return fail(Step::kClone, cloneErr);
  }

  closeFd(prep.errorPipe[1]);
  closeFd(prep.syncPipe[0]);
  closeFd(prep.statusPipe[1]);
  closeFd(prep.listenerSocket[1]);

  if (int err = writeIdMapsFromParent(pid, plan, prep.hostRoot, &result.failedPath)) {
    reap(pid, pidfd);
    close(pidfd);
    closeAll(prep);
    return fail(Step::kIdMap, err);
  }
  char go = 'G';
  ssize_t written = write(prep.syncPipe[1], &go, 1);
  (void)written;  // a child that died already reports through the error pipe (or not at all)
  closeFd(prep.syncPipe[1]);

  // The listeners arrive before execve; a child that failed earlier closes the socket and its
  // error record explains why, so a failed receive only matters if no record follows.
  int receiveErr = 0;
  if (!plan.listeners.empty())
    receiveErr = receiveListenersFromChild(prep.listenerSocket[0], plan.listeners.size(),
                                           &result.listenerFds);

  ChildError record;
  ssize_t n;
  do {
    n = read(prep.errorPipe[0], &record, sizeof record);
  } while (n < 0 && errno == EINTR);

  if (n != 0 || receiveErr != 0) {
    for (int fd : result.listenerFds) close(fd);
    result.listenerFds.clear();
    reap(pid, pidfd);
    close(pidfd);
    closeAll(prep);
    result.failed = true;
    if (n == sizeof record) {
      result.error = record;
    } else {
      // The child died without a record (killed before it could write, e.g. by SIGKILL).
      result.error = {static_cast<int32_t>(Step::kExec), receiveErr != 0 ? receiveErr : EPIPE, -1};
    }
    return result;
  }

  result.pid = pid;
  result.pidfd = pidfd;
  result.statusFd = prep.statusPipe[0];
  prep.statusPipe[0] = -1;
  closeAll(prep);
  return result;
}

int probeNamespaces() {
  int pidfd = -1;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = cloneChild(kNamespaces | CLONE_NEWNET, &pidfd);
  if (pid == 0) syscall(SYS_exit_group, 0);
  int err = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return err;
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  close(pidfd);
  return 0;
}

}  // namespace stockade
