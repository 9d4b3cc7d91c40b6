// landlock.cc — Landlock under the mounts: a second, independent filesystem layer, and the
// sandbox's signals and abstract unix sockets scoped to it.
// man 7 landlock, man 2 landlock_create_ruleset (5.13), landlock_add_rule, landlock_restrict_self;
// Documentation/userspace-api/landlock.rst for the ABI history.
//
// The mount namespace already shows the payload only what its plan binds. Landlock restricts the
// same payload again, by rules that mirror that plan (lib/landlock.ts derives them from the mount
// list): read-only and executable beneath read-only binds, read-write beneath read-write binds and
// the tmpfs mounts, read and write on the six device nodes, /proc, listing (but not reading) of
// everything else. So a mistake in the mount code, a kernel mount bug or a magic link through
// /proc that reaches a host file is not enough to read or write it: the Landlock domain is
// attached to the process, not to the mount tree, and no later mount, pivot or fd trick removes it.
//
// What each ABI adds, and what we do with it (feature-detected: the ruleset only names rights the
// running kernel knows, which the kernel requires):
//   1 (5.13) filesystem rights. Not used alone: ABI 1 denies every cross-directory rename and
//            link (REFER cannot be granted), which breaks package managers. Landlock needs >= 2.
//   2 (5.19) REFER: granted beneath read-write paths.
//   3 (6.2)  TRUNCATE: granted beneath read-write paths (and on the payload's stdio files).
//   4 (6.7)  TCP bind/connect by port: the ports the network mode needs, see below.
//   5 (6.10) IOCTL_DEV: ioctl on device files only on the planned devices and ptys.
//   6 (6.12) scopes: abstract unix sockets and signals do not leave the sandbox's domain.
//   7 (6.15) audit: LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON, so that denials of the payload (which
//            runs after execve) reach the kernel's audit log where one is collected.
// Pathname unix sockets: connect() to a socket file needs no Landlock right on ABI <= 7 (only
// creating one, MAKE_SOCK), so a socket inside a read-only grant stays reachable there (plan.ts
// refuses such grants unless allowSockets). LANDLOCK_ACCESS_FS_RESOLVE_UNIX (1 << 16) restricts
// it from ABI 9 (Linux 7.1; ABI 8 added only LANDLOCK_RESTRICT_SELF_TSYNC); the 6.18 kernel this
// was written on has ABI 7 and refuses the bit (EINVAL), so it is not used: it could not be
// tested. Newer ABIs are not guessed at: an ABI above 7 is used as 7.
//
// TCP (ABI 4). Landlock's network rules name ports only — not addresses, not who bound the port,
// and UDP not at all (ABI <= 7). lib/landlock.ts decides which ports, per network mode: in proxy
// mode connect() only to the injected listeners (HTTP, SOCKS, DNS, the transparent ports) and to
// the loopback ports the policy declares (localPorts), bind() only to those declared ports; in
// `none` mode the same for the declared ports, and nothing handled when none are declared; in
// `host` mode nothing. So even a network namespace that were not what the plan says (a kernel or
// setup bug) leaves the payload unable to reach another port or to serve one. The price: a
// connect() to an undeclared port fails with EACCES where the namespace alone gave ECONNREFUSED,
// and a payload's own loopback servers (a headless browser's debugging port) need declaring. The
// rights below ABI 4 are not requested (the kernel would refuse the ruleset): the filesystem
// rules hold without them.
//
// The domain is entered after the mounts and the network setup (the rules are opened by their
// paths inside the new root) and before seccomp. Every fd opened here is O_CLOEXEC and closed
// before returning.
#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "syscall.h"

