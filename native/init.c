/* init.c — stockade-init, PID 1 of every sandbox's pid namespace.
 * man 7 pid_namespaces, man 2 wait4, man 2 rt_sigtimedwait, man 3 getauxval (AT_RANDOM).
 *
 * A separate, statically linked executable rather than a forked copy of the Node process: the
 * child of clone() runs in the Node process's memory until it execs, so the long-lived PID 1
 * must be a fresh image with nothing in memory but the payload's argv and environment.
 *
 * Usage (from the addon only): stockade-init ERROR_FD STATUS_FD NOTIFY_FD|- PATH ARGV0 [ARG...]
 * It forks the payload, which execs PATH; an exec failure is written to ERROR_FD as the
 * addon's {step, errno, index} record. PID 1 then reaps every process that reparents to it,
 * forwards SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2 and SIGWINCH to the payload,
 * and when the payload ends writes its raw wait status to STATUS_FD (initproto.h) and exits
 * with its exit code (or 128 + signal). Its exit tears the namespace down: the kernel SIGKILLs
 * every process left in it, so nothing the payload started outlives it.
 *
 * The seccomp supervisor. NOTIFY_FD is the listener of the sandbox's seccomp filter
 * (SECCOMP_FILTER_FLAG_NEW_LISTENER, seccomp.cc), which notifies instead of killing or
 * answering by itself. For each notification PID 1 writes a violation record — the syscall
 * number and its six arguments, so the launcher can say `unshare(CLONE_NEWUSER)` — then
 * either answers the errno the profile gives that call (socket: EAFNOSUPPORT; ioctl,
 * personality: EPERM; the first refusal of each syscall number is reported, later ones are
 * answered silently, so a loop cannot flood the launcher) or kills the calling process with
 * SIGSYS, as SECCOMP_RET_KILL_PROCESS would: its parent sees the same "killed by SIGSYS". The
 * notified call waits in the kernel meanwhile: it never runs. A SIGSYS the process could catch,
 * ignore or block (its /proc status says so) becomes a SIGKILL, and so does a second
 * notification from the same thread (a handler installed meanwhile interrupted the wait).
 *
 * Why this mechanism (the alternatives, and why not):
 * - SECCOMP_RET_KILL_PROCESS alone: the kernel kills at once, but nobody learns which call;
 *   the parent's waitid() sees only "SIGSYS".
 * - SECCOMP_RET_TRAP, reading the SIGSYS siginfo (si_syscall): the signal goes to the offending
 *   thread itself, which may catch or block it and carry on; it is an answer, not a kill, and
 *   PID 1 cannot read the siginfo of a child's death.
 * - The audit subsystem (seccomp and Landlock both log there): reading it needs CAP_AUDIT_READ
 *   in the initial user namespace and an audit daemon; most users have neither.
 * - A supervisor on the launcher's event loop: it would see the same notifications, but a
 *   launcher busy with a large proxy transfer stalls the sandbox, the listener fd would have to
 *   cross into the parent after the filter is installed, and the kill would race pid reuse
 *   outside the namespace. PID 1 is already there, unkillable from inside, not dumpable, and its
 *   kill(-1) reaches exactly the sandbox.
 * Failing closed: a slow PID 1 makes the refused call wait (it does not run); PID 1 gone means
 * the namespace is gone; a listener closed for any other reason makes the kernel answer ENOSYS.
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

#include "initproto.h"
#include "steps.h"
#include "syscall.h"

/* kStepInit, kStepExec, ...: the numbers plan.h's Step has (steps.h). */
enum {
#define STOCKADE_STEP_ENUM(number, Name, name, syscall) kStep##Name = number,
  STOCKADE_STEPS(STOCKADE_STEP_ENUM)
#undef STOCKADE_STEP_ENUM
};

#define F_SETFD_ 2
#define FD_CLOEXEC_ 1
#define AT_RANDOM_ 25
#define SFD_CLOEXEC_ 02000000
#define O_CLOEXEC_ 02000000
#define POLLIN_ 1
#define EPERM_ 1
#define EAFNOSUPPORT_ 97
#define SIGSYS_ 31
/* <linux/seccomp.h>: _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, struct seccomp_notif_resp)
 */
#define SECCOMP_IOCTL_NOTIF_RECV_ 0xc0502100UL
#define SECCOMP_IOCTL_NOTIF_SEND_ 0xc0182101UL
#define SECCOMP_IOCTL_NOTIF_ID_VALID_ 0x40082102UL /* _IOW('!', 2, __u64) */

struct SeccompNotif {
  uint64_t id;
  uint32_t pid;
  uint32_t flags;
  int32_t nr;
  uint32_t arch;
  uint64_t ip;
  uint64_t args[6];
};
struct SeccompNotifResp {
  uint64_t id;
  int64_t val;
  int32_t error;
  uint32_t flags;
};
struct PollFd {
  int fd;
  short events, revents;
};

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

