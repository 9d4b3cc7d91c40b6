// addon.cc — the JavaScript binding; the only file that includes napi.h.
//
// spawn(plan, onExit, onSpawn) checks the shape of a plan built by lib/plan.ts (a usage
// TypeError otherwise; policy was validated in TypeScript), queues it on the environment's
// spawner thread (spawner.cc, which runs spawn.cc) and returns; onSpawn then gets, from the
// event loop, either { error: { step, errno, index, path } } or { pid, handle, listenerFds }.
// State is per environment (AddonData: the Sandbox class, the spawner). The handle is a
// Sandbox: kill(signal) through the pidfd (no pid-reuse race), ref()/unref() of the exit
// watcher. Exit is noticed by polling the pidfd from the libuv loop (no waitpid(-1), no
// thread), and reported once as onExit(exitCode, signal) with the payload's status as
// stockade-init recorded it. UdpEndpoint (udp.cc) and Relay (relay.cc) are classes exported
// as they are. Native code never logs; errors are data. The rules a plan's values obey are
// checkPlan's (planwire.h), which readPlan applies once the shapes are read; encodePlan(plan)
// hands out a checked plan in planwire.h's recorded form.
#include <errno.h>
#include <fcntl.h>
#include <napi.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmath>

#include "audit.h"
#include "child.h"
#include "hostscan.h"
#include "initproto.h"
#include "landlock.h"
#include "loop_handles.h"
#include "oomwatch.h"
#include "planwire.h"
#include "relay.h"
#include "spawn.h"
#include "spawner.h"
#include "sysnums.h"
#include "toolrelay.h"
#include "udp.h"

namespace stockade {
namespace {

// ---- plan parsing: shapes only (the rules of the values are checkPlan's, planwire.h) ----

class Reader {
 public:
  Reader(Napi::Env env, Napi::Object obj, std::string path) : env_(env), obj_(obj), path_(path) {}
  bool ok() const { return ok_; }

  std::string str(const char* key, bool optional = false, const std::string& def = "") {
    Napi::Value v = obj_.Get(key);
    if (optional && v.IsUndefined()) return def;
    if (v.IsString()) return v.As<Napi::String>().Utf8Value();
    if (v.IsBuffer()) {
      auto b = v.As<Napi::Buffer<char>>();
      return std::string(b.Data(), b.Length());
    }
    return fail(key, "a string"), def;
  }
  // An integer in [min, max] (a number that is not one fails as `expected`): Int64Value would
  // otherwise truncate 1.5, saturate 1e300 and wrap a uid of 2^32 to 0 silently.
  int64_t integer(const char* key, int64_t min, int64_t max, const char* expected,
                  bool optional = false, int64_t def = 0) {
    Napi::Value v = obj_.Get(key);
    if (optional && v.IsUndefined()) return def;
    if (!v.IsNumber()) return fail(key, "a number"), def;
    if (!inRange(v.As<Napi::Number>().DoubleValue(), min, max)) return fail(key, expected), def;
    return v.As<Napi::Number>().Int64Value();
  }
  int64_t integer(const char* key, const PlanRange& range, bool optional = false, int64_t def = 0) {
    return integer(key, range.min, range.max, range.expected, optional, def);
  }
  // NaN fails both comparisons; the range is checked before anything is converted.
  static bool inRange(double d, int64_t min, int64_t max) {
    return d >= static_cast<double>(min) && d <= static_cast<double>(max) && std::floor(d) == d;
  }
  bool flag(const char* key, bool def) {
    Napi::Value v = obj_.Get(key);
    if (v.IsUndefined()) return def;
    if (!v.IsBoolean()) return fail(key, "a boolean"), def;
    return v.As<Napi::Boolean>().Value();
  }
  std::vector<std::string> strings(const char* key, bool optional = false) {
    std::vector<std::string> out;
    Napi::Value v = obj_.Get(key);
    if (optional && v.IsUndefined()) return out;
    if (!v.IsArray()) return fail(key, "an array of strings"), out;
    auto a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsString()) return fail(key, "an array of strings"), out;
      out.push_back(e.As<Napi::String>().Utf8Value());
    }
    return out;
  }
  // An array of fds (integers from -1, "none", to INT32_MAX) at `key`; absent is empty when
  // optional.
  std::vector<int> ints(const char* key, bool optional = false) {
    std::vector<int> out;
    Napi::Value v = obj_.Get(key);
    if (optional && v.IsUndefined()) return out;
    if (!v.IsArray()) return fail(key, "an array of fds"), out;
    auto a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsNumber() || !inRange(e.As<Napi::Number>().DoubleValue(), kFdRange.min, kFdRange.max))
        return fail(key, kFdRange.expected), out;
      out.push_back(e.As<Napi::Number>().Int32Value());
    }
    return out;
  }
  // Calls each(reader, index) for every object of the array at `key`.
  template <typename F>
  void objects(const char* key, F each) {
    Napi::Value v = obj_.Get(key);
    if (v.IsUndefined()) return;
    if (!v.IsArray()) return fail(key, "an array");
    auto a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length() && ok_; ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsObject()) return fail(key, "an array of objects");
      Reader r(env_, e.As<Napi::Object>(), path_ + "." + key + "[" + std::to_string(i) + "]");
      each(r, i);
      if (!r.ok()) {
        ok_ = false;
        message_ = r.message_;
      }
    }
  }
  Napi::Value raw(const char* key) { return obj_.Get(key); }
  void fail(const char* key, const char* expected) {
    if (!ok_) return;
    ok_ = false;
    message_ = path_ + "." + key + " must be " + expected;
  }
  const std::string& message() const { return message_; }
  // Takes the first failure of a nested reader as its own.
  void absorb(const Reader& inner) {
    if (ok_ && !inner.ok_) {
      ok_ = false;
      message_ = inner.message_;
    }
  }

 private:
  Napi::Env env_;
  Napi::Object obj_;
  std::string path_;
  bool ok_ = true;
  std::string message_;
};

// The fields of a plan that change from one spawn of a definition to the next (PlanTemplate).
void readPerSpawn(Reader& r, Plan& plan) {
  plan.fds = r.ints("fds");
  r.objects("cgroups", [&](Reader& c, uint32_t) {
    CgroupSpec spec;
    spec.dir = c.str("dir");
    spec.version = static_cast<int>(c.integer("version", kCgroupVersionRange));
    c.objects("files", [&](Reader& f, uint32_t) {
      CgroupFile file;
      file.name = f.str("name");
      file.value = f.str("value");
      file.optional = f.flag("optional", false);
      spec.files.push_back(std::move(file));
    });
    spec.watchOom = c.flag("watchOom", false);
    plan.cgroups.push_back(std::move(spec));
  });
  plan.warm = r.flag("warm", false);
  plan.warmRefill = r.flag("warmRefill", true);
}

// The ids of a plan (uid, gid, hostUid, hostGid: 65534 unless given).
static void readIds(Reader& r, Plan& plan) {
  plan.uid = static_cast<uint32_t>(r.integer("uid", kIdRange, true, 65534));
  plan.gid = static_cast<uint32_t>(r.integer("gid", kIdRange, true, 65534));
  plan.hostUid = static_cast<uint32_t>(r.integer("hostUid", kIdRange, true, 65534));
  plan.hostGid = static_cast<uint32_t>(r.integer("hostGid", kIdRange, true, 65534));
}

// The /proc/sys/user budgets of a plan (their paths checked by checkBudgets).
static void readBudgets(Reader& r, Plan& plan) {
  r.objects("budgets", [&](Reader& b, uint32_t) {
    Budget budget;
    budget.path = b.str("path");
    budget.value = b.str("value");
    plan.budgets.push_back(std::move(budget));
  });
}

