// planwire.cc — checkPlan, and a Plan to bytes and back (the format is in planwire.h).
//
// The decoder takes bytes from a file another process wrote: every read is bounds-checked
// against what is left, every length and count is capped before anything is allocated for it,
// and an enum is range-checked (by checkPlan) before anything acts on it. Plain C++17 and libc.
#include "planwire.h"

#include <string.h>
#include <sys/socket.h>

#include <string_view>

namespace stockade {

// ---- the rules of a plan ----

namespace {

constexpr char kMagic[8] = {'S', 'T', 'K', 'P', 'L', 'A', 'N', '1'};
constexpr uint8_t kZeros[12] = {};

bool hasNul(const std::string& s) {
  return s.find('\0') != std::string::npos;
}

// A field's name in a message, made only when one is: "plan.mounts[2]" + ".target". `base` is a
// literal or outlives the Name.
struct Name {
  static constexpr size_t kNoIndex = SIZE_MAX;
  Name(const char* b) : base(b) {}  // implicit: "plan", "plan.landlock"
  Name(std::string_view b, size_t i) : base(b), index(i) {}
  std::string with(const char* field) const {
    std::string out(base);
    if (index != kNoIndex) out += "[" + std::to_string(index) + "]";
    return out + field;
  }
  std::string_view base;
  size_t index = kNoIndex;
};

// The first broken rule, in the order readPlan() reads the fields; "" while none is. checkPlan
// runs on every spawn: nothing is allocated unless a rule is broken.
class Checker {
 public:
  bool ok() const { return problem_.empty(); }
  const std::string& problem() const { return problem_; }
  // Records "<name><field> must be <expected>" unless `holds` or a problem is recorded already.
  void require(bool holds, const Name& name, const char* field, const char* expected) {
    if (!holds && ok()) problem_ = name.with(field) + " must be " + expected;
  }
  void range(int64_t v, const PlanRange& range, const Name& name, const char* field) {
    require(range.holds(v), name, field, range.expected);
  }
  void noNul(const std::vector<std::string>& list, const Name& name) {
    for (const std::string& s : list) require(!hasNul(s), name, "", "strings without NUL");
  }