namespace stockade {

namespace {

// Same numbers on x86_64 and the generic table (aarch64).
constexpr long kSysCreateRuleset = 444;
constexpr long kSysAddRule = 445;
constexpr long kSysRestrictSelf = 446;
constexpr unsigned kCreateRulesetVersion = 1u << 0;
constexpr int kRulePathBeneath = 1, kRuleNetPort = 2;
constexpr uint64_t kNetRights = (1ull << 0) | (1ull << 1);  // BIND_TCP CONNECT_TCP (ABI 4)
constexpr uint64_t kScopeAbstractUnix = 1ull << 0, kScopeSignal = 1ull << 1;
constexpr unsigned kLogNewExecOn = 1u << 1;  // ABI 7

// The kernel's structures (<linux/landlock.h> of older distributions lacks the newer fields;
// a larger struct with zeroed tails is accepted by every ABI).
struct RulesetAttr {
  uint64_t handledAccessFs;
  uint64_t handledAccessNet;
  uint64_t scoped;
};
struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowedAccess;
  int32_t parentFd;
};
struct NetPortAttr {
  uint64_t allowedAccess;
  uint64_t port;  // host byte order
};

// Rights that apply to a file (not a directory); a rule on a file may carry only these.
constexpr uint64_t kFileRights = (1ull << 0) | (1ull << 1) | (1ull << 2) | (1ull << 14) |
                                 (1ull << 15);  // EXECUTE WRITE_FILE READ_FILE TRUNCATE IOCTL_DEV

int addPathRule(int ruleset, int fd, uint64_t access) {
  PathBeneathAttr attr = {access, fd};
  return sysError(sys(kSysAddRule, ruleset, kRulePathBeneath, &attr, 0));
}

}  // namespace

int landlockAbi() {
  long abi = syscall(kSysCreateRuleset, nullptr, 0, kCreateRulesetVersion);
  return abi >= 0 ? static_cast<int>(abi) : -errno;
}

uint64_t landlockFsRights(int abi) {
  if (abi <= 0) return 0;
  uint64_t rights = (1ull << 13) - 1;  // ABI 1: EXECUTE .. MAKE_SYM
  if (abi >= 2) rights |= 1ull << 13;  // REFER
  if (abi >= 3) rights |= 1ull << 14;  // TRUNCATE
  if (abi >= 5) rights |= 1ull << 15;  // IOCTL_DEV
  return rights;
}

int landlockRestrictInChild(const LandlockPlan& plan, int abi, const LandlockFdRule* fdRules,
                            int nFdRules, int* index) {
  *index = -1;
  const uint64_t known = landlockFsRights(abi);
  const uint64_t handledNet = abi >= 4 ? plan.handledNet & kNetRights : 0;
  RulesetAttr attr = {plan.handledFs & known, handledNet, 0};
  if (abi >= 6 && plan.scope) attr.scoped = kScopeAbstractUnix | kScopeSignal;
  long ruleset = sys(kSysCreateRuleset, &attr, sizeof attr, 0);
  if (ruleset < 0) return sysError(ruleset);
  int fd = static_cast<int>(ruleset);
  auto fail = [&](int err) {
    sys(SYS_close, fd);
    return err;
  };

  for (size_t i = 0; i < plan.rules.size(); ++i) {
    const LandlockRule& rule = plan.rules[i];
    long target = sys(SYS_openat, AT_FDCWD, rule.path.c_str(), O_PATH | O_CLOEXEC, 0);
    // Missing (/lib32 on a host without it) or out of the payload's reach: nothing to grant.
    if (target == -ENOENT || target == -EACCES) continue;
    if (target < 0) {
      *index = static_cast<int>(i);
      return fail(sysError(target));
    }
    int err = addPathRule(fd, static_cast<int>(target), rule.access & known);
    // A rule on a file may carry file rights only (EINVAL otherwise): binds are planned with
    // directory rights, and what sits at the path inside decides.
    if (err == EINVAL)
      err = addPathRule(fd, static_cast<int>(target), rule.access & known & kFileRights);
    sys(SYS_close, target);
    if (err != 0) {
      *index = static_cast<int>(i);
      return fail(err);
    }
  }
  // A port rule may grant only handled rights (EINVAL otherwise), and one with none grants nothing.
  for (const LandlockPortRule& rule : plan.ports) {
    NetPortAttr port = {rule.access & handledNet, rule.port};
    if (port.allowedAccess == 0) continue;
    if (int err = sysError(sys(kSysAddRule, fd, kRuleNetPort, &port, 0))) return fail(err);
  }
  for (int i = 0; i < nFdRules; ++i) {
    if (fdRules[i].fd < 0) continue;
    int err = addPathRule(fd, fdRules[i].fd, fdRules[i].access & known & kFileRights);
    // Pipes and sockets have no path Landlock could restrict (EBADFD); directories given as
    // stdio would need directory rights (EINVAL). Neither needs a rule.
    if (err != 0 && err != EBADFD && err != EINVAL) return fail(err);
  }
  unsigned flags = abi >= 7 ? kLogNewExecOn : 0;
  int err = sysError(sys(kSysRestrictSelf, fd, flags));
  sys(SYS_close, fd);
  return err;
}

}  // namespace stockade