bool readPlan(Napi::Env env, Napi::Object obj, Plan& plan, std::string* message) {
  Reader r(env, obj, "plan");
  plan.file = r.str("file");
  plan.argv = r.strings("argv");
  plan.envp = r.strings("envp");
  plan.cwd = r.str("cwd");
  plan.hostname = r.str("hostname");
  readIds(r, plan);
  plan.baseDir = r.str("baseDir");
  plan.rootOptions = r.str("rootOptions");
  r.objects("mounts", [&](Reader& m, uint32_t) {
    MountOp op;
    op.kind = static_cast<MountOp::Kind>(m.integer("kind", kMountKindRange));
    op.source = m.str("source", true);
    op.target = m.str("target");
    op.data = m.str("data", true);
    op.readOnly = m.flag("readOnly", true);
    op.devices = m.flag("devices", false);
    op.createTarget = m.flag("createTarget", true);
    op.idmap = m.flag("idmap", false);
    op.mode = static_cast<uint32_t>(m.integer("mode", kModeRange, true, 0755));
    plan.mounts.push_back(std::move(op));
  });
  plan.shareNetwork = r.flag("shareNetwork", false);
  plan.routeAllLocal = r.flag("routeAllLocal", false);
  r.objects("listeners", [&](Reader& l, uint32_t) {
    Listener spec;
    Napi::Value addr = l.raw("address");
    std::string type = l.str("type");
    spec.type = type == "udp" ? SOCK_DGRAM : SOCK_STREAM;
    if (type != "udp" && type != "tcp") l.fail("type", "'tcp' or 'udp'");
    int64_t port = l.integer("port", 0, 65535, "a port number");
    spec.port = static_cast<uint16_t>(port);
    if (!addr.IsBuffer()) return l.fail("address", "a Buffer of 4 or 16 bytes");
    auto b = addr.As<Napi::Buffer<uint8_t>>();
    if (b.Length() != 4 && b.Length() != 16) return l.fail("address", "a Buffer of 4 or 16 bytes");
    spec.family = b.Length() == 4 ? AF_INET : AF_INET6;
    memcpy(spec.addr, b.Data(), b.Length());
    plan.listeners.push_back(spec);
  });
  readPerSpawn(r, plan);
  r.objects("limits", [&](Reader& l, uint32_t) {
    Limit limit;
    limit.resource = static_cast<int32_t>(l.integer("resource", kRlimitResourceRange));
    limit.value.rlim_cur = static_cast<rlim_t>(l.integer("soft", kRlimitValueRange));
    limit.value.rlim_max = static_cast<rlim_t>(l.integer("hard", kRlimitValueRange));
    plan.limits.push_back(limit);
  });
  plan.useInit = r.flag("useInit", true);
  plan.initPath = r.str("initPath", !plan.useInit);
  plan.seccomp = r.flag("seccomp", true);
  plan.seccompProfile =
      static_cast<SeccompProfile>(r.integer("seccompProfile", kSeccompProfileRange, true, 0));
  Napi::Value landlock = r.raw("landlock");
  if (!landlock.IsUndefined()) {
    if (!landlock.IsObject()) {
      r.fail("landlock", "an object");
    } else {
      Reader l(env, landlock.As<Napi::Object>(), "plan.landlock");
      LandlockPlan& ll = plan.landlock;
      ll.enabled = true;
      ll.handledFs = static_cast<uint64_t>(l.integer("handledFs", kLandlockFsRange));
      l.objects("rules", [&](Reader& rule, uint32_t) {
        LandlockRule out;
        out.path = rule.str("path");
        out.access = static_cast<uint64_t>(rule.integer("access", kLandlockFsRange));
        ll.rules.push_back(std::move(out));
      });
      ll.handledNet = static_cast<uint64_t>(l.integer("handledNet", kLandlockNetRange, true, 0));
      l.objects("ports", [&](Reader& rule, uint32_t) {
        int64_t port = rule.integer("port", 0, 65535, "a TCP port (0 to 65535)");
        int64_t access = rule.integer("access", kLandlockNetRange);
        ll.ports.push_back({static_cast<uint16_t>(port), static_cast<uint64_t>(access)});
      });
      ll.scope = l.flag("scope", true);
      ll.allowStdio = l.flag("allowStdio", true);
      r.absorb(l);
    }
  }
  readBudgets(r, plan);
  plan.cgroupDirs = r.strings("cgroupDirs", true);
  // The shapes first, then the rules of the values (the same a recorded plan is held to).
  *message = r.ok() ? checkPlan(plan) : r.message();
  return message->empty();
}

// A plan read once (new PlanTemplate(plan)) for many spawns of one definition: converting a
// plan's few hundred strings and numbers from JS values took ~0.2 ms of the JS thread per
// spawn. spawn(perSpawn, ..., template) copies the template's C++ Plan and reads only `file`,
// `fds` and `cgroups` from perSpawn. Type-tagged, so that no other object passes for one.
const napi_type_tag kPlanTemplateTag = {0x73746f636b616465ull, 0x706c616e74706c31ull};

class PlanTemplate : public Napi::ObjectWrap<PlanTemplate> {
 public:
  static Napi::Function Init(Napi::Env env) { return DefineClass(env, "PlanTemplate", {}); }
  explicit PlanTemplate(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PlanTemplate>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "new PlanTemplate(plan) takes a plan object")
          .ThrowAsJavaScriptException();
      return;
    }
    std::string message;
    if (!readPlan(env, info[0].As<Napi::Object>(), plan_, &message)) {
      Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
      return;
    }
    napi_type_tag_object(env, info.This(), &kPlanTemplateTag);
  }
  const Plan& plan() const { return plan_; }

 private:
  Plan plan_;
};

// Calls a JS callback from the event loop. The status is not turned into a C++ Napi::Error (which
// is fatal under NAPI_DISABLE_CPP_EXCEPTIONS when it cannot be built): a callback fails either
// because it threw, which Node has already reported as an uncaught exception, or because a
// Worker is being terminated while it runs, and then there is nobody left to tell.
void CallBack(Napi::Env env, const Napi::FunctionReference& fn,
              std::initializer_list<napi_value> args) {
  napi_value result;
  napi_make_callback(env, nullptr, env.Global(), fn.Value(), args.size(), args.begin(), &result);
}

// ---- the handle of a running sandbox ----

// Type-tagged too: new OomWatch(handle, ...) takes the handle's eventfd (takeOomEventFd).
const napi_type_tag kSandboxTag = {0x73746f636b616465ull, 0x73616e64626f7831ull};