 private:
  std::string problem_;
};

void checkBudgetsInto(Checker& c, const std::vector<Budget>& budgets, std::string_view where) {
  for (size_t i = 0; i < budgets.size(); ++i) {
    const std::string& path = budgets[i].path;
    c.require(!hasNul(path) && path.rfind("/proc/sys/user/", 0) == 0, {where, i}, ".path",
              "a path under /proc/sys/user/");
  }
}

}  // namespace

std::string checkBudgets(const std::vector<Budget>& budgets, const std::string& where) {
  Checker c;
  checkBudgetsInto(c, budgets, where + ".budgets");
  return c.problem();
}

std::string checkPlan(const Plan& plan) {
  Checker c;
  c.noNul(plan.argv, "plan.argv");
  c.noNul(plan.envp, "plan.envp");
  c.range(plan.uid, kIdRange, "plan", ".uid");
  c.range(plan.gid, kIdRange, "plan", ".gid");
  c.range(plan.hostUid, kIdRange, "plan", ".hostUid");
  c.range(plan.hostGid, kIdRange, "plan", ".hostGid");
  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    const MountOp& op = plan.mounts[i];
    Name m("plan.mounts", i);
    c.range(op.kind, kMountKindRange, m, ".kind");
    c.range(op.mode, kModeRange, m, ".mode");
    c.require(op.target.size() >= 2 && op.target[0] == '/', m, ".target", "an absolute path");
    if (op.kind == MountOp::kBind)
      c.require(op.source.size() >= 2 && op.source[0] == '/', m, ".source",
                "an absolute host path");
  }
  for (size_t i = 0; i < plan.listeners.size(); ++i) {
    const Listener& l = plan.listeners[i];
    Name where("plan.listeners", i);
    c.require(l.type == SOCK_STREAM || l.type == SOCK_DGRAM, where, ".type", "'tcp' or 'udp'");
    // readPlan() takes the family from the address's length, and leaves an IPv4 one's last 12
    // bytes zero.
    bool v4 = l.family == AF_INET && memcmp(l.addr + 4, kZeros, sizeof kZeros) == 0;
    c.require(v4 || l.family == AF_INET6, where, ".address", "a Buffer of 4 or 16 bytes");
  }
  c.require(plan.listeners.size() <= kMaxListeners, "plan", ".listeners", "at most 64 entries");
  for (int fd : plan.fds) c.range(fd, kFdRange, "plan", ".fds");
  c.require(plan.fds.size() <= static_cast<size_t>(kMaxFds), "plan", ".fds", "at most 64 entries");
  for (size_t i = 0; i < plan.cgroups.size(); ++i) {
    const CgroupSpec& spec = plan.cgroups[i];
    Name where("plan.cgroups", i);
    c.range(spec.version, kCgroupVersionRange, where, ".version");
    c.require(spec.dir.size() >= 2 && spec.dir[0] == '/' && !hasNul(spec.dir), where, ".dir",
              "an absolute path");
    for (size_t j = 0; j < spec.files.size(); ++j) {
      const std::string& name = spec.files[j].name;
      bool fileName = !name.empty() && name.find('/') == std::string::npos && !hasNul(name);
      if (!fileName && c.ok()) {
        std::string files = where.with(".files");
        c.require(false, {files, j}, ".name", "a file name");
      }
    }
  }
  c.require(plan.cgroups.size() <= kMaxCgroups, "plan", ".cgroups", "at most 8 entries");
  // rlim_t and the masks are unsigned: compared as such, a value above INT64_MAX cannot pass as
  // a negative one.
  constexpr rlim_t kMaxRlimit = static_cast<rlim_t>(kRlimitValueRange.max);
  for (size_t i = 0; i < plan.limits.size(); ++i) {
    const Limit& limit = plan.limits[i];
    Name where("plan.limits", i);
    c.range(limit.resource, kRlimitResourceRange, where, ".resource");
    c.require(limit.value.rlim_cur <= kMaxRlimit, where, ".soft", kRlimitValueRange.expected);
    c.require(limit.value.rlim_max <= kMaxRlimit, where, ".hard", kRlimitValueRange.expected);
  }
  c.range(static_cast<int32_t>(plan.seccompProfile), kSeccompProfileRange, "plan",
          ".seccompProfile");
  // A plan without Landlock has the defaults here; checked alike, they pass.
  const LandlockPlan& ll = plan.landlock;
  constexpr uint64_t kMaxFs = static_cast<uint64_t>(kLandlockFsRange.max);
  constexpr uint64_t kMaxNet = static_cast<uint64_t>(kLandlockNetRange.max);
  c.require(ll.handledFs <= kMaxFs, "plan.landlock", ".handledFs", kLandlockFsRange.expected);
  for (size_t i = 0; i < ll.rules.size(); ++i) {
    const LandlockRule& rule = ll.rules[i];
    Name where("plan.landlock.rules", i);
    c.require(!rule.path.empty() && rule.path[0] == '/' && !hasNul(rule.path), where, ".path",
              "an absolute path");
    c.require(rule.access <= kMaxFs, where, ".access", kLandlockFsRange.expected);
  }
  c.require(ll.handledNet <= kMaxNet, "plan.landlock", ".handledNet", kLandlockNetRange.expected);
  for (size_t i = 0; i < ll.ports.size(); ++i)
    c.require(ll.ports[i].access <= kMaxNet, {"plan.landlock.ports", i}, ".access",
              kLandlockNetRange.expected);
  checkBudgetsInto(c, plan.budgets, "plan.budgets");
  c.noNul(plan.cgroupDirs, "plan.cgroupDirs");
  c.require(plan.cgroupDirs.size() <= kMaxCgroups, "plan", ".cgroupDirs", "at most 8 entries");
  for (const std::string& dir : plan.cgroupDirs)
    c.require(dir.size() >= 2 && dir[0] == '/', "plan", ".cgroupDirs",
              "an array of absolute paths");
  c.require(!plan.file.empty() && plan.file[0] == '/', "plan", ".file", "an absolute path");
  c.require(!plan.argv.empty(), "plan", ".argv", "a non-empty array");
  return c.problem();
}

// ---- encoding ----

