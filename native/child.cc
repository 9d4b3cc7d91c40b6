// child.cc — everything between clone() and execve(), in order. Read this file as a checklist.
//
// The child shares the memory of a multi-threaded Node process (CLONE_VM, see spawn.cc) and
// runs on a stack of its own, with the TLS of the Node thread that called clone(): it may only
// make raw system calls (syscall.h: no glibc wrappers, so no errno; no malloc, no locks, no
// stdio, no exceptions); everything it needs was prepared by spawn.cc, and it reads that through
// const references and writes only to its own stack. A failing step writes {step, errno, index}
// on the error pipe and exits 127.
//
// Signals arrive blocked (the parent blocks them around clone()). Without CLONE_SIGHAND the
// child has its own copy of the disposition table, so resetting it here leaves Node's handlers
// in place; the reset happens first, so that none of Node's handlers could run here, and the
// mask is cleared right before execve.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>

#include "child.h"
#include "syscall.h"

namespace stockade {

[[noreturn]] void failInChild(const ChildFds& fds, Step step, int err, int index) {
  ChildError record = {static_cast<int32_t>(step), err, index};
  sys(SYS_write, fds.error, &record, sizeof record);
  sys(SYS_exit_group, 127);
  __builtin_unreachable();
}

// The kernel's struct sigaction for rt_sigaction (x86_64 and the generic layout of aarch64
// agree: both have sa_restorer), not glibc's.
struct KernelSigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)();
  uint64_t mask;
};

static void resetSignalDispositions() {
  KernelSigaction action = {SIG_DFL, 0, nullptr, 0};
  // Ignored signals (Node ignores SIGPIPE) would stay ignored across execve; handled ones would
  // run Node's code here. Errors for SIGKILL and SIGSTOP are expected. This changes the child's
  // copy of the table only (no CLONE_SIGHAND).
  for (int sig = 1; sig <= 64; ++sig)
    sys(SYS_rt_sigaction, sig, &action, nullptr, sizeof action.mask);
}

// PR_SET_PDEATHSIG kills this process when the parent thread dies; a parent that died before
// the call is caught by polling its pidfd. The setting is cleared by a change of credentials,
// so it is made again after setIdentityInChild().
static void dieWithParent(const Prepared& prep, const ChildFds& fds) {
  if (int err = sysError(sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)))
    failInChild(fds, Step::kDeathSignal, err);
  struct pollfd pfd = {prep.parentPidfd, POLLIN, 0};
  struct timespec now = {0, 0};
  if (prep.parentPidfd >= 0 && sys(SYS_ppoll, &pfd, 1, &now, nullptr, 0) != 0)
    sys(SYS_exit_group, 127);
}