class Sandbox : public Napi::ObjectWrap<Sandbox>, public EnvResource {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(
        env, "Sandbox",
        {InstanceMethod("kill", &Sandbox::Kill), InstanceMethod("ref", &Sandbox::Ref),
         InstanceMethod("unref", &Sandbox::Unref),
         InstanceMethod("adoptListener", &Sandbox::AdoptListener),
         InstanceMethod("released", &Sandbox::Released)});
  }

  explicit Sandbox(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Sandbox>(info) {
    napi_type_tag_object(info.Env(), info.This(), &kSandboxTag);
  }

  ~Sandbox() override { Stop(); }

  // `cgroupDirs` are the sandbox's cgroups (plan.cgroupDirs), taken over for teardown.
  void Start(Napi::Env env, LoopHandles* handles, Spawner* spawner, const SpawnResult& r,
             Napi::Function onExit, Napi::Value onViolation, std::vector<std::string> cgroupDirs) {
    env_ = env;
    handles_ = handles;
    spawner_ = spawner;
    pid_ = r.pid;
    pidfd_ = r.pidfd;
    statusFd_ = r.statusFd;
    mountNsFd_ = r.mountNsFd;
    oomEventFd_ = r.oomEventFd;  // until a watch takes it (takeOomEventFd), for the same reason
    cgroupDirs_ = std::move(cgroupDirs);
    // The injected listeners are the handle's until JavaScript has wrapped each one (see
    // AdoptListener): onSpawn gets them as bare numbers, and a Worker terminated before it has
    // wrapped them all (lib/net/sandbox.ts runs in onSpawn, after a require) would otherwise
    // lose the rest. Identified by inode, for the teardown's check (releaseAtTeardown).
    listeners_.reserve(r.listenerFds.size());
    for (int fd : r.listenerFds) {
      dev_t dev = 0;
      ino_t ino = 0;
      fdIdentity(fd, &dev, &ino);  // cannot fail: the fd is ours
      listeners_.push_back({fd, dev, ino});
    }
    onExit_ = Napi::Persistent(onExit);
    handles_->track(this);  // from here on, the environment's teardown kills it (see below)
    poll_ = handles_->openPoll(pidfd_, this);
    if (poll_ != nullptr) uv_poll_start(poll_, UV_READABLE, &Sandbox::OnReadable);
    // stockade-init's violation records arrive while the sandbox runs (initproto.h).
    if (statusFd_ >= 0) fcntl(statusFd_, F_SETFL, fcntl(statusFd_, F_GETFL) | O_NONBLOCK);
    if (statusFd_ >= 0 && onViolation.IsFunction()) {
      onViolation_ = Napi::Persistent(onViolation.As<Napi::Function>());
      statusPoll_ = handles_->openPoll(statusFd_, this);
      if (statusPoll_ != nullptr) {
        uv_poll_start(statusPoll_, UV_READABLE, &Sandbox::OnStatusReadable);
        uv_unref(reinterpret_cast<uv_handle_t*>(statusPoll_));  // the pidfd watcher keeps us alive
      }
    }
    Napi::ObjectWrap<Sandbox>::Ref();  // alive while the exit watcher runs
  }

  // The environment that spawned it is torn down (a Worker terminated, Node exiting) while it
  // runs: nothing of it may outlive the environment. Its whole pid namespace is killed and
  // reaped, its fds closed, its cgroups removed (lib/limits would have, after 'exit'); no
  // JavaScript is told.
  // Listeners JavaScript had not adopted: it may have wrapped one (a net.Server, a UdpEndpoint)
  // and been stopped before adoptListener(); LoopHandles::closeLast closes each at the end of
  // teardown only if the number still names the socket, i.e. nobody wrapped and closed it.
  void releaseAtTeardown() override {
    if (pidfd_ >= 0) killAndReap(pid_, pidfd_);
    for (Listener& l : listeners_)
      if (l.fd >= 0) handles_->closeLast(l.fd, l.dev, l.ino);
    listeners_.clear();
    Stop();
    removeCgroupDirs(cgroupDirs_);
    cgroupDirs_.clear();
  }

  // The OOM eventfd, for the watch that takes it over (takeOomEventFd below); -1 once taken.
  int takeOomEventFd() {
    int fd = oomEventFd_;
    oomEventFd_ = -1;
    return fd;
  }

 private:
  // Both watchers report to JavaScript: when it cannot run any more (canRunJs, loop_handles.h),
  // they stop, and the environment's teardown kills, reaps and releases the sandbox.
  static void OnReadable(uv_poll_t* handle, int, int) {
    auto* self = static_cast<Sandbox*>(handle->data);
    if (!canRunJs(self->env_)) return self->Pause();
    self->Collect();
  }

  static void OnStatusReadable(uv_poll_t* handle, int, int) {
    auto* self = static_cast<Sandbox*>(handle->data);
    if (!canRunJs(self->env_)) return self->Pause();
    Napi::HandleScope scope(self->env_);
    // At end-of-file (stockade-init gone) the pipe stays readable: stop watching it, so the
    // loop does not spin until the pidfd reports the exit.
    if (self->ReadRecords() && self->statusPoll_ != nullptr) uv_poll_stop(self->statusPoll_);
  }

  // Reads every whole record stockade-init has written: violations go to onViolation, the exit
  // record is kept for Collect(). A partial record cannot happen (each is one atomic write).
  // Returns whether the pipe is at end-of-file.
  bool ReadRecords() {
    StockadeInitRecord record;
    ssize_t n = -1;
    while (statusFd_ >= 0 && (n = read(statusFd_, &record, sizeof record)) == sizeof record) {
      if (record.kind == kInitRecordExit) {
        exitStatus_ = record.status;
        haveExitStatus_ = true;
      } else if (record.kind == kInitRecordViolation && !onViolation_.IsEmpty()) {
        Napi::Env env = env_;
        Napi::Object v = Napi::Object::New(env);
        v.Set("nr", record.nr);
        v.Set("arch", record.arch);
        Napi::Array args = Napi::Array::New(env, 6);
        for (uint32_t i = 0; i < 6; ++i)
          args.Set(i, Napi::BigInt::New(env, static_cast<uint64_t>(record.args[i])));
        v.Set("args", args);
        v.Set("errno", record.error);
        v.Set("pid", record.pid);
        v.Set("seenAt", static_cast<double>(record.seenNs) / 1e6);  // ms, as process.hrtime
        onViolation_.MakeCallback(env.Global(), {v});
      }
    }
    return statusFd_ >= 0 && n == 0;
  }

  void Collect() {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(static_cast<idtype_t>(P_PIDFD), pidfd_, &info, WEXITED | WNOHANG) != 0) {
      if (errno != EINVAL || waitid(P_PID, pid_, &info, WEXITED | WNOHANG) != 0) return;
    }
    if (info.si_pid == 0) return;  // not yet
    int code = -1, signal = 0;
    if (info.si_code == CLD_EXITED) {
      code = info.si_status;
    } else {
      signal = info.si_status;
    }
    // stockade-init wrote the payload's own status; without it (init killed, e.g. by SIGKILL
    // from kill()) init's status is the sandbox's. Violations still in the pipe come first.
    {
      Napi::HandleScope scope(env_);
      ReadRecords();
    }
    int32_t raw = exitStatus_;
    if (haveExitStatus_) {
      if (WIFEXITED(raw)) {
        code = WEXITSTATUS(raw);
        signal = 0;
      } else if (WIFSIGNALED(raw)) {
        code = -1;
        signal = WTERMSIG(raw);
      }
    }
    Stop();
    Napi::Env env = env_;
    Napi::HandleScope scope(env);
    Napi::Value exitCode = code >= 0 ? Napi::Number::New(env, code) : env.Null();
    Napi::Value sig = signal > 0 ? Napi::String::New(env, SignalName(signal)) : env.Null();
    Napi::FunctionReference onExit = std::move(onExit_);
    Napi::ObjectWrap<Sandbox>::Unref();
    CallBack(env, onExit, {exitCode, sig});
  }

  // A table rather than sigabbrev_np(3), which needs glibc 2.32: the prebuilt addon links only
  // symbols of glibc <= 2.28 (what Node's own Linux binaries require; scripts/check-prebuilds.js).
  static std::string SignalName(int sig) {
    static constexpr const char* kNames[] = {
        nullptr,  "HUP",  "INT",    "QUIT", "ILL",   "TRAP", "ABRT", "BUS",
        "FPE",    "KILL", "USR1",   "SEGV", "USR2",  "PIPE", "ALRM", "TERM",
        "STKFLT", "CHLD", "CONT",   "STOP", "TSTP",  "TTIN", "TTOU", "URG",
        "XCPU",   "XFSZ", "VTALRM", "PROF", "WINCH", "IO",   "PWR",  "SYS"};
    if (sig > 0 && sig < static_cast<int>(sizeof kNames / sizeof kNames[0]))
      return std::string("SIG") + kNames[sig];
    return "SIG" + std::to_string(sig);
  }

  // Closes the watchers before the fds they poll (uv_poll requires that order). Idempotent; after
  // the environment's teardown there is nothing left for it to do (~Sandbox runs then).
  void Stop() {
    if (handles_ != nullptr) {
      handles_->untrack(this);
      handles_->close(poll_);
      handles_->close(statusPoll_);
    }
    onViolation_.Reset();
    // The sandbox has exited (or the handle is collected) with listeners never adopted, e.g.
    // lib/net threw before wrapping them; their netns is gone with the sandbox. Not one that
    // was wrapped and not yet adopted: JavaScript adopts each in the statement after the wrap.
    for (Listener& l : listeners_)
      if (l.fd >= 0) closeIfSame(l.fd, l.dev, l.ino);
    listeners_.clear();
    if (pidfd_ >= 0) close(pidfd_);
    if (statusFd_ >= 0) close(statusFd_);
    if (oomEventFd_ >= 0) close(oomEventFd_);
    // The mount namespace is freed on the releaser thread (spawn.h, SpawnResult::mountNsFd);
    // the handle stays alive until it has been, and released() reports it. At teardown the
    // threads are stopped, and the fd is closed here.
    if (mountNsFd_ >= 0 && spawner_->closeLater(mountNsFd_, &Sandbox::OnReleased, this)) {
      releasing_ = true;
      Napi::ObjectWrap<Sandbox>::Ref();
    } else if (mountNsFd_ >= 0) {
      close(mountNsFd_);
    }
    pidfd_ = statusFd_ = oomEventFd_ = mountNsFd_ = -1;
  }

  static void OnReleased(void* data) {
    auto* self = static_cast<Sandbox*>(data);
    self->releasing_ = false;
    Napi::FunctionReference done = std::move(self->onReleased_);
    if (!done.IsEmpty() && canRunJs(self->env_)) {
      Napi::HandleScope scope(self->env_);
      CallBack(self->env_, done, {});
    }
    self->Napi::ObjectWrap<Sandbox>::Unref();  // the Ref of Stop(), last: `self` may go with it
  }

  // released(callback): callback() once the sandbox's mount namespace is freed (after its exit),
  // at once if it is. lib/process.ts waits for it before 'close', so that no fd of the sandbox
  // is left then.
  Napi::Value Released(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) {
      Napi::TypeError::New(env, "released(callback) takes a function").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!releasing_) {
      CallBack(env, Napi::Persistent(info[0].As<Napi::Function>()), {});
      return env.Undefined();
    }
    onReleased_ = Napi::Persistent(info[0].As<Napi::Function>());
    return env.Undefined();
  }

  // Stops both watchers without closing anything (see OnReadable).
  void Pause() {
    if (poll_ != nullptr) uv_poll_stop(poll_);
    if (statusPoll_ != nullptr) uv_poll_stop(statusPoll_);
  }

  // kill(signal: number) -> 0 or an errno (ESRCH once it has exited).
  Napi::Value Kill(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) {
      Napi::TypeError::New(info.Env(), "kill(signal) takes a signal number")
          .ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    int sig = info[0].As<Napi::Number>().Int32Value();
    if (pidfd_ < 0) return Napi::Number::New(info.Env(), ESRCH);
    int rc = static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0));
    return Napi::Number::New(info.Env(), rc == 0 ? 0 : errno);
  }

  // adoptListener(index): JavaScript has wrapped listenerFds[index] (net.Server listen({ fd }),
  // new UdpEndpoint(fd)), right after the wrap, in the same synchronous run: from here on the
  // wrapper closes it, the handle never does. Why after, not a take() before the wrap: a Worker
  // terminated between a take and the wrap would lose the fd; between the wrap and this call,
  // the teardown's identity check (releaseAtTeardown) sorts it out.
  Napi::Value AdoptListener(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
      Napi::TypeError::New(env, "adoptListener(index) takes an index").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int64_t i = info[0].As<Napi::Number>().Int64Value();
    if (i < 0 || i >= static_cast<int64_t>(listeners_.size())) {
      Napi::RangeError::New(env, "adoptListener(index): no such listener")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    listeners_[static_cast<size_t>(i)].fd = -1;
    return env.Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Env env_ = nullptr;
  LoopHandles* handles_ = nullptr;
  std::vector<std::string> cgroupDirs_;
  struct Listener {
    int fd;  // -1 once adopted
    dev_t dev;
    ino_t ino;
  };
  std::vector<Listener> listeners_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int statusFd_ = -1;
  int oomEventFd_ = -1;
  int mountNsFd_ = -1;
  bool releasing_ = false;  // the releaser thread has the mount namespace's fd
  Napi::FunctionReference onReleased_;
  Spawner* spawner_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  uv_poll_t* statusPoll_ = nullptr;
  Napi::FunctionReference onExit_;
  Napi::FunctionReference onViolation_;
  int32_t exitStatus_ = 0;
  bool haveExitStatus_ = false;
};

// ---- spawning, off the JS thread (spawner.cc) ----

// Per-environment state (the main thread and each Worker load their own; nothing of the addon
// is process-global): the Sandbox class, the spawner thread, and the registry of every libuv
// handle and live resource of the environment (loop_handles.h).
struct AddonData {
  explicit AddonData(Napi::Env e, uv_loop_t* loop) : env(e), handles(loop) {}
  Napi::Env env;
  LoopHandles handles;
  Napi::FunctionReference sandboxClass;
  std::unique_ptr<Spawner> spawner;  // made at the first spawn
  napi_async_cleanup_hook_handle teardown = nullptr;

  // The environment is torn down. In order: the spawner thread finishes the spawn at hand and
  // exits, and the sandboxes it spawned that JavaScript never got are killed and reaped; every
  // live resource (sandboxes, UDP endpoints, relays, OOM watches) releases its processes, fds
  // and handles; once the last handle's close callback has run, the hook is done. An async
  // hook, because Node keeps turning the loop until it is done and only then frees the
  // environment and unloads the addon, whose code the close callbacks are.
  static void OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
    auto* self = static_cast<AddonData*>(arg);
    if (self->spawner) self->spawner->shutdown();
    self->handles.teardown(&AddonData::Done, self);
  }
  static void Done(void* arg) {
    auto* self = static_cast<AddonData*>(arg);
    self->spawner.reset();
    napi_remove_async_cleanup_hook(self->teardown);
  }
};