namespace {

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void flag(bool v) { u8(v ? 1 : 0); }
  void u16(uint16_t v) { little(v, 2); }
  void u32(uint32_t v) { little(v, 4); }
  void i32(int32_t v) { little(static_cast<uint32_t>(v), 4); }
  void u64(uint64_t v) { little(v, 8); }
  void bytes(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  // A length past u32 is written as UINT32_MAX, which decodePlan refuses (past kWireMaxString).
  void count(size_t n) { u32(n > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(n)); }
  void str(const std::string& s) {
    count(s.size());
    bytes(s.data(), s.size());
  }
  void strings(const std::vector<std::string>& list) {
    count(list.size());
    for (const std::string& s : list) str(s);
  }
  std::string take() { return std::move(out_); }

 private:
  void little(uint64_t v, int n) {
    char b[8];
    for (int i = 0; i < n; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out_.append(b, n);
  }
  std::string out_;
};

}  // namespace

std::string encodePlan(const Plan& plan) {
  Writer w;
  w.bytes(kMagic, sizeof kMagic);
  w.str(plan.file);
  w.strings(plan.argv);
  w.strings(plan.envp);
  w.str(plan.cwd);
  w.str(plan.hostname);
  w.u32(plan.uid);
  w.u32(plan.gid);
  w.u32(plan.hostUid);
  w.u32(plan.hostGid);
  w.str(plan.baseDir);
  w.str(plan.rootOptions);
  w.count(plan.mounts.size());
  for (const MountOp& op : plan.mounts) {
    w.i32(op.kind);
    w.str(op.source);
    w.str(op.target);
    w.str(op.data);
    w.flag(op.readOnly);
    w.flag(op.devices);
    w.flag(op.createTarget);
    w.flag(op.idmap);
    w.u32(op.mode);
  }
  w.flag(plan.shareNetwork);
  w.flag(plan.routeAllLocal);
  w.count(plan.listeners.size());
  for (const Listener& l : plan.listeners) {
    w.i32(l.family);
    w.i32(l.type);
    w.bytes(l.addr, sizeof l.addr);
    w.u16(l.port);
  }
  w.count(plan.fds.size());
  for (int fd : plan.fds) w.i32(fd);
  w.count(plan.cgroups.size());
  for (const CgroupSpec& spec : plan.cgroups) {
    w.str(spec.dir);
    w.i32(spec.version);
    w.count(spec.files.size());
    for (const CgroupFile& f : spec.files) {
      w.str(f.name);
      w.str(f.value);
      w.flag(f.optional);
    }
    w.flag(spec.watchOom);
  }
  w.flag(plan.warm);
  w.flag(plan.warmRefill);
  w.count(plan.limits.size());
  for (const Limit& limit : plan.limits) {
    w.i32(limit.resource);
    w.u64(limit.value.rlim_cur);
    w.u64(limit.value.rlim_max);
  }
  w.flag(plan.useInit);
  w.str(plan.initPath);
  w.flag(plan.seccomp);
  w.i32(static_cast<int32_t>(plan.seccompProfile));
  const LandlockPlan& ll = plan.landlock;
  w.flag(ll.enabled);
  w.u64(ll.handledFs);
  w.count(ll.rules.size());
  for (const LandlockRule& rule : ll.rules) {
    w.str(rule.path);
    w.u64(rule.access);
  }
  w.u64(ll.handledNet);
  w.count(ll.ports.size());
  for (const LandlockPortRule& port : ll.ports) {
    w.u16(port.port);
    w.u64(port.access);
  }
  w.flag(ll.scope);
  w.flag(ll.allowStdio);
  w.count(plan.budgets.size());
  for (const Budget& b : plan.budgets) {
    w.str(b.path);
    w.str(b.value);
  }
  w.strings(plan.cgroupDirs);
  return w.take();
}

// ---- decoding ----

namespace {

// Reads the format front to back. The first failure sticks: later reads return zeros and empty
// strings without moving, so the decoder can read on without a check after every field.
class WireReader {
 public:
  explicit WireReader(const std::string& bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), left_(bytes.size()) {}
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t left() const { return left_; }
  void fail(const std::string& message) {
    if (ok()) error_ = message;
  }

