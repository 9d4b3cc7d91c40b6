// cgroup.cc — putting the sandbox into the cgroups lib/limits prepared, from the parent side.
// man 2 clone3 (CLONE_INTO_CGROUP, Linux 5.7), man 7 cgroups, Documentation/admin-guide/
// cgroup-v2.rst ("Processes"), cgroup-v1/cgroups.rst ("Attaching processes").
//
// TypeScript decides the cgroups (lib/limits/cgroup.ts: where, which files, which values); this
// file makes them on the spawner thread, so that the mkdir and the writes (about 0.4 ms per
// spawn with three v1 hierarchies) do not hold the JS thread, and places the child:
// - cgroup v2: clone3() with CLONE_INTO_CGROUP and the cgroup's directory fd, so the child is
//   born inside it — there is no moment at which it runs, or forks, outside its limits. The
//   spawner may use clone3: the payload's seccomp profile answers clone3 with ENOSYS (its flags
//   sit in memory a filter cannot read), but that filter is installed in the child, long after.
//   Where clone3 itself is missing (before 5.7, or an outer container's seccomp profile makes it
//   ENOSYS, as Docker's does), the parent falls back to the v1 way below.
// - cgroup v1: the child moves itself, first thing after its sync point, before it has done
//   anything else: until then it has only run in the parent's memory (CLONE_VM), whose pages
//   are charged to the parent anyway, and it has not forked. It writes "0" to each hierarchy's
//   `tasks` file (descriptors TypeScript opened, which the child's copy of the fd table holds).
//   Why not the parent writing the child's pid to cgroup.procs: moving a whole thread group
//   takes the global cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period
//   — measured at 12-16 ms per spawn on the busy development VM, more than the whole spawn —
//   while a single thread moving itself ("0" to `tasks`) skips that lock (kernel/cgroup/
//   cgroup.c, cgroup_procs_write_start: "If we migrate a single thread, we don't care about
//   threadgroup stability"). The child is a thread group of one, so this moves all of it.
// - The clone3 fallback: the parent writes the child's pid to the v2 cgroup's cgroup.procs
//   while the child waits on its sync pipe.
//
// Why clone3 needs assembly here: with CLONE_VM the child must start on a stack of its own, and
// clone3 returns twice from one call — in the child on that new stack, where the C function
// that made the call has no frame. glibc's clone() wrapper handles this for clone(); for
// clone3 glibc has only an internal symbol (__clone3, 2.34), so the few instructions that call
// `fn(arg)` in the child are spelled out below, as glibc's clone3.S does.
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "spawn.h"
#include "syscall.h"

#ifndef SYS_clone3
#define SYS_clone3 435  // same number on x86_64 and aarch64
#endif

extern "C" long stockade_clone3(struct clone_args* args, size_t size, int (*fn)(void*), void* arg);

// long stockade_clone3(args, size, fn, arg): the raw result in the parent (pid or -errno); in
// the child, fn(arg) on the stack clone3 set up, then exit(fn's result) if fn ever returns.
#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl stockade_clone3\n"
    ".hidden stockade_clone3\n"
    ".type stockade_clone3,@function\n"
    "stockade_clone3:\n"
    "  mov %rcx, %r8\n"  // arg survives the syscall in r8 (the kernel clobbers rcx and r11)
    "  mov $435, %eax\n"
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jz 1f\n"
    "  ret\n"
    "1:\n"
    "  xor %ebp, %ebp\n"  // the outermost frame of the child
    "  and $-16, %rsp\n"
    "  mov %r8, %rdi\n"
    "  call *%rdx\n"  // fn is still in rdx, which the syscall preserves
    "  mov %rax, %rdi\n"
    "  mov $60, %eax\n"  // exit
    "  syscall\n"
    "  hlt\n"
    ".size stockade_clone3, .-stockade_clone3\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl stockade_clone3\n"
    ".hidden stockade_clone3\n"
    ".type stockade_clone3,%function\n"
    "stockade_clone3:\n"
    "  mov x10, x2\n"  // fn and arg in registers the syscall preserves
    "  mov x11, x3\n"
    "  mov x8, #435\n"
    "  svc #0\n"
    "  cbz x0, 1f\n"
    "  ret\n"
    "1:\n"
    "  mov x29, #0\n"
    "  mov x30, #0\n"
    "  mov x0, x11\n"
    "  blr x10\n"
    "  mov x8, #93\n"  // exit
    "  svc #0\n"
    "  brk #0\n"
    ".size stockade_clone3, .-stockade_clone3\n");
