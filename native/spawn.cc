// spawn.cc — the parent side: prepare, clone(), write the id maps, collect the outcome.
// man 2 clone (CLONE_VM; CLONE_PIDFD, 5.2), man 2 pidfd_open (5.3), man 7 namespaces,
// man 2 prctl (PR_SET_DUMPABLE).
//
// unshare(CLONE_NEWUSER) fails with EINVAL in a multi-threaded process such as Node, so the
// namespaces are created by clone() itself. Signals are blocked around clone() so that no Node
// handler runs in the child before it resets them. The parent then blocks on the error pipe
// until execve (EOF) or a failure record: like libuv's uv_spawn, a spawn either fails or has
// exec'd when this returns. "The parent" is the environment's spawner thread (spawner.cc), not
// the JS thread, so the event loop runs on while a sandbox is being built.
//
// Why CLONE_VM. With fork semantics the kernel copies Node's page tables (a large address space:
// V8 heap reservations, code space, the binary) and marks every private page copy-on-write, the
// parent then takes CoW faults on its own next writes, and the child's exit tears the copy down.
// From Node that costs about 1.1 ms of a 1.7 ms clone-and-exit, more than all seven namespaces
// together. With CLONE_VM the child runs in the parent's address space, on a stack of its own
// mapped here, until execve gives it a fresh one — what glibc's posix_spawn and libuv's vfork
// path do. Unlike them, not CLONE_VFORK: the parent must keep running while the child waits on
// the sync pipe, to write /proc/PID/uid_map and gid_map (only a process outside the new user
// namespace can map ids other than its own), and then to read the error pipe.
//
// What sharing the address space requires, and why each holds:
// - The child has no TLS of its own: it runs with the parent thread's thread pointer, so it must
//   not call glibc wrappers, which write errno there (and update the thread's cancellation
//   state). Everything the child does goes through syscall.h; the parent side keeps glibc.
// - Plan and Prepared are read by the child in place. From clone() until the child has left this
//   address space, the parent neither frees nor changes them: it closes its copies of the child's
//   pipe ends by number and forgets the numbers only afterwards (forgetChildEnds), and every
//   error path kills and reaps the child before anything is freed. The child writes only to its
//   own stack (the fd numbers it renumbers, its copy of each mount target for mkdir -p).
// - "Has left": the error pipe's write end is close-on-exec, and the kernel closes it only after
//   switching the child to its new mm (exec_mmap before do_close_on_exec) or, on exit, after
//   exit_mm (do_exit drops the mm before the files). So EOF on the error pipe, or a reaped
//   child, means the child no longer runs in this memory; only then is its stack unmapped.
// - Signal dispositions: no CLONE_SIGHAND, so the kernel gives the child a copy of the handler
//   table (copy_sighand), and the child's reset to SIG_DFL leaves Node's handlers untouched.
//   No CLONE_FILES and no CLONE_FS either: the child's fd table, cwd, root and umask are its own.
//   (A warm child shares the fd table until its wake, then takes its own copy first: below.)
// - rseq: the kernel does not carry the parent's rseq registration over to a CLONE_VM child
//   (rseq_fork), so it never writes the parent thread's rseq area on the child's behalf; the
//   child's robust-futex list starts empty, so its exit walks none of Node's mutexes.
// - Node's other threads (V8's GC and compiler threads, the libuv pool, inspector) keep running
//   in the shared address space. They cannot reach the Plan, Prepared or the child's stack:
//   those are C++ heap objects and an mmap owned by this call, which no other thread has a
//   pointer to, and V8 does not move or free memory it did not allocate. The child does not take
//   malloc's or any other lock, so a lock another thread holds cannot stall it — the hazard of
//   fork() in a threaded process does not arise.
// - Dumpability is a property of the mm, and the kernel clears it when a task of that mm changes
//   its euid or egid (commit_creds). As host root the child's setresuid(0 -> 65534) would thus
//   make Node itself non-dumpable (no core dumps, /proc/PID root-owned); the parent restores the
//   flag once the child has exec'd. Unprivileged, the ids do not change (the caller is already
//   65534 inside) and dropping capabilities does not count, so the flag is left alone.
// - A synchronous fatal signal in the child before execve (a bug: SIGSEGV) kills only the child
//   on 5.16+, where core dumps stopped zapping other processes that share the mm.
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <optional>

#include "child.h"
#include "syscall.h"
#include "sysnums.h"