  // n bytes at the cursor, or null (failure recorded) when fewer are left.
  const uint8_t* take(size_t n, const Name& name, const char* field) {
    if (!ok()) return nullptr;
    if (n > left_) return fail("the recorded plan ends inside " + name.with(field)), nullptr;
    const uint8_t* start = p_;
    p_ += n;
    left_ -= n;
    return start;
  }
  uint64_t little(int n, const Name& name, const char* field) {
    const uint8_t* b = take(n, name, field);
    uint64_t v = 0;
    for (int i = 0; b != nullptr && i < n; ++i) v |= uint64_t{b[i]} << (8 * i);
    return v;
  }
  uint16_t u16(const Name& name, const char* field) {
    return static_cast<uint16_t>(little(2, name, field));
  }
  uint32_t u32(const Name& name, const char* field) {
    return static_cast<uint32_t>(little(4, name, field));
  }
  int32_t i32(const Name& name, const char* field) {
    uint32_t u = u32(name, field);
    int32_t v;
    memcpy(&v, &u, sizeof v);  // the bits as they are, without an implementation-defined cast
    return v;
  }
  uint64_t u64(const Name& name, const char* field) { return little(8, name, field); }
  bool flag(const Name& name, const char* field) {
    const uint8_t* b = take(1, name, field);
    if (b != nullptr && *b > 1)
      fail(name.with(field) + " must be a boolean byte (0 or 1), found " + std::to_string(*b));
    return b != nullptr && *b == 1;
  }
  std::string str(const Name& name, const char* field) {
    uint32_t n = u32(name, field);
    if (ok() && n > kWireMaxString)
      fail(name.with(field) + " is " + std::to_string(n) + " bytes long, more than " +
           std::to_string(kWireMaxString));
    const uint8_t* b = take(n, name, field);
    return b == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(b), n);
  }
  // A list's count: at most kWireMaxList, at most one entry per byte left (every entry takes
  // one at least), and at most kWireMaxEntries in all lists together, so that what a forged
  // count makes the decoder allocate stays within a small multiple of the input's size.
  uint32_t count(const Name& name, const char* field) {
    uint32_t n = u32(name, field);
    if (ok() && n > kWireMaxList)
      fail(name.with(field) + " has " + std::to_string(n) + " entries, more than " +
           std::to_string(kWireMaxList));
    if (ok() && n > left_) fail("the recorded plan ends inside " + name.with(field));
    // Lists within lists (a cgroup's files) would otherwise multiply the caps.
    entries_ += ok() ? n : 0;
    if (ok() && entries_ > kWireMaxEntries)
      fail("the recorded plan's lists have more than " + std::to_string(kWireMaxEntries) +
           " entries in all (at " + name.with(field) + ")");
    return ok() ? n : 0;
  }
  std::vector<std::string> strings(const char* list) {
    std::vector<std::string> out;
    uint32_t n = count(list, "");
    for (uint32_t i = 0; i < n && ok(); ++i) out.push_back(str({list, i}, ""));
    return out;
  }

