// cgroup.cc — putting the sandbox into the cgroups lib/limits prepared, from the parent side.
// man 2 clone3 (CLONE_INTO_CGROUP, Linux 5.7), man 7 cgroups, Documentation/admin-guide/
// cgroup-v2.rst ("Processes"), cgroup-v1/cgroups.rst ("Attaching processes").
//
// TypeScript creates and configures the cgroups (lib/limits/cgroup.ts) and hands over open
// descriptors; this file only places the child:
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