#else
#error "stockade's clone3 call covers x86_64 and aarch64"
#endif

namespace stockade {

pid_t cloneIntoCgroup(unsigned long flags, void* stackBase, size_t stackSize, int cgroupFd,
                      int (*fn)(void*), void* arg, int* pidfd) {
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = flags | CLONE_VM | CLONE_PIDFD | CLONE_INTO_CGROUP;
  args.pidfd = reinterpret_cast<uintptr_t>(pidfd);
  args.exit_signal = SIGCHLD;
  args.stack = reinterpret_cast<uintptr_t>(stackBase);
  args.stack_size = stackSize;
  args.cgroup = static_cast<uint64_t>(cgroupFd);
  long rc = stockade_clone3(&args, sizeof args, fn, arg);
  if (rc < 0) {
    errno = static_cast<int>(-rc);
    return -1;
  }
  return static_cast<pid_t>(rc);
}

namespace {

// mkdir -p, 0755: 0 or -1 with errno.
int mkdirParents(const std::string& dir) {
  if (dir.size() < 2) return 0;
  if (mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return 0;
  if (errno != ENOENT) return -1;
  if (mkdirParents(dir.substr(0, dir.rfind('/'))) != 0) return -1;
  return mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST ? 0 : -1;
}

int writeFileAt(int dir, const std::string& name, const std::string& value, bool optional) {
  int fd = openat(dir, name.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return optional && errno == ENOENT ? 0 : errno;
  ssize_t n = write(fd, value.data(), value.size());
  int err = n == static_cast<ssize_t>(value.size()) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return err;
}

// v1 OOM notification (oomwatch.cc): an eventfd registered with "<eventfd> <memory.oom_control
// fd>" in cgroup.event_control, before the child exists, so that no OOM of the sandbox can go
// unseen. The eventfd is the caller's once this returns 0.
int registerOom(int dir, int* eventFd, std::string* failed) {
  int oom = openat(dir, "memory.oom_control", O_RDONLY | O_CLOEXEC);
  if (oom < 0) {
    *failed = "memory.oom_control";
    return errno;
  }
  int control = openat(dir, "cgroup.event_control", O_WRONLY | O_CLOEXEC);
  int err = control < 0 ? errno : 0;
  int efd = -1;
  if (err == 0) {
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) err = errno;
  }
  if (err == 0) {
    char line[32];
    int len = snprintf(line, sizeof line, "%d %d", efd, oom);
    if (write(control, line, static_cast<size_t>(len)) != len) err = errno;
  }
  if (control >= 0) close(control);
  close(oom);
  if (err != 0) {
    if (efd >= 0) close(efd);
    *failed = "cgroup.event_control";
    return err;
  }
  *eventFd = efd;
  return 0;
}

}  // namespace

// The spawner thread, before prepare(): makes and configures every cgroup of plan.cgroups and
// opens what the child needs (the v2 directory for clone3, each v1 `tasks` file). On failure
// everything made is removed again and result names the file and the syscall.
int makeCgroupsFromParent(Plan& plan, SpawnResult& result) {
  size_t made = 0;  // directories made so far
  int err = 0;
  for (size_t i = 0; i < plan.cgroups.size() && err == 0; ++i) {
    const CgroupSpec& cg = plan.cgroups[i];
    std::string failed;  // the file within cg.dir, "" for the directory itself
    int rc = cg.premade ? 0 : mkdir(cg.dir.c_str(), 0755);
    if (rc != 0 && errno == ENOENT) {
      // The parent is settled once per process (lib/limits placement()); an empty parent removed
      // since (by whoever cleans up empty cgroups) is made again, once.
      std::string parent = cg.dir.substr(0, cg.dir.rfind('/'));
      rc = mkdirParents(parent) == 0 ? mkdir(cg.dir.c_str(), 0755) : -1;
    }
    if (rc != 0) {
      err = errno;
      result.failedSyscall = "mkdir";
    } else {
      made = i + 1;
    }
    int dir = -1;
    if (err == 0) {
      dir = open(cg.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir < 0) {
        err = errno;
        result.failedSyscall = "open";
      }
    }
    for (size_t f = 0; err == 0 && f < cg.files.size(); ++f) {
      const CgroupFile& file = cg.files[f];
      if ((err = writeFileAt(dir, file.name, file.value, file.optional)) != 0) {
        result.failedSyscall = "write";
        failed = file.name;
      }
    }
    if (err == 0 && cg.watchOom && result.oomEventFd < 0) {
      if ((err = registerOom(dir, &result.oomEventFd, &failed)) != 0)
        result.failedSyscall = "write";
    }
    if (err == 0 && cg.version == 2 && plan.cgroupFd < 0) {
      plan.cgroupFd = dir;  // clone3's CLONE_INTO_CGROUP
      dir = -1;
    } else if (err == 0 && cg.version == 1) {
      int tasks = openat(dir, "tasks", O_WRONLY | O_CLOEXEC);
      if (tasks < 0) {
        err = errno;
        result.failedSyscall = "open";
        failed = "tasks";
      } else {
        plan.cgroupTasksFds.push_back(tasks);
      }
    }
    if (dir >= 0) close(dir);
    if (err != 0) result.failedPath = failed.empty() ? cg.dir : cg.dir + "/" + failed;
  }
  if (err == 0) return 0;
  closeCgroupFds(plan);
  if (result.oomEventFd >= 0) close(result.oomEventFd);
  result.oomEventFd = -1;
  for (size_t i = made; i-- > 0;) rmdir(plan.cgroups[i].dir.c_str());
  return err;
}

// Once the child has exec'd or died: the spawner's descriptors are done with.
void closeCgroupFds(Plan& plan) {
  if (plan.cgroupFd >= 0) close(plan.cgroupFd);
  plan.cgroupFd = -1;
  for (int fd : plan.cgroupTasksFds) close(fd);
  plan.cgroupTasksFds.clear();
}

// After a failed spawn (the child reaped, so the cgroups are empty). What cannot be removed is
// left to lib/limits, which removes the sandbox's cgroups again (ENOENT for these) and sweeps.
void removeCgroupsFromParent(const Plan& plan) {
  for (size_t i = plan.cgroups.size(); i-- > 0;) rmdir(plan.cgroups[i].dir.c_str());
}

// After a clone3 fallback: writes `pid` to the v2 cgroup's cgroup.procs.
int joinV2CgroupFromParent(pid_t pid, const Plan& plan) {
  char text[16];
  int len = snprintf(text, sizeof text, "%d", static_cast<int>(pid));
  int fd = openat(plan.cgroupFd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = write(fd, text, static_cast<size_t>(len)) == len ? 0 : errno;
  close(fd);
  return err;
}

// The child, into each v1 cgroup: "0" (this thread) to the hierarchy's `tasks`. v1 allows it
// to whoever may write the file and shares the uid of the task moved, which is itself; the fd
// was opened with the caller's credentials, which the check uses.
int joinCgroupsInChild(const Plan& plan, int* index) {
  for (size_t i = 0; i < plan.cgroupTasksFds.size(); ++i) {
    *index = static_cast<int>(i);
    if (int err = sysError(sys(SYS_write, plan.cgroupTasksFds[i], "0", 1))) return err;
  }
  return 0;
}

// Only when the environment that spawned the sandbox is torn down (a Worker terminated with it
// alive): lib/limits/cgroup.ts removes them otherwise, but no JavaScript runs then. The sandbox
// was reaped first (killAndReap), so the cgroups are empty; a v2 cgroup may still answer EBUSY
// for a moment while the kernel finishes with its last task, hence the few, short retries.
void removeCgroupDirs(const std::vector<std::string>& dirs) {
  for (const std::string& dir : dirs) {
    for (int attempt = 0; attempt < 50; ++attempt) {
      if (rmdir(dir.c_str()) == 0 || errno != EBUSY) break;
      struct timespec pause = {0, 2 * 1000 * 1000};  // 2 ms
      nanosleep(&pause, nullptr);
    }
  }
}

}  // namespace stockade
