// userns.cc — the user namespace's id maps and the payload's final identity.
// man 7 user_namespaces (rules for writing uid_map/gid_map/setgroups), man 2 setresuid.
//
// Inside, the payload is always uid/gid 65534 (nobody). Outside:
// - an unprivileged caller can only map its own ids, so the payload is the caller (as in
//   bubblewrap); setgroups must be denied before gid_map may be written (since 3.19);
// - host root must not hand root to the payload, so the parent (which has CAP_SETUID in the
//   initial namespace) maps 65534 to an unprivileged host id (plan.hostUid, default 65534) and
//   also 0 to 0, so that the child can still set up the mounts as root-in-namespace over
//   root-owned host paths. The child drops to 65534 before the payload runs; uid 0 inside is
//   then unreachable (no capabilities, no_new_privs, nosuid mounts).
//
// The parent writes the maps (the child cannot map other ids than its own) while the child
// waits on the sync pipe.
//
// Idmapped mounts (mount_setattr MOUNT_ATTR_IDMAP, 5.12) take the id mapping from a user
// namespace. For a host-root caller's read-write grants that namespace maps the caller's ids
// (0) to the payload's host ids (plan.hostUid/hostGid): files the caller owns are the payload's
// inside, and what the payload creates is the caller's on the host. The sandbox's own namespace
// cannot serve: it maps 0 to 0 (for setup) and 65534 to hostUid. So a short-lived helper is
// cloned into a new user namespace, mapped, and its namespace kept as an fd.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "syscall.h"

namespace stockade {

static int writeProcFile(pid_t pid, const char* name, const std::string& content,
                         std::string* failedPath) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", static_cast<int>(pid), name);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  int err = 0;
  if (fd < 0) {
    err = errno;
  } else {
    if (write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()))
      err = errno;
    close(fd);
  }
  if (err != 0) *failedPath = path;
  return err;
}

int writeIdMapsFromParent(pid_t pid, const Plan& plan, bool hostRoot, std::string* failedPath) {
  std::string uidMap, gidMap;
  if (hostRoot) {
    uidMap = "0 0 1\n" + std::to_string(plan.uid) + " " + std::to_string(plan.hostUid) + " 1\n";
    gidMap = "0 0 1\n" + std::to_string(plan.gid) + " " + std::to_string(plan.hostGid) + " 1\n";
  } else {
    uidMap = std::to_string(plan.uid) + " " + std::to_string(geteuid()) + " 1\n";
    gidMap = std::to_string(plan.gid) + " " + std::to_string(getegid()) + " 1\n";
    if (int err = writeProcFile(pid, "setgroups", "deny", failedPath)) return err;
  }
  if (int err = writeProcFile(pid, "uid_map", uidMap, failedPath)) return err;
  return writeProcFile(pid, "gid_map", gidMap, failedPath);
}

namespace {

// The helper shares the parent's memory (CLONE_VM, see spawn.cc for why that is safe with raw
// system calls only): it closes its copy of the write end, waits for EOF on the pipe and exits.
// Signals stay blocked in it, as the parent blocked them around clone().
int holdUsernsMain(void* arg) {
  const int* hold = static_cast<const int*>(arg);
  char c;
  sys(SYS_close, hold[1]);
  sys(SYS_read, hold[0], &c, 1);
  sys(SYS_exit_group, 0);
  __builtin_unreachable();
}

}  // namespace

int openIdmapUsernsFromParent(const Plan& plan, int* usernsFd) {
  constexpr size_t kStack = 64 * 1024;
  void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return errno;
  int hold[2];
  if (pipe2(hold, O_CLOEXEC) != 0) {
    int err = errno;
    munmap(stack, kStack);
    return err;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = clone(holdUsernsMain, static_cast<char*>(stack) + kStack,
                    CLONE_VM | CLONE_NEWUSER | SIGCHLD, hold);
  int err = pid < 0 ? errno : 0;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  std::string ignored;
  if (err == 0) {
    std::string uidMap = std::to_string(geteuid()) + " " + std::to_string(plan.hostUid) + " 1\n";
    std::string gidMap = std::to_string(getegid()) + " " + std::to_string(plan.hostGid) + " 1\n";
    err = writeProcFile(pid, "uid_map", uidMap, &ignored);
    if (err == 0) err = writeProcFile(pid, "gid_map", gidMap, &ignored);
    if (err == 0) {
      char path[64];
      snprintf(path, sizeof path, "/proc/%d/ns/user", static_cast<int>(pid));
      *usernsFd = open(path, O_RDONLY | O_CLOEXEC);
      if (*usernsFd < 0) err = errno;
    }
  }
  close(hold[1]);  // the helper's read returns: it exits
  close(hold[0]);
  if (pid > 0) {
    int status;
    while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
    }
  }
  munmap(stack, kStack);  // only after the reap: the helper ran on it
  return err;
}

int setIdentityInChild(const Plan& plan, bool hostRoot) {
  // Raw syscalls (syscall.h): glibc's set*id wrappers signal every thread glibc believes exists,
  // and write errno into the TLS the child shares with the parent thread.
  if (hostRoot) {
    if (int err = sysError(sys(SYS_setgroups, 0, nullptr))) return err;
  }
  if (int err = sysError(sys(SYS_setresgid, plan.gid, plan.gid, plan.gid))) return err;
  return sysError(sys(SYS_setresuid, plan.uid, plan.uid, plan.uid));
}

}  // namespace stockade