// No controlling terminal, and a process group of its own, in the caller's session. What setsid()
// gave the sandbox, without the scheduler autogroup the kernel makes for every new session
// (sched_autogroup_enabled=1, Debian's and Ubuntu's default): an autogroup is a CPU share of its
// own, and on a loaded host a sandboxed MCP server then waited behind every other session for
// each wakeup, 2-4x slower per round trip than the same server started directly (bench/mcp.ts).
// - TIOCNOTTY on the controlling terminal (opened as /dev/tty, before the root is built) drops
//   it for this process only: the child is not a session leader, so nobody else loses it and
//   no SIGHUP is sent. Then /dev/tty inside opens with ENXIO, TIOCSTI on an inherited terminal
//   is refused for not being the controlling one (besides seccomp's EPERM), and the terminal's
//   job control never stops or signals the sandbox. A process that is not a session leader can
//   never get a controlling terminal back (TIOCSCTTY and open() both need one).
// - setpgid(0, 0): out of the caller's (foreground) process group, so ^C, ^Z and hangup in the
//   caller's terminal signal the launcher, which forwards to stockade-init, not the payload.
// Where /dev/tty cannot be opened for another reason than "no controlling terminal" (ENXIO),
// each of the payload's stdio fds is tried instead (ENOTTY for one that is not a terminal).
static int leaveTerminal(const Plan& plan) {
  long tty = sys(SYS_openat, AT_FDCWD, "/dev/tty", O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (tty >= 0) {
    long rc = sys(SYS_ioctl, tty, TIOCNOTTY, 0);
    sys(SYS_close, tty);
    if (int err = sysError(rc)) return err;
  } else if (sysError(tty) != ENXIO) {
    for (int fd : plan.fds)
      if (fd >= 0) sys(SYS_ioctl, fd, TIOCNOTTY, 0);
  }
  return sysError(sys(SYS_setpgid, 0, 0));
}

[[noreturn]] static void buildSandbox(const Plan& plan, const Prepared& prep, bool early);

[[noreturn]] void runChild(const Plan& plan, const Prepared& prep) {
  resetSignalDispositions();
  buildSandbox(plan, prep, false);
}

// 0. A warm child, before its plan exists: default signal dispositions, death with the spawner
//    thread, a name that tells it apart in ps, its budgets once its id maps are written, then
//    the wait. Until the wake it has no state of
//    any tenant: no mounts of its own, no listeners, no environment, and only the fd table it
//    shares with the parent. After the wake, before it answers: unshare(CLONE_FILES) copies that
//    table as it is now, holding every fd the parent prepared for this sandbox (and whatever
//    else the parent has open, as clone() would have copied it; arrangeFdsInChild closes all
//    that is not planned), and unshare(CLONE_NEWNS) copies the host's mount table as it is now,
//    owned by the child's user namespace, so its mounts are locked as clone(CLONE_NEWNS) would
//    have them. From there on it is the child of any spawn (buildSandbox).
[[noreturn]] void runWarmChild(const WarmChild& warm) {
  resetSignalDispositions();
  sys(SYS_prctl, PR_SET_NAME, "stockade-warm", 0, 0, 0);
  if (sysError(sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0))) sys(SYS_exit_group, 127);
  struct pollfd parent = {warm.parentPidfd, POLLIN, 0};
  struct timespec now = {0, 0};
  if (sys(SYS_ppoll, &parent, 1, &now, nullptr, 0) != 0) sys(SYS_exit_group, 127);
  auto await = [&](char expected) {
    char got;
    long n;
    do {
      n = sys(SYS_read, warm.channel, &got, 1);
    } while (n == -EINTR);
    if (n != 1 || got != expected) sys(SYS_exit_group, 0);  // the pool let it go
  };
  // Its id maps are written: steps 1c and 1d of buildSandbox, which depend only on the key the
  // warm child was made for (WarmKey: the same budgets, the same Fast Open setting), done now.
  // A failure ends it; the spawn that would have taken it then clones and reports the error.
  await('M');
  int index = -1;
  if (setBudgetsInChild(*warm.early, &index) != 0 || disableFastOpenInChild(*warm.early) != 0)
    sys(SYS_exit_group, 127);
  loopbackCongestionInChild(*warm.early);
  // Done, and holding no fd of its own: from here until the wake it only waits, so that killing
  // it (the pool letting it go) never leaves an fd of this shared table open. makeWarm waits for
  // this answer before it counts the child as warm.
  char settled = 'E';
  if (sys(SYS_write, warm.channel, &settled, 1) != 1) sys(SYS_exit_group, 127);
  await('G');
  const Prepared& prep = *warm.prep;
  ChildFds fds = {prep.errorPipe[1], prep.statusPipe[1], prep.initFd};
  if (int err = sysError(sys(SYS_unshare, CLONE_FILES))) failInChild(fds, Step::kClone, err);
  if (int err = sysError(sys(SYS_unshare, CLONE_NEWNS))) failInChild(fds, Step::kClone, err);
  char ready = 'R';
  if (sys(SYS_write, warm.channel, &ready, 1) != 1) sys(SYS_exit_group, 127);
  buildSandbox(*warm.plan, prep, true);
}

