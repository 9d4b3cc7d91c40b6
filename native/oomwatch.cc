// oomwatch.cc — noticing an OOM in a cgroup v1 memory cgroup as it happens.
// man 2 eventfd; Documentation/admin-guide/cgroup-v1/memory.rst ("OOM Control"),
// cgroup-v1/cgroups.rst ("notification API": cgroup.event_control).
//
// cgroup v2 kills the whole sandbox itself on OOM (memory.oom.group=1). cgroup v1 has no such
// switch: its OOM killer picks the largest process in the cgroup, and a payload whose worker
// was killed would run on, half dead. So lib/limits turns v1's killer off for the sandbox (a
// task at the limit waits) and ends the whole sandbox when its memory cgroup reports the OOM,
// and that report comes through v1's notification API: an eventfd,
// registered by writing "<eventfd> <fd of memory.oom_control>" to cgroup.event_control, becomes
// readable on every OOM in the cgroup. The eventfd is polled from the libuv loop (Node cannot
// poll an eventfd itself) and each wakeup calls onOom(). No policy here.
#include "oomwatch.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace stockade {

Napi::Function OomWatch::Init(Napi::Env env) {
  return DefineClass(env, "OomWatch", {InstanceMethod("close", &OomWatch::Close)});
}

// new OomWatch(eventControlFd, oomControlFd, onOom()): both fds stay the caller's. Throws an
// Error with .errno when the registration fails.
// new OomWatch(eventFd, onOom()): an eventfd the spawner thread registered already (cgroup.cc,
// before the sandbox existed), which the watch then owns.
OomWatch::OomWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OomWatch>(info) {
  Napi::Env env = info.Env();
  bool adopt = info.Length() == 2 && info[0].IsNumber() && info[1].IsFunction();
  if (!adopt &&
      (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsFunction())) {
    Napi::TypeError::New(env,
                         "new OomWatch(eventControlFd, oomControlFd, onOom) takes two fds "
                         "and a function, new OomWatch(eventFd, onOom) an eventfd and a function")
        .ThrowAsJavaScriptException();
    return;
  }
  handles_ = loopHandlesOf(env);
  int err = 0;
  if (adopt) {
    eventFd_ = info[0].As<Napi::Number>().Int32Value();
  } else {
    int control = info[0].As<Napi::Number>().Int32Value();
    int oom = info[1].As<Napi::Number>().Int32Value();
    eventFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    err = eventFd_ < 0 ? errno : 0;
    if (err == 0) {
      char line[32];
      int len = snprintf(line, sizeof line, "%d %d", eventFd_, oom);
      if (write(control, line, static_cast<size_t>(len)) != len) err = errno;
    }
  }
  if (err == 0) poll_ = handles_->openPoll(eventFd_, this, &err);
  if (err != 0) {
    Stop();
    Napi::Error e = Napi::Error::New(env, "cgroup.event_control: registration failed");
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
    return;
  }
  onOom_ = Napi::Persistent(info[adopt ? 1 : 2].As<Napi::Function>());
  env_ = env;
  uv_poll_start(poll_, UV_READABLE, &OomWatch::OnReadable);
  handles_->track(this);
  // The sandbox's own exit watcher keeps the loop alive; this one must not.
  uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  Ref();  // alive while the poll runs, until close()
}

OomWatch::~OomWatch() {
  Stop();
}

void OomWatch::OnReadable(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<OomWatch*>(handle->data);
  if (status < 0 || self->eventFd_ < 0) return;
  // JavaScript cannot run any more (canRunJs, loop_handles.h): stop; teardown closes the eventfd.
  if (!canRunJs(self->env_)) return static_cast<void>(uv_poll_stop(handle));
  uint64_t count = 0;
  if (read(self->eventFd_, &count, sizeof count) != sizeof count) return;  // EAGAIN
  Napi::HandleScope scope(self->env_);
  self->onOom_.MakeCallback(self->Value(), {});
}

// Closes the watcher before the eventfd it polls (uv_poll requires that order).
void OomWatch::Stop() {
  if (poll_ != nullptr) {
    handles_->untrack(this);
    handles_->close(poll_);
    Unref();
  }
  if (eventFd_ >= 0) close(eventFd_);
  eventFd_ = -1;
}

// The environment goes first: the eventfd is closed (the kernel drops the registration).
void OomWatch::releaseAtTeardown() {
  handles_->close(poll_);
  if (eventFd_ >= 0) close(eventFd_);
  eventFd_ = -1;
}

// close(): stops watching and closes the eventfd (the kernel drops the registration with it).
Napi::Value OomWatch::Close(const Napi::CallbackInfo& info) {
  Stop();
  return info.Env().Undefined();
}

}  // namespace stockade
