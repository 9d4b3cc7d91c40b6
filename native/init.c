/* init.c — stockade-init, PID 1 of every sandbox's pid namespace.
 * man 7 pid_namespaces, man 2 wait4, man 2 sigwaitinfo.
 *
 * A separate, statically linked executable rather than a forked copy of the Node process: the
 * child of clone() carries a copy of Node's whole heap (credentials included) until it execs,
 * so the long-lived PID 1 must be a fresh image with nothing in memory but the payload's argv
 * and environment.
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
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kStepInit = 29, kStepExec = 26 }; /* plan.h: Step::kInit, Step::kExec */

static void report(int fd, int step, int err) {
  int32_t record[3] = {step, err, -1};
  ssize_t ignored = write(fd, record, sizeof record);
  (void)ignored;
}

int main(int argc, char** argv) {
  if (argc < 5) return 127;
  int errorFd = atoi(argv[1]);
  int statusFd = atoi(argv[2]);
  const char* path = argv[3];

  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  fcntl(statusFd, F_SETFD, FD_CLOEXEC);
  fcntl(errorFd, F_SETFD, FD_CLOEXEC);

  pid_t payload = fork();
  if (payload < 0) {
    report(errorFd, kStepInit, errno);
    return 127;
  }
  if (payload == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(path, argv + 4);
    report(errorFd, kStepExec, errno);
    _exit(127);
  }
  /* The parent learns that the payload exec'd when every copy of the error pipe is closed. The
   * payload's stdio belongs to the payload alone, so its end-of-file is the payload's. */
  close(errorFd);
  for (int fd = 0; fd < statusFd; ++fd) close(fd);

  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
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
          kill(payload, sig);
          break;
        default:
          break;
      }
      continue;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid != payload) continue;
      int32_t raw = status;
      ssize_t ignored = write(statusFd, &raw, sizeof raw);
      (void)ignored;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
  }
}