struct Job : SpawnJob {
  Napi::FunctionReference onExit;
  Napi::FunctionReference onSpawn;
  Napi::FunctionReference onViolation;  // empty when not given
};

// On the JS thread, once the spawner has run the job: onSpawn(result) with the result shape
// of lib/native.ts.
void DeliverSpawn(std::unique_ptr<SpawnJob> done, void* data) {
  auto* addon = static_cast<AddonData*>(data);
  std::unique_ptr<Job> job(static_cast<Job*>(done.release()));
  Napi::Env env = addon->env;
  // The spawn finished as its Worker stops (canRunJs, loop_handles.h): nobody can be told, so
  // the sandbox is killed and released as if it were still queued at teardown.
  if (!canRunJs(env)) return Spawner::discard(*job);
  Napi::HandleScope scope(env);
  const SpawnResult& r = job->result;
  Napi::Object out = Napi::Object::New(env);
  if (r.failed) {
    Napi::Object error = Napi::Object::New(env);
    error.Set("step", r.error.step);
    error.Set("errno", r.error.err);
    error.Set("index", r.error.index);
    if (!r.failedPath.empty()) error.Set("path", r.failedPath);
    if (r.failedSyscall != nullptr) error.Set("syscall", r.failedSyscall);
    out.Set("error", error);
  } else {
    // The cgroups the sandbox is in, in plan order: a warm child's v2 cgroup is its own, not
    // the one lib/limits named (spawner.cc).
    Napi::Array cgroupDirs = Napi::Array::New(env, job->plan.cgroups.size());
    for (size_t i = 0; i < job->plan.cgroups.size(); ++i)
      cgroupDirs.Set(i, job->plan.cgroups[i].dir);
    out.Set("cgroupDirs", cgroupDirs);
    Napi::Object handle = addon->sandboxClass.New({});
    Sandbox::Unwrap(handle)->Start(
        env, &addon->handles, addon->spawner.get(), r, job->onExit.Value(),
        job->onViolation.IsEmpty() ? env.Undefined() : job->onViolation.Value(),
        std::move(job->plan.cgroupDirs));
    Napi::Array fds = Napi::Array::New(env, r.listenerFds.size());
    for (size_t i = 0; i < r.listenerFds.size(); ++i) fds.Set(i, r.listenerFds[i]);
    out.Set("pid", r.pid);
    out.Set("handle", handle);
    out.Set("listenerFds", fds);
    out.Set("landlockAbi", r.landlockAbi);
    out.Set("seccompNotify", r.seccompNotify);
    out.Set("watchOom", r.oomEventFd >= 0);
    out.Set("warm", r.warm);
  }
  Napi::FunctionReference onSpawn = std::move(job->onSpawn);
  job.reset();
  CallBack(env, onSpawn, {out});
}