namespace stockade {

namespace {

constexpr unsigned long kNamespaces =
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;

// The child's stack: 128 KiB is far more than the child path needs (no recursion; the largest
// frame is a PATH_MAX copy of a mount target), and untouched pages cost nothing. A PROT_NONE
// guard page below it turns an overflow into a fault in the child instead of a write into
// whatever the parent has mapped underneath.
constexpr size_t kChildStackSize = 128 * 1024;

class ChildStack {
 public:
  ChildStack() {
    guard_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* p = mmap(nullptr, guard_ + kChildStackSize, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) {
      err_ = errno;
      return;
    }
    base_ = static_cast<char*>(p);
    if (mprotect(base_ + guard_, kChildStackSize, PROT_READ | PROT_WRITE) != 0) err_ = errno;
  }
  ~ChildStack() {
    if (base_ != nullptr) munmap(base_, guard_ + kChildStackSize);
  }
  ChildStack(const ChildStack&) = delete;
  ChildStack& operator=(const ChildStack&) = delete;
  int error() const { return err_; }  // 0 or the errno of mmap/mprotect
  // Stacks grow down on x86_64 and aarch64; both want 16-byte alignment at the call.
  void* top() const { return base_ + guard_ + kChildStackSize; }
  // For clone3, which takes the lowest address and the size.
  void* bottom() const { return base_ + guard_; }
  size_t size() const { return kChildStackSize; }

