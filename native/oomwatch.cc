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
#include <unistd.h>

namespace stockade {

Napi::Function OomWatch::Init(Napi::Env env) {
  return DefineClass(env, "OomWatch", {InstanceMethod("close", &OomWatch::Close)});
}

// new OomWatch(handle, onOom()): watches the v1 OOM eventfd the spawner thread registered for a
// sandbox (cgroup.cc, before the sandbox existed) and held by its handle (addon.cc) until now.
// The fd moves from the handle to the watch here, in native code, so no Worker stopped between
// the two can lose it: the handle closes it if no watch took it, the watch once it is made,
// even when the poll cannot be opened.
OomWatch::OomWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OomWatch>(info) {
  Napi::Env env = info.Env();
  int fd = info.Length() == 2 && info[1].IsFunction() ? takeOomEventFd(env, info[0]) : -1;
  if (fd < 0) {
    Napi::TypeError::New(env,
                         "new OomWatch(handle, onOom) takes a sandbox handle holding an OOM "
                         "eventfd and a function")
        .ThrowAsJavaScriptException();
    return;
  }
  handles_ = loopHandlesOf(env);
  eventFd_ = fd;
  int err = 0;
  poll_ = handles_->openPoll(eventFd_, this, &err);
  if (err != 0) {
    Stop();
    Napi::Error e = Napi::Error::New(env, "OomWatch: the eventfd cannot be polled");
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
    return;
  }
  onOom_ = Napi::Persistent(info[1].As<Napi::Function>());
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
