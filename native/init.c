/* init.c — stockade-init, PID 1 of every sandbox's pid namespace.
 * man 7 pid_namespaces, man 2 wait4, man 2 rt_sigtimedwait, man 3 getauxval (AT_RANDOM).
 *
 * A separate, statically linked executable rather than a forked copy of the Node process: the
 * child of clone() runs in the Node process's memory until it execs, so the long-lived PID 1
 * must be a fresh image with nothing in memory but the payload's argv and environment.
 *
 * Usage (from the addon only): stockade-init ERROR_FD STATUS_FD PATH ARGV0 [ARG...]
 * It forks the payload, which execs PATH; an exec failure is written to ERROR_FD as the
 * addon's {step, errno, index} record. PID 1 then reaps every process that reparents to it,
 * forwards SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2 and SIGWINCH to the payload,
 * and when the payload ends writes its raw wait status (4 bytes) to STATUS_FD and exits with
 * its exit code (or 128 + signal). Its exit tears the namespace down: the kernel SIGKILLs every
 * process left in it, so nothing the payload started outlives it.
 *
 * It runs under the payload's seccomp filter, without capabilities, and non-dumpable, so the
 * payload cannot read or write its memory through /proc.
 *
 * Why no libc. It runs once per spawn, on the spawn's critical path. A static glibc spends most
 * of its start-up in init_cpu_features/init_cacheinfo, which execute CPUID dozens of times; in a
 * virtual machine every CPUID traps to the hypervisor, and on a Firecracker guest that was about
 * 0.5 ms per start — more than everything else this program does. So it is freestanding: its own
 * _start, raw system calls (syscall.h's C core), no allocation, a few hundred bytes of code. The
 * stack protector stays on: with no TLS, the canary is a global (-mstack-protector-guard=global
 * on x86_64, the default on aarch64) seeded from the kernel's AT_RANDOM bytes before main runs.
 */
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "syscall.h"

enum { kStepInit = 29, kStepExec = 26 }; /* plan.h: Step::kInit, Step::kExec */

#define F_SETFD_ 2
#define FD_CLOEXEC_ 1
#define AT_RANDOM_ 25

static long sys1(long nr, long a) {
  return stockade_syscall6(nr, a, 0, 0, 0, 0, 0);
}
static long sys3(long nr, long a, long b, long c) {
  return stockade_syscall6(nr, a, b, c, 0, 0, 0);
}
static long sys4(long nr, long a, long b, long c, long d) {
  return stockade_syscall6(nr, a, b, c, d, 0, 0);
}

__attribute__((noreturn)) static void exitGroup(int code) {
  for (;;) sys1(SYS_exit_group, code);
}

uintptr_t __stack_chk_guard;
__attribute__((noreturn)) void __stack_chk_fail(void) {
  exitGroup(127);
}

static void report(int fd, int step, long rawResult) {
  int32_t record[3] = {step, (int32_t)-rawResult, -1};
  sys3(SYS_write, fd, (long)record, sizeof record);
}

/* A non-negative decimal (the addon writes these); -1 otherwise. */
static int parseFd(const char* s) {
  int n = 0;
  if (*s == '\0') return -1;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9' || n > 100000) return -1;
    n = n * 10 + (*s - '0');
  }
  return n;
}

/* Signal masks as the kernel takes them: 64 bits, bit (sig - 1). */
static long setMask(int how, uint64_t mask) {
  return sys4(SYS_rt_sigprocmask, how, (long)&mask, 0, sizeof mask);
}

__attribute__((noinline)) static int run(int argc, char** argv, char** envp) {
  if (argc < 5) return 127;
  int errorFd = parseFd(argv[1]);
  int statusFd = parseFd(argv[2]);
  const char* path = argv[3];
  if (errorFd < 0 || statusFd < 0) return 127;

  const uint64_t all = ~(uint64_t)0;
  setMask(SIG_BLOCK, all);
  sys4(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0);
  sys3(SYS_fcntl, statusFd, F_SETFD_, FD_CLOEXEC_);
  sys3(SYS_fcntl, errorFd, F_SETFD_, FD_CLOEXEC_);

  /* fork(): clone with fork semantics (aarch64 has no fork syscall). This image is a few pages,
   * so copying it costs little; the child only resets its mask and execs. */
  long payload = stockade_syscall6(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
  if (payload < 0) {
    report(errorFd, kStepInit, payload);
    return 127;
  }
  if (payload == 0) {
    setMask(SIG_SETMASK, 0);
    long rc = sys3(SYS_execve, (long)path, (long)(argv + 4), (long)envp);
    report(errorFd, kStepExec, rc);
    exitGroup(127);
  }
  /* The parent learns that the payload exec'd when every copy of the error pipe is closed. The
   * payload's stdio belongs to the payload alone, so its end-of-file is the payload's. */
  sys1(SYS_close, errorFd);
  for (int fd = 0; fd < statusFd; ++fd) sys1(SYS_close, fd);

  for (;;) {
    uint64_t info[16]; /* siginfo_t: 128 bytes */
    uint64_t waitMask = all;
    long sig = sys4(SYS_rt_sigtimedwait, (long)&waitMask, (long)info, 0, sizeof waitMask);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      switch (sig) {
        case SIGHUP:
        case SIGINT:
        case SIGQUIT:
        case SIGTERM:
        case SIGUSR1:
        case SIGUSR2:
        case SIGWINCH:
          sys3(SYS_kill, payload, sig, 0);
          break;
        default:
          break;
      }
      continue;
    }
    int status;
    long pid;
    while ((pid = sys4(SYS_wait4, -1, (long)&status, WNOHANG, 0)) > 0) {
      if (pid != payload) continue;
      int32_t raw = status;
      sys3(SYS_write, statusFd, (long)&raw, sizeof raw);
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
  }
}

/* The initial stack (System V ABI, both architectures): argc, argv[], NULL, envp[], NULL, auxv.
 * Not protected itself: it sets the canary that protected functions compare against. */
__attribute__((noreturn, used, no_stack_protector)) void stockadeStart(long* sp) {
  int argc = (int)sp[0];
  char** argv = (char**)(sp + 1);
  char** envp = argv + argc + 1;
  char** p = envp;
  while (*p != 0) ++p;
  for (unsigned long* aux = (unsigned long*)(p + 1); aux[0] != 0; aux += 2) {
    if (aux[0] == AT_RANDOM_) {
      const unsigned char* bytes = (const unsigned char*)aux[1];
      uintptr_t guard = 0;
      for (unsigned i = 0; i < sizeof guard; ++i) guard = (guard << 8) | bytes[i];
      __stack_chk_guard = guard & ~(uintptr_t)0xff; /* a NUL byte stops string overflows */
    }
  }
  exitGroup(run(argc, argv, envp));
}

#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".global _start\n"
    "_start:\n"
    "  xor %rbp, %rbp\n"
    "  mov %rsp, %rdi\n"
    "  and $-16, %rsp\n"
    "  call stockadeStart\n"
    "  hlt\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".global _start\n"
    "_start:\n"
    "  mov x29, #0\n"
    "  mov x30, #0\n"
    "  mov x0, sp\n"
    "  and sp, x0, #-16\n"
    "  bl stockadeStart\n"
    "  brk #0\n");
#endif
