// landlock.h — the Landlock part of a plan (landlock.cc), kept apart from plan.h so that the
// mount plan and the rules that mirror it are separate concerns: lib/landlock.ts derives these
// rules from the very mount list the child has just built.
// man 7 landlock, man 2 landlock_create_ruleset, landlock_add_rule, landlock_restrict_self.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

namespace stockade {

// One path_beneath rule: `path` as the sandbox sees it (after pivot_root), the
// LANDLOCK_ACCESS_FS_* rights granted beneath it. Rights the running kernel does not know are
// dropped (landlock.cc), and a path that does not exist inside is skipped: it grants nothing.
struct LandlockRule {
  std::string path;
  uint64_t access = 0;
};

// One net_port rule (ABI 4): the LANDLOCK_ACCESS_NET_* rights granted on a TCP port.
struct LandlockPortRule {
  uint16_t port = 0;
  uint64_t access = 0;
};

struct LandlockPlan {
  bool enabled = false;
  // Rights the ruleset handles (denied unless a rule grants them), LANDLOCK_ACCESS_FS_*.
  uint64_t handledFs = 0;
  std::vector<LandlockRule> rules;
  // ABI 4: LANDLOCK_ACCESS_NET_* rights handled (0: TCP left to the network namespace), and the
  // ports that grant them. Ignored, with the rest of the plan enforced, below ABI 4.
  uint64_t handledNet = 0;
  std::vector<LandlockPortRule> ports;
  // ABI 6: abstract unix sockets and signals scoped to the sandbox.
  bool scope = false;
  // The payload's own stdio fds that are files or terminals get a rule of their own (read,
  // write), so that reopening /dev/stdout through /proc/self/fd keeps working.
  bool allowStdio = true;
};

// A rule on an fd the child already holds (stockade-init's executable, the payload's stdio).
struct LandlockFdRule {
  int fd = -1;
  uint64_t access = 0;
};

// The Landlock ABI of the running kernel (landlock_create_ruleset's VERSION query), or -errno
// (EOPNOTSUPP: built in but disabled at boot; ENOSYS: not built). Parent side, before clone().
int landlockAbi();

// The LANDLOCK_ACCESS_FS_* rights an ABI knows.
uint64_t landlockFsRights(int abi);

// Builds the ruleset, adds every rule and restricts the calling thread, which must have
// no_new_privs or CAP_SYS_ADMIN in its user namespace. Raw system calls only: runs in the child.
// Returns 0 or an errno; *index is the failing rule of plan.rules, or -1.
int landlockRestrictInChild(const LandlockPlan& plan, int abi, const LandlockFdRule* fdRules,
                            int nFdRules, int* index);

}  // namespace stockade