// spawn(plan, onExit, onSpawn[, onViolation[, template]]): checks the plan's shape (a TypeError
// otherwise) and queues it (with a PlanTemplate, `plan` gives only file, fds and cgroups);
// onSpawn(result) follows from the event loop. The payload's stdio fds are duplicated here,
// synchronously, so the caller may close its own as soon as spawn() returns (as it may after
// child_process.spawn()).
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsFunction() || !info[2].IsFunction()) {
    Napi::TypeError::New(env, "spawn(plan, onExit, onSpawn) takes a plan object and two functions")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto job = std::make_unique<Job>();
  std::string message;
  bool tagged = false;
  if (info.Length() > 4 && info[4].IsObject())
    napi_check_object_type_tag(env, info[4], &kPlanTemplateTag, &tagged);
  if (tagged) {
    job->plan = PlanTemplate::Unwrap(info[4].As<Napi::Object>())->plan();
    Reader r(env, info[0].As<Napi::Object>(), "plan");
    job->plan.file = r.str("file");
    job->plan.fds.clear();
    job->plan.cgroups.clear();
    readPerSpawn(r, job->plan);
    message = r.ok() ? checkPlan(job->plan) : r.message();
    if (!message.empty()) {
      Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
      return env.Undefined();
    }
  } else if (!readPlan(env, info[0].As<Napi::Object>(), job->plan, &message)) {
    // A getter or Proxy trap of the plan threw: that exception is already pending and is the
    // one the caller sees (throwing a second one over it is fatal in N-API).
    if (env.IsExceptionPending()) return env.Undefined();
    Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // The sandbox's cgroup directories, for the teardown when its environment goes first.
  if (tagged) job->plan.cgroupDirs.clear();
  if (job->plan.cgroupDirs.empty())
    for (const CgroupSpec& cg : job->plan.cgroups) job->plan.cgroupDirs.push_back(cg.dir);
  auto* addon = env.GetInstanceData<AddonData>();
  for (int& fd : job->plan.fds) {
    if (fd < 0) continue;
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup < 0) {
      int err = errno;
      for (int owned : job->ownedFds) close(owned);
      Napi::Error e = Napi::Error::New(
          env, std::string("fcntl(F_DUPFD_CLOEXEC) of a stdio fd: ") + strerror(err));
      e.Set("errno", Napi::Number::New(env, err));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
    job->ownedFds.push_back(dup);
    fd = dup;
  }
  job->onExit = Napi::Persistent(info[1].As<Napi::Function>());
  job->onSpawn = Napi::Persistent(info[2].As<Napi::Function>());
  if (info.Length() > 3 && info[3].IsFunction())
    job->onViolation = Napi::Persistent(info[3].As<Napi::Function>());
  if (!addon->spawner)
    addon->spawner = std::make_unique<Spawner>(&addon->handles, &DeliverSpawn, addon);
  std::vector<int> owned = job->ownedFds;
  if (int err = addon->spawner->submit(std::move(job))) {
    for (int fd : owned) close(fd);
    Napi::Error e =
        Napi::Error::New(env, std::string("pthread_create (the spawner thread): ") + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// An inherited fd (3 or above) whose /proc/self/fd link starts with `kind` ("pipe:[",
// "anon_inode:[pidfd]", ...); a pidfd must also be one of `pid` (its fdinfo's "Pid:" line).
static bool inheritedFdIs(int fd, const char* kind, pid_t pid = 0) {
  char path[64], link[128];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = fd < 3 ? -1 : readlink(path, link, sizeof link - 1);
  if (n <= 0) return false;
  link[n] = '\0';
  if (strncmp(link, kind, strlen(kind)) != 0) return false;
  if (pid == 0) return true;
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  int info = open(path, O_RDONLY | O_CLOEXEC);
  if (info < 0) return false;
  char text[1024];
  n = read(info, text, sizeof text - 1);
  close(info);
  if (n <= 0) return false;
  text[n] = '\0';
  const char* line = strstr(text, "\nPid:\t");
  return line != nullptr && atoi(line + 6) == pid;
}

// adopt(sandbox, onExit, onSpawn[, onViolation]): a sandbox native/launch.cc spawned from a launch
// record before it exec'd this process (lib/launch), its fds inherited: { pid, pidfd, statusFd,
// mountNsFd, oomEventFd (-1: none), landlockAbi, seccompNotify, cgroupDirs }. onSpawn(result)
// follows at once, shaped as spawn()'s; from then on the handle owns the fds. A TypeError where
// the fds are not what they are said to be (nothing is taken then).
Napi::Value Adopt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsFunction() || !info[2].IsFunction()) {
    Napi::TypeError::New(env, "adopt(sandbox, onExit, onSpawn) takes an object and two functions")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Reader r(env, info[0].As<Napi::Object>(), "sandbox");
  auto job = std::make_unique<Job>();
  SpawnResult& res = job->result;
  res.pid = static_cast<pid_t>(r.integer("pid", 1, INT32_MAX, "a pid"));
  res.pidfd = static_cast<int>(r.integer("pidfd", 3, INT32_MAX, "an fd"));
  res.statusFd = static_cast<int>(r.integer("statusFd", -1, INT32_MAX, "an fd or -1"));
  res.mountNsFd = static_cast<int>(r.integer("mountNsFd", -1, INT32_MAX, "an fd or -1"));
  res.oomEventFd = static_cast<int>(r.integer("oomEventFd", -1, INT32_MAX, "an fd or -1"));
  res.landlockAbi = static_cast<int>(r.integer("landlockAbi", 0, 64, "a Landlock ABI"));
  res.seccompNotify = r.flag("seccompNotify", false);
  for (std::string& dir : r.strings("cgroupDirs")) {
    CgroupSpec spec;
    spec.dir = dir;
    job->plan.cgroups.push_back(std::move(spec));
    job->plan.cgroupDirs.push_back(std::move(dir));
  }
  if (!r.ok()) {
    Napi::TypeError::New(env, r.message()).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!inheritedFdIs(res.pidfd, "anon_inode:[pidfd]", res.pid) ||
      (res.statusFd != -1 && !inheritedFdIs(res.statusFd, "pipe:[")) ||
      (res.mountNsFd != -1 && !inheritedFdIs(res.mountNsFd, "mnt:[")) ||
      (res.oomEventFd != -1 && !inheritedFdIs(res.oomEventFd, "anon_inode:[eventfd]"))) {
    Napi::TypeError::New(env,
                         "adopt(): the fds are not the sandbox's (its pidfd, status pipe, "
                         "mount namespace, OOM eventfd)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  for (int fd : {res.pidfd, res.statusFd, res.mountNsFd, res.oomEventFd})
    if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
  job->onExit = Napi::Persistent(info[1].As<Napi::Function>());
  job->onSpawn = Napi::Persistent(info[2].As<Napi::Function>());
  if (info.Length() > 3 && info[3].IsFunction())
    job->onViolation = Napi::Persistent(info[3].As<Napi::Function>());
  auto* addon = env.GetInstanceData<AddonData>();
  // The handle frees the mount namespace on the spawner's releaser thread (Sandbox::Stop).
  if (!addon->spawner)
    addon->spawner = std::make_unique<Spawner>(&addon->handles, &DeliverSpawn, addon);
  DeliverSpawn(std::move(job), addon);
  return env.Undefined();
}

// prewarm(key) -> 0 or an errno: has the spawner thread make a warm child (spawn.cc, "The warm
// pool") while the plan it is for is still being resolved (lib/plan.ts); the spawn of that plan
// takes it if its key matches. `key` holds what the key is made of, as a plan has them:
// shareNetwork, the ids, budgets, landlock.handledNet, and cgroupParent (the directory the
// sandbox's v2 cgroup is made in, "" for none).
static Napi::Value Prewarm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "prewarm(key) takes an object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Reader r(env, info[0].As<Napi::Object>(), "key");
  Plan plan;
  plan.shareNetwork = r.flag("shareNetwork", false);
  readIds(r, plan);
  readBudgets(r, plan);
  Napi::Value landlock = r.raw("landlock");
  if (landlock.IsObject()) {
    Reader l(env, landlock.As<Napi::Object>(), "key.landlock");
    plan.landlock.handledNet =
        static_cast<uint64_t>(l.integer("handledNet", kLandlockNetRange, true, 0));
    r.absorb(l);
  } else if (!landlock.IsUndefined()) {
    r.fail("landlock", "an object");
  }
  std::string cgroupParent = r.str("cgroupParent", true);
  if (!cgroupParent.empty() &&
      (cgroupParent[0] != '/' || cgroupParent.find('\0') != std::string::npos))
    r.fail("cgroupParent", "an absolute path");
  std::string message = r.ok() ? checkBudgets(plan.budgets, "key") : r.message();
  if (!message.empty()) {
    if (env.IsExceptionPending()) return env.Undefined();
    Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  stockade::WarmKey key = stockade::warmKeyOf(plan);
  key.cgroupParent = cgroupParent;
  auto* addon = env.GetInstanceData<AddonData>();
  if (!addon->spawner)
    addon->spawner = std::make_unique<Spawner>(&addon->handles, &DeliverSpawn, addon);
  return Napi::Number::New(env, addon->spawner->prewarm(key));
}

// encodePlan(plan) -> Buffer: the plan, checked as spawn() checks it (the same TypeError), in
// the recorded form a launcher that is not a Node process spawns from (planwire.h). A plan past
// that form's limits (a string over 1 MiB, a list over 4096 entries) is a RangeError: the bytes
// are decoded once here, so that what is handed out is what the launcher will accept.
static Napi::Value EncodePlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "encodePlan(plan) takes a plan object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Plan plan;
  std::string message;
  if (!readPlan(env, info[0].As<Napi::Object>(), plan, &message)) {
    if (env.IsExceptionPending()) return env.Undefined();
    Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string bytes = encodePlan(plan);
  Plan decoded;
  if (!decodePlan(bytes, &decoded, &message)) {
    Napi::RangeError::New(env, "encodePlan: the plan exceeds the recorded form: " + message)
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Buffer<char>::Copy(env, bytes.data(), bytes.size());
}

// planRoundTrip(bytes) -> Buffer | string, for tests: decodePlan(bytes), then encodePlan of what
// it decoded; the bytes so made, or decodePlan's reason for refusing them.
static Napi::Value PlanRoundTrip(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "planRoundTrip(bytes) takes a Buffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto b = info[0].As<Napi::Buffer<char>>();
  Plan plan;
  std::string error;
  if (!decodePlan(std::string(b.Data(), b.Length()), &plan, &error))
    return Napi::String::New(env, error);
  std::string again = encodePlan(plan);
  return Napi::Buffer<char>::Copy(env, again.data(), again.size());
}

// pipe() -> [readFd, writeFd], both close-on-exec.
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    Napi::Error::New(info.Env(), std::string("pipe2: ") + strerror(errno))
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, fds[0]);
  out.Set(1u, fds[1]);
  return out;
}

// closeFd(fd) -> 0 or an errno. For the fds pipe() made: in a Worker, fs.closeSync() of an fd
// that fs did not open warns ("closed but not opened in unmanaged mode").
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), "closeFd(fd) takes an fd").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  int rc = close(info[0].As<Napi::Number>().Int32Value());
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : errno);
}