// `early`: a warm child, which has set the budgets and Fast Open (1c, 1d) before its wake.
[[noreturn]] static void buildSandbox(const Plan& plan, const Prepared& prep, bool early) {
  ChildFds fds = {prep.errorPipe[1], prep.statusPipe[1], prep.initFd};

  // 1. Wait until the parent has written uid_map/gid_map (a warm child: until it has taken a
  //    reference to the new mount namespace). EOF: the parent failed (and reports it) or died.
  sys(SYS_close, prep.syncPipe[1]);
  char go;
  if (sys(SYS_read, prep.syncPipe[0], &go, 1) != 1) sys(SYS_exit_group, 127);
  dieWithParent(prep, fds);

  // 1b. Into the v1 cgroups (cgroup.cc; v2: born there), before anything is allocated or forked.
  int cgroup = -1;
  if (int err = joinCgroupsInChild(plan, &cgroup)) failInChild(fds, Step::kCgroup, err, cgroup);

  // 1c. The sandbox's own budgets of inotify, fanotify and namespaces (limits.cc), while this
  //     process is still root in its namespace with CAP_SYS_RESOURCE there.
  int budget = -1;
  if (int err = early ? 0 : setBudgetsInChild(plan, &budget))
    failInChild(fds, Step::kBudget, err, budget);

  // 1d. TCP Fast Open off where Landlock restricts connect() (net.cc says why), through the
  //     host's /proc while it is still visible.
  if (int err = early ? 0 : disableFastOpenInChild(plan)) failInChild(fds, Step::kFastOpen, err);
  if (!early) loopbackCongestionInChild(plan);

  // 1e. Out of the caller's terminal and process group (leaveTerminal above), while the host's
  //     /dev/tty is still in view.
  if (int err = leaveTerminal(plan)) failInChild(fds, Step::kSetsid, err);

  // 2. Filesystem: private mounts, tmpfs root, binds, /dev, /proc, /etc, pivot_root, cwd.
  Step step = Step::kMount;
  int index = -1;
  if (int err = buildRootInChild(plan, prep, &step, &index)) failInChild(fds, step, err, index);

  // 3. Network: lo up, transparent routing, the proxy's listeners handed to the parent.
  if (int err = setupNetworkInChild(plan, prep, &step, &index)) failInChild(fds, step, err, index);

  // 3b. Landlock, mirroring the mounts just built (landlock.cc): opened by their paths inside
  //     the new root, entered while the child still holds CAP_SYS_ADMIN in its user namespace
  //     (landlock_restrict_self needs that or no_new_privs).
  //     stockade-init's executable and the payload's stdio files get rules of their own.
  if (prep.landlockAbi > 0) {
    constexpr uint64_t kExecute = 1ull << 0, kWrite = 1ull << 1, kRead = 1ull << 2;
    constexpr uint64_t kTruncate = 1ull << 14, kIoctlDev = 1ull << 15;
    LandlockFdRule fdRules[kMaxFds + 1];
    int nFdRules = 0;
    fdRules[nFdRules++] = {prep.initFd, kExecute | kRead};
    if (plan.landlock.allowStdio) {
      for (int fd : plan.fds)
        fdRules[nFdRules++] = {fd < 0 ? prep.devNull : fd, kRead | kWrite | kTruncate | kIoctlDev};
    }
    if (int err =
            landlockRestrictInChild(plan.landlock, prep.landlockAbi, fdRules, nFdRules, &index))
      failInChild(fds, Step::kLandlock, err, index);
  }

  // 4. Hostname, rlimits, and back to the scheduling policy of a normal process: the
  //    spawner thread, and so this child until here, runs SCHED_BATCH (spawner.cc), which the
  //    payload must not inherit.
  if (int err = sysError(sys(SYS_sethostname, plan.hostname.data(), plan.hostname.size())))
    failInChild(fds, Step::kHostname, err);
  if (plan.resetScheduler) {
    struct sched_param normal = {};
    if (int err = sysError(sys(SYS_sched_setscheduler, 0, SCHED_OTHER, &normal)))
      failInChild(fds, Step::kSetsid, err);
  }
  for (size_t i = 0; i < plan.limits.size(); ++i) {
    const Limit& limit = plan.limits[i];
    if (int err = sysError(sys(SYS_prlimit64, 0, limit.resource, &limit.value, nullptr)))
      failInChild(fds, Step::kRlimit, err, static_cast<int>(i));
  }
  sys(SYS_umask, 022);

  // 5. Privileges: bounding set (needs CAP_SETPCAP, so before the identity change), uid/gid
  //    65534, capabilities to zero, no_new_privs.
  if (int err = dropBoundingSetInChild(prep.lastCap)) failInChild(fds, Step::kBoundingSet, err);
  if (int err = setIdentityInChild(plan, prep.hostRoot)) failInChild(fds, Step::kIdentity, err);
  dieWithParent(prep, fds);
  if (int err = dropCapabilitiesInChild()) failInChild(fds, Step::kCapabilities, err);
  if (int err = sysError(sys(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)))
    failInChild(fds, Step::kNoNewPrivs, err);

  // 6. File descriptors: the planned layout, every other fd closed.
  if (int err = arrangeFdsInChild(plan, prep, &fds)) failInChild(fds, Step::kFds, err);

  // 7. seccomp, then execve. System calls after the filter: write and exit_group (on
  //    failure), dup3, fcntl and close (the supervisor's listener to its planned number, right
  //    after stockade-init's executable), rt_sigprocmask, execveat (stockade-init) or execve
  //    (the payload). Both profiles allow all of them.
  if (prep.filter != nullptr) {
    int listener = -1;
    if (int err = installFilterInChild(prep.filter, prep.notify, &listener))
      failInChild(fds, Step::kSeccomp, err);
    if (listener >= 0) {
      // Not close-on-exec: stockade-init inherits it (and sets close-on-exec itself, so the
      // payload never holds it).
      int planned = fds.init + 1;
      long rc = listener == planned ? sys(SYS_fcntl, listener, F_SETFD, 0)
                                    : sys(SYS_dup3, listener, planned, 0);
      if (int err = sysError(rc)) failInChild(fds, Step::kSeccomp, err);
      if (listener != planned) sys(SYS_close, listener);
    }
  }
  uint64_t none = 0;
  sys(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof none);
  long rc;
  if (plan.useInit) {
    rc = sys(SYS_execveat, fds.init, "", prep.argv.data(), prep.envp.data(), AT_EMPTY_PATH);
  } else {
    rc = sys(SYS_execve, plan.file.c_str(), prep.argv.data(), prep.envp.data());
  }
  failInChild(fds, Step::kExec, sysError(rc));
}

}  // namespace stockade
