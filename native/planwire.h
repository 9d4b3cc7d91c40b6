// planwire.h — a resolved Plan as bytes, and the checks every Plan passes before it is run.
//
// A launcher that is not a Node process (stockade-launch, to come) spawns a sandbox from a plan
// that the Node launcher resolved and recorded earlier: the addon encodes the Plan once
// readPlan() (addon.cc) has accepted it, the launcher decodes it. Neither side needs N-API or
// libuv: plain C++17 and libc, so that the launcher links this file without Node.
//
// checkPlan() is the one list of the rules a Plan's values obey beyond their C++ types (absolute
// paths, no NUL, counts, ranges): readPlan() applies it to what it read from JavaScript,
// decodePlan() to what it read from bytes, so a recorded plan is refused for exactly the reasons
// spawn() would refuse it, with the same message.
//
// The format, version 1. Integers are fixed-width little-endian; a bool is one byte, 0 or 1; a
// string is a u32 length and that many bytes (at most kWireMaxString); a list is a u32 count
// (at most kWireMaxList, and kWireMaxEntries in all lists) and its entries; the whole is at
// most kWireMaxBytes. The fields follow the magic "STKPLAN1" in this order, and the last one
// ends exactly at the end of the input:
//   file str, argv [str], envp [str], cwd str, hostname str, uid gid hostUid hostGid u32,
//   baseDir str, rootOptions str,
//   mounts [kind i32, source str, target str, data str, readOnly devices createTarget idmap
//           bool, mode u32],
//   shareNetwork bool, routeAllLocal bool, listeners [family i32, type i32, addr 16 bytes
//   (IPv4: 4, then 12 zero bytes), port u16], fds [i32],
//   cgroups [dir str, version i32, files [name str, value str, optional bool], watchOom bool],
//   warm bool, warmRefill bool, limits [resource i32, soft u64, hard u64],
//   useInit bool, initPath str, seccomp bool, seccompProfile i32,
//   landlock: enabled bool, handledFs u64, rules [path str, access u64], handledNet u64,
//             ports [port u16, access u64], scope bool, allowStdio bool,
//   budgets [path str, value str], cgroupDirs [str].
// The runtime fields (cgroupFd, cgroupTasksFds, resetScheduler, CgroupSpec::premade) are not
// recorded: they are set by the process that spawns, and decode to their defaults.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include <string>
#include <vector>

#include "plan.h"

namespace stockade {

// The range of one of a plan's numbers and how a message names it ("plan.uid must be <expected>").
// addon.cc's Reader converts a JavaScript number only within its range (nothing wraps or
// truncates); checkPlan holds a Plan's value to the same range.
struct PlanRange {
  int64_t min;
  int64_t max;
  const char* expected;
  bool holds(int64_t v) const { return v >= min && v <= max; }
};

// (uid_t)-1 means "unchanged" to setresuid(2): never an identity.
constexpr PlanRange kIdRange = {0, 4294967294, "an integer from 0 to 4294967294"};
constexpr PlanRange kMountKindRange = {MountOp::kBind, MountOp::kReadOnly, "a MountOp kind"};
constexpr PlanRange kModeRange = {0, 07777, "a mode from 0 to 0o7777"};
constexpr PlanRange kFdRange = {-1, INT32_MAX, "an array of fds"};  // -1: /dev/null
constexpr PlanRange kCgroupVersionRange = {1, 2, "1 or 2"};
// RLIM_NLIMITS is 16; values up to 2^53 (JavaScript's exact integers; RLIM_INFINITY is not one,
// and lib/limits never asks for it).
constexpr PlanRange kRlimitResourceRange = {0, RLIM_NLIMITS - 1, "an RLIMIT_* number from 0 to 15"};
constexpr PlanRange kRlimitValueRange = {0, int64_t{1} << 53, "an integer from 0 to 2^53"};
constexpr PlanRange kSeccompProfileRange = {0, 1, "0 (default) or 1 (strict)"};
constexpr PlanRange kLandlockFsRange = {0, int64_t{1} << 53, "a LANDLOCK_ACCESS_FS_* bit mask"};
constexpr PlanRange kLandlockNetRange = {0, 3, "LANDLOCK_ACCESS_NET_* bits (0 to 3)"};

constexpr size_t kMaxCgroups = 8;  // plan.cgroups and plan.cgroupDirs

// The first rule `plan` breaks, as readPlan() words it ("plan.mounts[2].target must be an
// absolute path"), or "" when it keeps them all.
std::string checkPlan(const Plan& plan);

// The part of checkPlan for budgets, for prewarm()'s key (addon.cc), named `where`.budgets[i].
std::string checkBudgets(const std::vector<Budget>& budgets, const std::string& where);

// The wire format's limits: what decodePlan accepts, so that no input makes it allocate more
// than the input's own size.
constexpr size_t kWireMaxBytes = 16u << 20;
constexpr size_t kWireMaxString = 1u << 20;
constexpr uint32_t kWireMaxList = 4096;
// All lists' entries together: bounds lists within lists (a cgroup's files). A plan checkPlan
// accepts has fewer (7 unbounded lists of 4096, 8 cgroups of 4096 files, a few small lists).
constexpr size_t kWireMaxEntries = 65536;

// `plan` (one checkPlan accepts) in the format above. A plan beyond the format's limits encodes
// to bytes decodePlan refuses; the addon checks that before it hands the bytes out.
std::string encodePlan(const Plan& plan);

// The inverse of encodePlan, for any bytes whatever: reads every length and count against what
// is left of the input and the limits above, then checks the result with checkPlan. Returns
// false with *error set (which field, what was wrong) and *out untouched on failure.
bool decodePlan(const std::string& bytes, Plan* out, std::string* error);

}  // namespace stockade