// probeNamespaces() -> 0 or the errno of clone() with every namespace a sandbox uses.
Napi::Value ProbeNamespaces(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), probeNamespaces());
}

}  // namespace

int takeOomEventFd(Napi::Env env, Napi::Value handle) {
  bool tagged = false;
  if (handle.IsObject()) napi_check_object_type_tag(env, handle, &kSandboxTag, &tagged);
  return tagged ? Sandbox::Unwrap(handle.As<Napi::Object>())->takeOomEventFd() : -1;
}

}  // namespace stockade

// landlockAbi() -> the Landlock ABI version, or -errno (EOPNOTSUPP: disabled at boot).
static Napi::Value LandlockAbi(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), stockade::landlockAbi());
}

// auditProbe() -> { enabled, readLog } (audit.h): whether Landlock's audit records could be
// read here. For `stockade doctor`.
static Napi::Value ProbeAudit(const Napi::CallbackInfo& info) {
  stockade::AuditProbe probe = stockade::probeAudit();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("enabled", probe.enabled);
  out.Set("readLog", probe.readLog);
  return out;
}

// seccompNotify() -> whether violations can be named here (SECCOMP_RET_USER_NOTIF, 5.0).
static Napi::Value SeccompNotify(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), stockade::seccompNotifyAvailable());
}

// raiseOpenFileLimit() -> the RLIMIT_NOFILE soft limit after raising it to the hard limit (as
// Go's runtime does at start), or -errno. The launcher's proxies hold sockets and relay pipes
// for every sandbox; the hard limit is what the administrator granted, the soft one (often
// 1024) only a default for select(2)-era programs. man 2 setrlimit.
static Napi::Value RaiseOpenFileLimit(const Napi::CallbackInfo& info) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return Napi::Number::New(info.Env(), -errno);
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = old;
  }
  return Napi::Number::New(info.Env(), static_cast<double>(rl.rlim_cur));
}