static void zero(void* p, unsigned long n) {
  volatile unsigned char* b = (volatile unsigned char*)p;
  while (n-- > 0) *b++ = 0;
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

/* The errno the profile answers for a notified call, or 0 for a kill. seccomp.cc's Actions
 * says which calls notify with which meaning; only these three answer rather than kill. */
static int supervisorAnswer(int nr) {
  if (nr == SYS_socket || nr == SYS_socketpair) return EAFNOSUPPORT_;
  if (nr == SYS_ioctl || nr == SYS_personality) return EPERM_;
  return 0;
}

/* The hexadecimal value after `key` in a /proc status text, or all bits set if absent. */
static uint64_t statusMask(const char* text, long n, const char* key) {
  for (long i = 0; i < n; ++i) {
    if (i > 0 && text[i - 1] != '\n') continue;
    long k = 0;
    while (key[k] != '\0' && i + k < n && text[i + k] == key[k]) ++k;
    if (key[k] != '\0') continue;
    uint64_t v = 0;
    for (long j = i + k; j < n && text[j] != '\n'; ++j) {
      char c = text[j];
      if (c >= '0' && c <= '9')
        v = v * 16 + (uint64_t)(c - '0');
      else if (c >= 'a' && c <= 'f')
        v = v * 16 + (uint64_t)(c - 'a' + 10);
    }
    return v;
  }
  return ~(uint64_t)0;
}

/* Whether SIGSYS would kill thread `tid` by its default action: neither blocked by it nor
 * ignored or caught by its process. Read from /proc/TID/status; unreadable counts as no. */
static int sigsysIsFatal(uint32_t tid) {
  char path[32] = "/proc/";
  char digits[12];
  int nd = 0;
  do {
    digits[nd++] = (char)('0' + tid % 10);
    tid /= 10;
  } while (tid > 0 && nd < 11);
  int at = 6;
  while (nd > 0) path[at++] = digits[--nd];
  const char* tail = "/status";
  for (int i = 0; tail[i] != '\0'; ++i) path[at++] = tail[i];
  path[at] = '\0';
  long fd = sys4(SYS_openat, -100 /* AT_FDCWD */, (long)path, 02000000 /* O_CLOEXEC */, 0);
  if (fd < 0) return 0;
  static char text[4096];
  long n = sys3(SYS_read, fd, (long)text, sizeof text);
  sys1(SYS_close, fd);
  if (n <= 0) return 0;
  uint64_t bit = 1ULL << (SIGSYS_ - 1);
  uint64_t masks = statusMask(text, n, "SigBlk:") | statusMask(text, n, "SigIgn:") |
                   statusMask(text, n, "SigCgt:");
  return (masks & bit) == 0;
}

/* One seccomp notification: report it, then answer it or kill the caller. */
static void supervise(int notifyFd, int statusFd, uint64_t* reported, uint32_t* lastKilled) {
  struct SeccompNotif n;
  zero(&n, sizeof n); /* the kernel insists on a zeroed buffer */
  if (sys3(SYS_ioctl, notifyFd, SECCOMP_IOCTL_NOTIF_RECV_, (long)&n) < 0) return;
  struct {
    long sec, nsec;
  } now = {0, 0};
  sys3(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, (long)&now, 0);
  int error = supervisorAnswer(n.nr);
  unsigned slot = (unsigned)n.nr < 512 ? (unsigned)n.nr : 511;
  int first = (reported[slot / 64] & (1ULL << (slot % 64))) == 0;
  if (error == 0 || first) {
    reported[slot / 64] |= 1ULL << (slot % 64);
    struct StockadeInitRecord r;
    zero(&r, sizeof r);
    r.kind = kInitRecordViolation;
    r.nr = n.nr;
    r.arch = n.arch;
    for (int i = 0; i < 6; ++i) r.args[i] = n.args[i];
    r.error = error;
    r.pid = n.pid;
    r.seenNs = (uint64_t)now.sec * 1000000000ULL + (uint64_t)now.nsec;
    sys3(SYS_write, statusFd, (long)&r, sizeof r);
  }
  if (error == 0) {
    /* kill() of a thread id signals its whole process. The notification stays unanswered:
     * the call dies with its process. */
    /* The caller still waits in this very notification, so n.pid is still its thread (not a
     * reused number): checked after the /proc read, right before the kill. */
    int sigsys = n.pid != *lastKilled && sigsysIsFatal(n.pid);
    if (sys3(SYS_ioctl, notifyFd, SECCOMP_IOCTL_NOTIF_ID_VALID_, (long)&n.id) != 0) return;
    *lastKilled = n.pid;
    sys3(SYS_kill, n.pid, sigsys ? SIGSYS_ : SIGKILL, 0);
    return;
  }
  struct SeccompNotifResp resp = {n.id, 0, -error, 0};
  sys3(SYS_ioctl, notifyFd, SECCOMP_IOCTL_NOTIF_SEND_, (long)&resp);
}

static int finish(int statusFd, int rawStatus) {
  struct StockadeInitRecord r;
  zero(&r, sizeof r);
  r.kind = kInitRecordExit;
  r.status = rawStatus;
  sys3(SYS_write, statusFd, (long)&r, sizeof r);
  if (WIFEXITED(rawStatus)) return WEXITSTATUS(rawStatus);
  return 128 + WTERMSIG(rawStatus);
}

/* The highest fd of the payload's initial fd table (run(): 256 slots). */
enum { kKeptFd = 255 };

__attribute__((noinline)) static int run(int argc, char** argv, char** envp) {
  if (argc < 6) return 127;
  int errorFd = parseFd(argv[1]);
  int statusFd = parseFd(argv[2]);
  int notifyFd = argv[3][0] == '-' ? -1 : parseFd(argv[3]);
  const char* path = argv[4];
  if (errorFd < 0 || statusFd < 0) return 127;

  const uint64_t all = ~(uint64_t)0;
  setMask(SIG_BLOCK, all);
  sys4(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0);
  sys3(SYS_fcntl, statusFd, F_SETFD_, FD_CLOEXEC_);
  sys3(SYS_fcntl, errorFd, F_SETFD_, FD_CLOEXEC_);
  if (notifyFd >= 0) sys3(SYS_fcntl, notifyFd, F_SETFD_, FD_CLOEXEC_);
  long signals = sys4(SYS_signalfd4, -1, (long)&all, sizeof all, SFD_CLOEXEC_);
  if (signals < 0) {
    report(errorFd, kStepInit, signals);
    return 127;
  }

  /* fork(): clone with fork semantics (aarch64 has no fork syscall). This image is a few pages,
   * so copying it costs little; the child only resets its mask and execs. */
  long payload = stockade_syscall6(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
  if (payload < 0) {
    report(errorFd, kStepInit, payload);
    return 127;
  }
  if (payload == 0) {
    /* An fd table of 256 slots for the payload, as a process started from a shell or an MCP
     * client inherits: fork gives a process with few fds open (PID 1 here) the 64 slots of the
     * smallest table, and a multi-threaded payload growing it past 64 waits a full RCU grace
     * period in the kernel (expand_files -> synchronize_rcu, the table being shared by its
     * threads), with every thread opening a file meanwhile: Node loading an MCP server's modules
     * did, 3-15 ms of its start on a 2-CPU VM. Growing it here, single-threaded, costs no grace
     * period; the slot is close-on-exec, so the payload starts with its own fds only and the
     * table keeps its size across the exec. Only where every open fd is below 255 (otherwise the
     * table is that large already, and fd 255 may be one of the payload's). */
    if (errorFd < kKeptFd && statusFd < kKeptFd && notifyFd < kKeptFd && signals < kKeptFd)
      sys3(SYS_dup3, errorFd, kKeptFd, O_CLOEXEC_);
    setMask(SIG_SETMASK, 0);
    long rc = sys3(SYS_execve, (long)path, (long)(argv + 5), (long)envp);
    report(errorFd, kStepExec, rc);
    exitGroup(127);
  }
  /* The parent learns that the payload exec'd when every copy of the error pipe is closed. The
   * payload's stdio belongs to the payload alone, so its end-of-file is the payload's. */
  sys1(SYS_close, errorFd);
  for (int fd = 0; fd < statusFd; ++fd) sys1(SYS_close, fd);

  uint64_t reported[512 / 64];
  zero(reported, sizeof reported);
  uint32_t lastKilled = 0;
  for (;;) {
    struct PollFd fds[2] = {{(int)signals, POLLIN_, 0}, {notifyFd, POLLIN_, 0}};
    if (sys4(SYS_ppoll, (long)fds, notifyFd >= 0 ? 2 : 1, 0, 0) < 0) continue;
    if (notifyFd >= 0 && (fds[1].revents & POLLIN_) != 0)
      supervise(notifyFd, statusFd, reported, &lastKilled);
    if ((fds[0].revents & POLLIN_) == 0) continue;
    uint32_t info[32]; /* struct signalfd_siginfo: 128 bytes, ssi_signo first */
    if (sys3(SYS_read, signals, (long)info, sizeof info) != sizeof info) continue;
    int sig = (int)info[0];
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
      if (pid == payload) return finish(statusFd, status);
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
