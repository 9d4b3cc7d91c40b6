// child.cc — everything between clone() and execve(), in order. Read this file as a checklist.
//
// The child is a copy of a multi-threaded Node process with one thread: it may only make
// system calls (no malloc, no locks, no stdio, no exceptions); everything it needs was prepared
// by spawn.cc. A failing step writes {step, errno, index} on the error pipe and exits 127.
//
// Signals arrive blocked (the parent blocks them around clone()); dispositions are reset
// first, so that none of Node's handlers can run here, and the mask is cleared right before
// execve.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"

namespace stockade {

[[noreturn]] void failInChild(const Prepared& prep, Step step, int err, int index) {
  ChildError record = {static_cast<int32_t>(step), err, index};
  ssize_t ignored = write(prep.errorPipe[1], &record, sizeof record);
  (void)ignored;
  syscall(SYS_exit_group, 127);
  __builtin_unreachable();
}

static void resetSignalDispositions() {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = SIG_DFL;
  // Ignored signals (Node ignores SIGPIPE) would stay ignored across execve; handled ones would
  // run Node's code here. Errors for SIGKILL, SIGSTOP and glibc's reserved signals are expected.
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &action, nullptr);
}

// PR_SET_PDEATHSIG kills this process when the parent thread dies; a parent that died before
// the call is caught by polling its pidfd. The setting is cleared by a change of credentials,
// so it is made again after setIdentityInChild().
static void dieWithParent(const Prepared& prep) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) failInChild(prep, Step::kDeathSignal, errno);
  struct pollfd pfd = {prep.parentPidfd, POLLIN, 0};
  if (prep.parentPidfd >= 0 && poll(&pfd, 1, 0) != 0) syscall(SYS_exit_group, 127);
}

[[noreturn]] void runChild(Plan& plan, Prepared& prep) {
  resetSignalDispositions();

  // 1. Wait until the parent has written uid_map/gid_map. EOF: the parent failed (and reports
  //    it) or died.
  close(prep.syncPipe[1]);
  char go;
  if (read(prep.syncPipe[0], &go, 1) != 1) syscall(SYS_exit_group, 127);
  dieWithParent(prep);

  // 2. Filesystem: private mounts, tmpfs root, binds, /dev, /proc, /etc, pivot_root, cwd.
  Step step = Step::kMount;
  int index = -1;
  if (int err = buildRootInChild(plan, &step, &index)) failInChild(prep, step, err, index);

  // 3. Network: lo up, transparent routing, the proxy's listeners handed to the parent.
  if (int err = setupNetworkInChild(plan, prep, &step, &index)) failInChild(prep, step, err, index);

  // 4. Hostname, a session of its own (no controlling terminal to push input into), rlimits.
  if (sethostname(plan.hostname.data(), plan.hostname.size()) != 0)
    failInChild(prep, Step::kHostname, errno);
  if (setsid() < 0) failInChild(prep, Step::kSetsid, errno);
  for (size_t i = 0; i < plan.limits.size(); ++i) {
    const Limit& limit = plan.limits[i];
    if (syscall(SYS_prlimit64, 0, limit.resource, &limit.value, nullptr) != 0)
      failInChild(prep, Step::kRlimit, errno, static_cast<int>(i));
  }
  umask(022);

  // 5. Privileges: bounding set (needs CAP_SETPCAP, so before the identity change), uid/gid
  //    65534, capabilities to zero, no_new_privs.
  if (int err = dropBoundingSetInChild(prep.lastCap)) failInChild(prep, Step::kBoundingSet, err);
  if (int err = setIdentityInChild(plan, prep.hostRoot)) failInChild(prep, Step::kIdentity, err);
  dieWithParent(prep);
  if (int err = dropCapabilitiesInChild()) failInChild(prep, Step::kCapabilities, err);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) failInChild(prep, Step::kNoNewPrivs, errno);

  // 6. File descriptors: the planned layout, every other fd closed.
  if (int err = arrangeFdsInChild(plan, prep)) failInChild(prep, Step::kFds, err);

  // 7. seccomp, then execve. System calls after the filter: write and exit_group (on
  //    failure), rt_sigprocmask, execveat (stockade-init) or execve (the payload). All are
  //    allowed by the default profile.
  if (plan.seccomp) {
    if (int err = installFilterInChild(defaultFilter())) failInChild(prep, Step::kSeccomp, err);
  }
  sigset_t none;
  sigemptyset(&none);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof(uint64_t));
  if (plan.useInit) {
    syscall(SYS_execveat, prep.initFd, "", prep.argv.data(), prep.envp.data(), AT_EMPTY_PATH);
  } else {
    execve(plan.file.c_str(), prep.argv.data(), prep.envp.data());
  }
  failInChild(prep, Step::kExec, errno);
}

}  // namespace stockade