// releaseCgroup(readFiles, dirs, done(texts, left)): what a sandbox's cgroups leave behind,
// on the libuv pool: reads each of readFiles (their event counters; null where unreadable),
// then rmdir()s each of dirs (ENOENT counts as removed), and calls done with the texts and how
// many directories are still there. lib/limits/cgroup.ts at every sandbox exit: the reads and
// rmdirs (five system calls per hierarchy) would otherwise hold the JS thread.
class ReleaseCgroup : public Napi::AsyncWorker {
 public:
  ReleaseCgroup(Napi::Function done, std::vector<std::string> files, std::vector<std::string> dirs)
      : Napi::AsyncWorker(done), files_(std::move(files)), dirs_(std::move(dirs)) {}

  void Execute() override {
    for (const std::string& file : files_) {
      std::string text;
      bool ok = false;
      int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        char buf[4096];
        ssize_t n;
        // Counter files are a few hundred bytes; 64 KiB bounds a hostile or odd one.
        while (text.size() < 65536 && (n = read(fd, buf, sizeof buf)) > 0)
          text.append(buf, static_cast<size_t>(n));
        ok = n == 0 || text.size() >= 65536;
        close(fd);
      }
      texts_.push_back(ok ? std::move(text) : std::string());
      read_.push_back(ok);
    }
    for (const std::string& dir : dirs_)
      if (rmdir(dir.c_str()) != 0 && errno != ENOENT) ++left_;
  }

  // Not OnOK: node-addon-api's Callback().Call() turns a failed call into a C++ Napi::Error,
  // which is fatal under NAPI_DISABLE_CPP_EXCEPTIONS, and a call fails when the environment (a
  // Worker being terminated) is going away as the work completes. As CallBack() above, the
  // status of the call is not acted on: then there is nobody left to tell.
  void OnWorkComplete(Napi::Env napiEnv, napi_status status) override {
    if (status == napi_cancelled) return;
    // Raw N-API calls, each status ignored: node-addon-api's wrappers throw a C++ error on any
    // failure (napi_set_element fails once the environment is terminating), which is fatal here.
    napi_env env = napiEnv;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value texts, value, left, fn, global, result;
    napi_create_array_with_length(env, texts_.size(), &texts);
    for (size_t i = 0; i < texts_.size(); ++i) {
      if (read_[i])
        napi_create_string_utf8(env, texts_[i].data(), texts_[i].size(), &value);
      else
        napi_get_null(env, &value);
      napi_set_element(env, texts, static_cast<uint32_t>(i), value);
    }
    napi_create_int32(env, left_, &left);
    napi_value args[2] = {texts, left};
    if (napi_get_reference_value(env, Callback(), &fn) == napi_ok && fn != nullptr &&
        napi_get_global(env, &global) == napi_ok)
      napi_make_callback(env, nullptr, global, fn, 2, args, &result);
    napi_close_handle_scope(env, scope);
  }

 private:
  std::vector<std::string> files_, dirs_, texts_;
  std::vector<bool> read_;
  int left_ = 0;
};

static std::vector<std::string> StringsOf(Napi::Value v) {
  std::vector<std::string> out;
  if (!v.IsArray()) return out;
  auto a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (e.IsString()) out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

static Napi::Value ReleaseCgroupFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsArray() || !info[2].IsFunction()) {
    Napi::TypeError::New(env,
                         "releaseCgroup(readFiles, dirs, done) takes two arrays and a function")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker =
      new ReleaseCgroup(info[2].As<Napi::Function>(), StringsOf(info[0]), StringsOf(info[1]));
  worker->Queue();  // deleted by napi once done
  return env.Undefined();
}

// startSpecialScan(root, limit, witness?, racyMs?) -> a handle; finishSpecialScan(handle) ->
// { witness: 'none' | 'held' | 'written' } when clean, { type: 'unix socket' | 'FIFO', path },
// or { errno, path } where the scan gave up (hostscan.cc, scanwitness.cc). The scan runs on threads
// of its own in between: lib/plan.ts starts it for each grant, resolves the rest of the plan, and
// finishes it before anything is spawned. A handle dropped unfinished is stopped when it is
// collected.
const napi_type_tag kSpecialScanTag = {0x73746f636b616465ull, 0x7363616e68616e64ull};

struct SpecialScanHandle {
  stockade::SpecialFileScan* scan;
};

static Napi::Value StartSpecialScan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool witnessed = info.Length() > 2 && !info[2].IsUndefined();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber() ||
      (witnessed && (!info[2].IsString() || info.Length() < 4 || !info[3].IsNumber()))) {
    Napi::TypeError::New(env,
                         "startSpecialScan(root, limit, witness?, racyMs?) takes a path, a number "
                         "and optionally a witness file and a number")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  double limit = info[1].As<Napi::Number>().DoubleValue();
  double racyMs = witnessed ? info[3].As<Napi::Number>().DoubleValue() : 0;
  auto* handle = new SpecialScanHandle{stockade::startSpecialFileScan(
      info[0].As<Napi::String>().Utf8Value(), limit > 0 ? static_cast<size_t>(limit) : 0,
      witnessed ? info[2].As<Napi::String>().Utf8Value() : std::string(),
      racyMs > 0 && racyMs < 1e9 ? static_cast<int64_t>(racyMs) : 0)};
  auto external =
      Napi::External<SpecialScanHandle>::New(env, handle, [](Napi::Env, SpecialScanHandle* h) {
        if (h->scan != nullptr) stockade::abandonSpecialFileScan(h->scan);
        delete h;
      });
  napi_type_tag_object(env, external, &kSpecialScanTag);
  return external;
}

// The unfinished scan behind a startSpecialScan handle, or null with a TypeError thrown.
static SpecialScanHandle* UnfinishedScan(const Napi::CallbackInfo& info, const char* usage) {
  Napi::Env env = info.Env();
  bool tagged = false;
  if (info.Length() > 0 && info[0].IsExternal())
    napi_check_object_type_tag(env, info[0], &kSpecialScanTag, &tagged);
  SpecialScanHandle* handle =
      tagged ? info[0].As<Napi::External<SpecialScanHandle>>().Data() : nullptr;
  if (handle == nullptr || handle->scan == nullptr) {
    Napi::TypeError::New(env, usage).ThrowAsJavaScriptException();
    return nullptr;
  }
  return handle;
}

static Napi::Value FinishSpecialScan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SpecialScanHandle* handle =
      UnfinishedScan(info, "finishSpecialScan(handle) takes an unfinished startSpecialScan handle");
  if (handle == nullptr) return env.Undefined();
  stockade::SpecialScan scan = stockade::finishSpecialFileScan(handle->scan);
  handle->scan = nullptr;
  Napi::Object out = Napi::Object::New(env);
  if (scan.err == 0 && scan.kind == stockade::SpecialKind::none) {
    out.Set("witness", scan.witness == stockade::WitnessUse::held      ? "held"
                       : scan.witness == stockade::WitnessUse::written ? "written"
                                                                       : "none");
    return out;
  }
  if (scan.err != 0)
    out.Set("errno", scan.err);
  else
    out.Set("type", scan.kind == stockade::SpecialKind::socket ? "unix socket" : "FIFO");
  out.Set("path", scan.path);
  return out;
}