 private:
  const uint8_t* p_;
  size_t left_;
  size_t entries_ = 0;
  std::string error_;
};

void readPlanFrom(WireReader& r, Plan& plan) {
  plan.file = r.str("plan", ".file");
  plan.argv = r.strings("plan.argv");
  plan.envp = r.strings("plan.envp");
  plan.cwd = r.str("plan", ".cwd");
  plan.hostname = r.str("plan", ".hostname");
  plan.uid = r.u32("plan", ".uid");
  plan.gid = r.u32("plan", ".gid");
  plan.hostUid = r.u32("plan", ".hostUid");
  plan.hostGid = r.u32("plan", ".hostGid");
  plan.baseDir = r.str("plan", ".baseDir");
  plan.rootOptions = r.str("plan", ".rootOptions");
  uint32_t n = r.count("plan", ".mounts");
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    Name m("plan.mounts", i);
    MountOp op;
    // Any int32 is a value of Kind (its underlying type is fixed); checkPlan holds it to the
    // kinds there are.
    op.kind = static_cast<MountOp::Kind>(r.i32(m, ".kind"));
    op.source = r.str(m, ".source");
    op.target = r.str(m, ".target");
    op.data = r.str(m, ".data");
    op.readOnly = r.flag(m, ".readOnly");
    op.devices = r.flag(m, ".devices");
    op.createTarget = r.flag(m, ".createTarget");
    op.idmap = r.flag(m, ".idmap");
    op.mode = r.u32(m, ".mode");
    plan.mounts.push_back(std::move(op));
  }
  plan.shareNetwork = r.flag("plan", ".shareNetwork");
  plan.routeAllLocal = r.flag("plan", ".routeAllLocal");
  n = r.count("plan", ".listeners");
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    Name where("plan.listeners", i);
    Listener l;
    l.family = r.i32(where, ".family");
    l.type = r.i32(where, ".type");
    if (const uint8_t* addr = r.take(sizeof l.addr, where, ".address"))
      memcpy(l.addr, addr, sizeof l.addr);
    l.port = r.u16(where, ".port");
    plan.listeners.push_back(l);
  }
  n = r.count("plan", ".fds");
  for (uint32_t i = 0; i < n && r.ok(); ++i) plan.fds.push_back(r.i32({"plan.fds", i}, ""));
  n = r.count("plan", ".cgroups");
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    Name where("plan.cgroups", i);
    CgroupSpec spec;
    spec.dir = r.str(where, ".dir");
    spec.version = r.i32(where, ".version");
    uint32_t files = r.count(where, ".files");
    std::string filesName = files == 0 ? std::string() : where.with(".files");
    for (uint32_t j = 0; j < files && r.ok(); ++j) {
      Name f(filesName, j);
      CgroupFile file;
      file.name = r.str(f, ".name");
      file.value = r.str(f, ".value");
      file.optional = r.flag(f, ".optional");
      spec.files.push_back(std::move(file));
    }
    spec.watchOom = r.flag(where, ".watchOom");
    plan.cgroups.push_back(std::move(spec));
  }
  plan.warm = r.flag("plan", ".warm");
  plan.warmRefill = r.flag("plan", ".warmRefill");
  n = r.count("plan", ".limits");
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    Name where("plan.limits", i);
    Limit limit;
    limit.resource = r.i32(where, ".resource");
    limit.value.rlim_cur = static_cast<rlim_t>(r.u64(where, ".soft"));
    limit.value.rlim_max = static_cast<rlim_t>(r.u64(where, ".hard"));
    plan.limits.push_back(limit);
  }
  plan.useInit = r.flag("plan", ".useInit");
  plan.initPath = r.str("plan", ".initPath");
  plan.seccomp = r.flag("plan", ".seccomp");
  plan.seccompProfile = static_cast<SeccompProfile>(r.i32("plan", ".seccompProfile"));
  LandlockPlan& ll = plan.landlock;
  ll.enabled = r.flag("plan.landlock", ".enabled");
  ll.handledFs = r.u64("plan.landlock", ".handledFs");
  n = r.count("plan.landlock", ".rules");
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    Name where("plan.landlock.rules", i);
    LandlockRule rule;
    rule.path = r.str(where, ".path");
    rule.access = r.u64(where, ".access");
    ll.rules.push_back(std::move(rule));
  }
  ll.handledNet = r.u64("plan.landlock", ".handledNet");
  n = r.count("plan.landlock", ".ports");
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    Name where("plan.landlock.ports", i);
    LandlockPortRule port;
    port.port = r.u16(where, ".port");
    port.access = r.u64(where, ".access");
    ll.ports.push_back(port);
  }
  ll.scope = r.flag("plan.landlock", ".scope");
  ll.allowStdio = r.flag("plan.landlock", ".allowStdio");
  n = r.count("plan", ".budgets");
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    Name where("plan.budgets", i);
    Budget b;
    b.path = r.str(where, ".path");
    b.value = r.str(where, ".value");
    plan.budgets.push_back(std::move(b));
  }
  plan.cgroupDirs = r.strings("plan.cgroupDirs");
}

}  // namespace

bool decodePlan(const std::string& bytes, Plan* out, std::string* error) {
  if (bytes.size() > kWireMaxBytes) {
    *error = "the recorded plan is " + std::to_string(bytes.size()) + " bytes, more than " +
             std::to_string(kWireMaxBytes);
    return false;
  }
  WireReader r(bytes);
  const uint8_t* magic = r.take(sizeof kMagic, "the header", "");
  if (magic == nullptr || memcmp(magic, kMagic, sizeof kMagic) != 0) {
    *error = "not a recorded plan: the header is not STKPLAN1";
    return false;
  }
  Plan plan;
  readPlanFrom(r, plan);
  if (r.ok() && r.left() != 0)
    r.fail("the recorded plan has " + std::to_string(r.left()) +
           (r.left() == 1 ? " byte" : " bytes") + " after its end");
  if (!r.ok()) {
    *error = r.error();
    return false;
  }
  std::string problem = checkPlan(plan);
  if (!problem.empty()) {
    *error = problem;
    return false;
  }
  *out = std::move(plan);
  return true;
}

}  // namespace stockade