 private:
  char* base_ = nullptr;
  size_t guard_ = 0;
  int err_ = 0;
};

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
  for (int& fd : prep.mountFds) closeFd(fd);
}

// Builds every array and buffer the child will read; returns an errno.
int prepare(Plan& plan, Prepared& prep) {
  prep.hostRoot = geteuid() == 0;
  prep.lastCap = readLastCap();
  if (plan.useInit) {
    int n = static_cast<int>(plan.fds.size());
    // The seccomp listener, if any, lands right after stockade-init's own fd (child.cc).
    prep.notify = plan.seccomp && seccompNotifyAvailable();
    prep.initArgv = {"stockade-init", std::to_string(n), std::to_string(n + 1),
                     prep.notify ? std::to_string(n + 3) : "-", plan.file};
    for (auto& s : prep.initArgv) prep.argv.push_back(&s[0]);
  }
  for (auto& s : plan.argv) prep.argv.push_back(&s[0]);
  prep.argv.push_back(nullptr);
  for (auto& s : plan.envp) prep.envp.push_back(&s[0]);
  prep.envp.push_back(nullptr);
  if (plan.routeAllLocal) prepareRouteMessages(prep);
  if (plan.seccomp) prep.filter = filterFor(plan.seccompProfile, prep.notify);  // built once
  if (plan.landlock.enabled) {
    int abi = landlockAbi();
    prep.landlockAbi = abi >= 2 ? abi : 0;  // ABI 1 cannot allow renames (landlock.cc)
  }

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

struct ChildArgs {
  const Plan* plan;
  const Prepared* prep;
};

int childMain(void* arg) {
  auto* args = static_cast<const ChildArgs*>(arg);
  runChild(*args->plan, *args->prep);
}

int warmMain(void* arg) {
  runWarmChild(*static_cast<const WarmChild*>(arg));
}

int probeMain(void*) {
  sys(SYS_exit_group, 0);
  __builtin_unreachable();
}

// clone(CLONE_VM) on `stack` with fork-like exit signalling (SIGCHLD) and a pidfd, which the
// kernel stores through parent_tid. glibc's clone() wrapper only sets up the child's stack and
// calls `fn` there; in the child it touches neither TLS nor errno.
pid_t cloneChild(unsigned long flags, const ChildStack& stack, int (*fn)(void*), void* arg,
                 int* pidfd) {
  return clone(fn, stack.top(), static_cast<int>(flags | CLONE_VM | CLONE_PIDFD | SIGCHLD), arg,
               pidfd, nullptr, nullptr);
}

void reap(pid_t pid, int pidfd) {
  killAndReap(pid, pidfd);
}

// The child's ends of the pipes, which the parent closed by number right after clone(): now
// that the child has left this address space, the numbers may be dropped from Prepared.
void forgetChildEnds(Prepared& prep) {
  prep.errorPipe[1] = -1;
  prep.syncPipe[0] = -1;
  prep.syncPipe[1] = -1;
  prep.statusPipe[1] = -1;
  prep.listenerSocket[1] = -1;
}

// The sandbox's mount namespace, opened while the child waits on the sync pipe (so it is alive
// and its pid is its own); -1 where it cannot be opened, which costs time, nothing else
// (SpawnResult::mountNsFd).
int openMountNamespaceFromParent(pid_t pid) {
  char path[40];
  snprintf(path, sizeof path, "/proc/%d/ns/mnt", static_cast<int>(pid));
  return open(path, O_RDONLY | O_CLOEXEC);
}

// See "Dumpability" above: undo the kernel's reset after a child changed its ids.
void restoreDumpable(int before) {
  if ((before == 0 || before == 1) && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != before)
    prctl(PR_SET_DUMPABLE, before, 0, 0, 0);
}

}  // namespace

// The warm pool (README, Architecture notes: "The warm pool"). A warm child is a CLONE_VM child
// like any other, with two differences until it is woken: it shares the parent's fd table
// (CLONE_FILES), so that the fds a spawn prepares later are in it without passing them over a
// socket, and it stays in the host's mount namespace, so that the table it copies is the host's
// at the wake, not a stale one. What the CLONE_VM rules above require holds for it too: it runs
// raw system calls only; it reads WarmChild, Plan and Prepared in place, which the parent sets
// before the wake and leaves alone until the child has exec'd or died; it runs on a stack of its
// own, owned by the entry, unmapped only after it has been reaped or has exec'd; and the thread
// that made it (the spawner thread, whose TLS it has) is the one that wakes it and then waits
// for its exec, as for a fresh child. While it waits, the spawner thread runs other jobs: the
// child is blocked in read(), touching nothing.
struct WarmEntry {
  WarmKey key;
  pid_t pid = -1;
  int pidfd = -1;
  // The wake socketpair: [0] the parent's end, [1] the child's. Both sit in the fd table the
  // child shares until its wake, so neither side sees the other's death as EOF: the parent
  // watches the pidfd instead.
  int channel[2] = {-1, -1};
  std::string cgroupDir;
  ChildStack stack;
  Plan early;       // the key's ids, budgets and Fast Open setting, as a Plan (child.h)
  WarmChild child;  // read by the child, after 'M' and after its wake
};

void WarmDeleter::operator()(WarmEntry* w) const {
  // Killed and reaped before anything it might read goes: it runs in this memory.
  if (w->pidfd >= 0) {
    killAndReap(w->pid, w->pidfd);
    close(w->pidfd);
  }
  for (int& fd : w->channel) closeFd(fd);
  closeFd(w->child.parentPidfd);
  if (!w->cgroupDir.empty()) removeCgroupDirs({w->cgroupDir});
  delete w;
}

WarmKey warmKeyOf(const Plan& plan) {
  WarmKey key;
  key.shareNetwork = plan.shareNetwork;
  key.callerUid = geteuid();
  key.callerGid = getegid();
  key.hostRoot = key.callerUid == 0;
  key.uid = plan.uid;
  key.gid = plan.gid;
  key.hostUid = plan.hostUid;
  key.hostGid = plan.hostGid;
  for (const CgroupSpec& cg : plan.cgroups) {
    if (cg.version != 2) continue;
    key.cgroupParent = cg.dir.substr(0, cg.dir.rfind('/'));
    break;
  }
  key.budgets = plan.budgets;
  key.fastOpenOff = !plan.shareNetwork && plan.landlock.handledNet != 0;
  return key;
}

bool warmMatches(const WarmEntry& entry, const WarmKey& key) {
  return entry.key == key;
}

std::string adoptWarmCgroup(WarmEntry& entry) {
  std::string dir = std::move(entry.cgroupDir);
  entry.cgroupDir.clear();
  return dir;
}

Warm makeWarm(const WarmKey& key) {
  Warm w(new WarmEntry);
  w->key = key;
  if (w->stack.error() != 0) return nullptr;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, w->channel) != 0) return nullptr;
  w->child.channel = w->channel[1];
  w->early.uid = key.uid;
  w->early.gid = key.gid;
  w->early.hostUid = key.hostUid;
  w->early.hostGid = key.hostGid;
  w->early.budgets = key.budgets;
  w->early.shareNetwork = key.shareNetwork;
  w->early.landlock.handledNet = key.fastOpenOff ? 1 : 0;
  w->child.early = &w->early;
  w->child.parentPidfd = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  if (w->child.parentPidfd < 0) return nullptr;
  // Born in a v2 cgroup of its own (moving a process later costs an RCU grace period, cgroup.cc),
  // named like lib/limits' ("pid-thread-n"), so that a launcher killed with one is swept.
  int cgroupFd = -1;
  if (!key.cgroupParent.empty()) {
    static std::atomic<unsigned> made{0};
    char name[64];
    snprintf(name, sizeof name, "/%d-%ld-w%u", static_cast<int>(getpid()), syscall(SYS_gettid),
             ++made);
    std::string dir = key.cgroupParent + name;
    if (mkdir(dir.c_str(), 0755) != 0) return nullptr;
    w->cgroupDir = dir;
    cgroupFd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroupFd < 0) return nullptr;
  }
  unsigned long flags =
      (kNamespaces & ~CLONE_NEWNS) | CLONE_FILES | (key.shareNetwork ? 0 : CLONE_NEWNET);
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  pid_t pid = cgroupFd >= 0 ? cloneIntoCgroup(flags, w->stack.bottom(), w->stack.size(), cgroupFd,
                                              warmMain, &w->child, &w->pidfd)
                            : cloneChild(flags, w->stack, warmMain, &w->child, &w->pidfd);
  sigprocmask(SIG_SETMASK, &old, nullptr);
  if (cgroupFd >= 0) close(cgroupFd);
  if (pid < 0) {
    w->pidfd = -1;
    return nullptr;  // without clone3 too: no pool where a v2 cgroup would need a move
  }
  w->pid = pid;
  std::string failed;
  if (writeIdMapsFromParent(pid, w->early, key.hostRoot, &failed) != 0) return nullptr;
  char maps = 'M';
  if (write(w->channel[0], &maps, 1) != 1) return nullptr;
  // Until it answers, it opens and closes files in the fd table it shares with this process: it
  // must not be killed then (an fd it opened would stay open here), so this waits. A child that
  // died instead (its budgets refused) is reaped by the deleter.
  struct pollfd wait[2] = {{w->channel[0], POLLIN, 0}, {w->pidfd, POLLIN, 0}};
  for (;;) {
    if (poll(wait, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return nullptr;
    }
    char early;
    if ((wait[0].revents & POLLIN) && read(w->channel[0], &early, 1) == 1 && early == 'E') return w;
    if (wait[1].revents != 0) return nullptr;
  }
}