// cancelSpecialScan(handle): stops an unfinished scan without waiting for its answer (its
// workers stop at their next directory and are joined; their fds are closed).
static Napi::Value CancelSpecialScan(const Napi::CallbackInfo& info) {
  SpecialScanHandle* handle =
      UnfinishedScan(info, "cancelSpecialScan(handle) takes an unfinished startSpecialScan handle");
  if (handle != nullptr) {
    stockade::abandonSpecialFileScan(handle->scan);
    handle->scan = nullptr;
  }
  return info.Env().Undefined();
}

// SHA-256 from the OpenSSL the Node process carries (Node exports its symbols for addons): a
// weak reference, null where this Node has none, and sha256Hex then returns null for the caller
// to load node:crypto instead. For lib/plan.ts's digest, whose node:crypto load (~6 ms) fell right
// when the sandbox and the server in it start, on CPUs they need.
extern "C" unsigned char* SHA256(const unsigned char* data, size_t length, unsigned char* md)
    __attribute__((weak));

// sha256Hex(text) -> the SHA-256 of text's UTF-8 bytes, in hex, or null without OpenSSL.
static Napi::Value Sha256Hex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "sha256Hex(text) takes a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (SHA256 == nullptr) return env.Null();
  std::string text = info[0].As<Napi::String>().Utf8Value();
  unsigned char md[32];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), md);
  static const char kHex[] = "0123456789abcdef";
  char hex[64];
  for (size_t i = 0; i < sizeof md; ++i) {
    hex[2 * i] = kHex[md[i] >> 4];
    hex[2 * i + 1] = kHex[md[i] & 15];
  }
  return Napi::String::New(env, hex, sizeof hex);
}

// onMainThread() -> whether the calling thread is the process's first (gettid() == getpid()):
// lib/limits/cgroup.ts names cgroups with Node's thread id, 0 there, without loading
// node:worker_threads (~2 ms of a cold start) to learn it.
static Napi::Value OnMainThread(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), syscall(SYS_gettid) == getpid());
}

// threadCpuTime() -> CPU time of the calling thread in ms (CLOCK_THREAD_CPUTIME_ID, ns
// resolution). For bench/: how much of a spawn the JS thread itself works, apart from the time
// other tasks of a loaded host held its CPU (process.threadCpuUsage() exists from Node 23.9;
// /proc/thread-self/schedstat is updated only at scheduler ticks).
static Napi::Value ThreadCpuTime(const Napi::CallbackInfo& info) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return Napi::Number::New(info.Env(), static_cast<double>(ts.tv_sec) * 1e3 + ts.tv_nsec / 1e6);
}

// steps -> { [number]: { step, syscall } }: the checklist's names (steps.h), so that
// lib/native.ts has them from the same list the child and stockade-init are built from.
static Napi::Object StepTable(Napi::Env env) {
  Napi::Object table = Napi::Object::New(env);
#define STOCKADE_STEP_ENTRY(number, Name, name, syscall) \
  {                                                      \
    Napi::Object entry = Napi::Object::New(env);         \
    entry.Set("step", name);                             \
    entry.Set("syscall", syscall);                       \
    table.Set(static_cast<uint32_t>(number), entry);     \
  }
  STOCKADE_STEPS(STOCKADE_STEP_ENTRY)
#undef STOCKADE_STEP_ENTRY
  Napi::Object frozen = env.Global().Get("Object").As<Napi::Object>();
  frozen.Get("freeze").As<Napi::Function>().Call(frozen, {table});
  return table;
}

// The environment's registry (loop_handles.h): one pointer lookup in the instance data.
stockade::LoopHandles* stockade::loopHandlesOf(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return &static_cast<AddonData*>(data)->handles;
}

// napi_coerce_to_number starts with N-API's preamble, which fails (napi_pending_exception, or
// napi_cannot_run_js in newer Node) once the environment cannot call into JavaScript (stopping,
// or being freed) and does nothing else for a number: the cheapest status check that asks
// exactly that question. Creating a number and a handle scope never needs JavaScript.
bool stockade::canRunJs(napi_env env) {
  if (env == nullptr) return false;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return false;
  napi_value zero = nullptr, out = nullptr;
  bool ok = napi_create_int32(env, 0, &zero) == napi_ok &&
            napi_coerce_to_number(env, zero, &out) == napi_ok;
  napi_close_handle_scope(env, scope);
  return ok;
}

// pipeSize(fd[, bytes]) -> the capacity of pipe `fd` in bytes after setting it to `bytes` if
// given (F_SETPIPE_SZ, rounded up by the kernel), or -errno. The relay's pipes count against the
// uid's pipe-user-pages-soft (relay.cc); `stockade doctor` and the tests read what a fresh pipe
// gets. man 7 pipe, man 2 fcntl.
static Napi::Value PipeSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || (info.Length() > 1 && !info[1].IsNumber())) {
    Napi::TypeError::New(env, "pipeSize(fd[, bytes]) takes numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (info.Length() > 1 && fcntl(fd, F_SETPIPE_SZ, info[1].As<Napi::Number>().Int32Value()) < 0)
    return Napi::Number::New(env, -errno);
  int size = fcntl(fd, F_GETPIPE_SZ);
  return Napi::Number::New(env, size < 0 ? -errno : size);
}

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  using namespace stockade;
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  auto* data = new AddonData(env, loop);
  data->sandboxClass = Napi::Persistent(Sandbox::Init(env));
  env.SetInstanceData(data);  // deleted by Node after the cleanup hooks
  napi_add_async_cleanup_hook(env, &AddonData::OnEnvTeardown, data, &data->teardown);
  exports.Set("spawn", Napi::Function::New(env, Spawn));
  exports.Set("adopt", Napi::Function::New(env, Adopt));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("probeNamespaces", Napi::Function::New(env, ProbeNamespaces));
  exports.Set("landlockAbi", Napi::Function::New(env, LandlockAbi));
  exports.Set("auditProbe", Napi::Function::New(env, ProbeAudit));
  exports.Set("raiseOpenFileLimit", Napi::Function::New(env, RaiseOpenFileLimit));
  exports.Set("pipeSize", Napi::Function::New(env, PipeSize));
  exports.Set("seccompNotify", Napi::Function::New(env, SeccompNotify));
  exports.Set("threadCpuTime", Napi::Function::New(env, ThreadCpuTime));
  exports.Set("releaseCgroup", Napi::Function::New(env, ReleaseCgroupFn));
  exports.Set("prewarm", Napi::Function::New(env, Prewarm));
  exports.Set("encodePlan", Napi::Function::New(env, EncodePlan));
  exports.Set("planRoundTrip", Napi::Function::New(env, PlanRoundTrip));
  exports.Set("startSpecialScan", Napi::Function::New(env, StartSpecialScan));
  exports.Set("finishSpecialScan", Napi::Function::New(env, FinishSpecialScan));
  exports.Set("cancelSpecialScan", Napi::Function::New(env, CancelSpecialScan));
  exports.Set("onMainThread", Napi::Function::New(env, OnMainThread));
  exports.Set("sha256Hex", Napi::Function::New(env, Sha256Hex));
  exports.Set("steps", StepTable(env));
  exports.Set("UdpEndpoint", UdpEndpoint::Init(env));
  exports.Set("Relay", Relay::Init(env));
  exports.Set("ToolRelay", ToolRelay::Init(env));
  exports.Set("OomWatch", OomWatch::Init(env));
  exports.Set("PlanTemplate", PlanTemplate::Init(env));
  return exports;
}

NODE_API_MODULE(stockade, InitAddon)
