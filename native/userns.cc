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
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <sys/syscall.h>
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