namespace {

// Hands `plan` to a warm child and waits until it holds its own fd table and mount namespace:
// 0; ESRCH if it had died before it took anything (the spawn clones a fresh child instead);
// else the errno it reported (its record is on the error pipe) or EPIPE. The child then waits
// on the sync pipe, as a fresh one waits for its id maps.
int wakeWarm(WarmEntry& w, const Plan& plan, const Prepared& prep) {
  w.child.plan = &plan;
  w.child.prep = &prep;
  char go = 'G';
  if (write(w.channel[0], &go, 1) != 1) return EPIPE;
  struct pollfd wait[2] = {{w.channel[0], POLLIN, 0}, {w.pidfd, POLLIN, 0}};
  for (;;) {
    if (poll(wait, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    char ready;
    if ((wait[0].revents & POLLIN) && read(w.channel[0], &ready, 1) == 1) return 0;
    if (wait[1].revents != 0) break;
  }
  // Gone: reaped here, so that nothing of it runs in this memory any more.
  killAndReap(w.pid, w.pidfd);
  close(w.pidfd);
  w.pidfd = -1;
  ChildError record;
  int flags = fcntl(prep.errorPipe[0], F_GETFL);
  fcntl(prep.errorPipe[0], F_SETFL, flags | O_NONBLOCK);
  ssize_t n = read(prep.errorPipe[0], &record, sizeof record);
  fcntl(prep.errorPipe[0], F_SETFL, flags);
  if (n == static_cast<ssize_t>(sizeof record)) return record.err != 0 ? record.err : EPIPE;
  return ESRCH;
}

}  // namespace

SpawnResult spawnSandbox(Plan& plan, Warm warm) {
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
  int mountIndex = -1;
  if (int err = prepareMountsFromParent(plan, prep, &mountIndex)) {
    closeAll(prep);
    fail(Step::kIdmapMount, err);
    result.error.index = mountIndex;
    return result;
  }

  int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  int pidfd = -1;
  pid_t pid = -1;
  bool woken = false;  // a warm child took the plan (its id maps are written, its cgroup is v2's)
  if (warm) {
    int err = wakeWarm(*warm, plan, prep);
    if (err == 0) {
      pid = warm->pid;
      pidfd = warm->pidfd;
      warm->pid = warm->pidfd = -1;
      woken = true;
    } else if (err != ESRCH) {
      closeAll(prep);
      return fail(Step::kClone, err);
    }
  }

  std::optional<ChildStack> stack;
  ChildArgs args = {&plan, &prep};
  bool joinV2 = false;
  if (!woken) {
    stack.emplace();
    if (int err = stack->error()) {
      closeAll(prep);
      return fail(Step::kClone, err);
    }
    unsigned long flags = kNamespaces | (plan.shareNetwork ? 0 : CLONE_NEWNET);
    sigset_t all, old;
    sigfillset(&all);
    // sigprocmask, not pthread_sigmask: in glibc both set the calling thread's mask (and keep
    // glibc's internal signals unblocked), but pthread_sigmask in libc proper is a GLIBC_2.32
    // symbol, and the prebuilt addon must load on glibc 2.28.
    sigprocmask(SIG_SETMASK, &all, &old);
    // Into its v2 cgroup from birth (cgroup.cc); clone() and a move at the sync point where
    // clone3 is missing.
    int cloneErr = 0;
    if (plan.cgroupFd >= 0) {
      pid = cloneIntoCgroup(flags, stack->bottom(), stack->size(), plan.cgroupFd, childMain, &args,
                            &pidfd);
      cloneErr = errno;
      joinV2 = pid < 0 && cloneErr == ENOSYS;
    }
    if (plan.cgroupFd < 0 || joinV2) {
      pid = cloneChild(flags, *stack, childMain, &args, &pidfd);
      cloneErr = errno;
    }
    sigprocmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) {
      closeAll(prep);
      return fail(Step::kClone, cloneErr);
    }
  }

  // From here until the child has exec'd or died, `plan` and `prep` are the child's too: read
  // them, close by number, change nothing (see the top of this file).
  auto childGone = [&] {
    forgetChildEnds(prep);
    restoreDumpable(dumpable);
  };
  close(prep.errorPipe[1]);
  close(prep.syncPipe[0]);
  if (prep.statusPipe[1] >= 0) close(prep.statusPipe[1]);
  if (prep.listenerSocket[1] >= 0) close(prep.listenerSocket[1]);

  if (int err = woken ? 0 : writeIdMapsFromParent(pid, plan, prep.hostRoot, &result.failedPath)) {
    close(prep.syncPipe[1]);
    reap(pid, pidfd);
    close(pidfd);
    childGone();
    closeAll(prep);
    return fail(Step::kIdMap, err);
  }
  if (int err = joinV2 ? joinV2CgroupFromParent(pid, plan) : 0) {
    close(prep.syncPipe[1]);
    reap(pid, pidfd);
    close(pidfd);
    childGone();
    closeAll(prep);
    return fail(Step::kCgroup, err);
  }
  result.mountNsFd = openMountNamespaceFromParent(pid);
  char go = 'G';
  ssize_t written = write(prep.syncPipe[1], &go, 1);
  (void)written;  // a child that died already reports through the error pipe (or not at all)
  close(prep.syncPipe[1]);

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
    if (result.mountNsFd >= 0) close(result.mountNsFd);
    result.mountNsFd = -1;
    // A record arrives while the child still runs on `stack`: reap before anything is freed.
    reap(pid, pidfd);
    close(pidfd);
    childGone();
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

  // EOF: the child has exec'd (or died) and so has left this address space.
  childGone();
  result.pid = pid;
  result.pidfd = pidfd;
  result.statusFd = prep.statusPipe[0];
  result.landlockAbi = prep.landlockAbi;
  result.seccompNotify = prep.notify;
  result.warm = woken;
  prep.statusPipe[0] = -1;
  closeAll(prep);
  return result;
}

// SIGKILL through the pidfd (no pid-reuse race), then the blocking wait. The sandbox's PID 1
// dies first and the kernel kills and reaps everything else in its pid namespace before PID 1
// becomes a zombie (zap_pid_ns_processes), so when this returns nothing of it is left.
void killAndReap(pid_t pid, int pidfd) {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  int status;
  while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
  }
}

int probeNamespaces() {
  ChildStack stack;
  if (int err = stack.error()) return err;
  int pidfd = -1;
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  pid_t pid = cloneChild(kNamespaces | CLONE_NEWNET, stack, probeMain, nullptr, &pidfd);
  int err = errno;
  sigprocmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return err;
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  close(pidfd);
  return 0;
}

}  // namespace stockade
