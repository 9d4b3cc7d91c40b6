// oomwatch.h — OomWatch, a JavaScript object that reports OOM in a cgroup v1 memory cgroup.
#pragma once

#include <napi.h>
#include <uv.h>

#include "loop_handles.h"

namespace stockade {

// addon.cc: the OOM eventfd a sandbox handle holds, which the caller then owns; -1 when `handle`
// is not a sandbox handle or holds none (any more).
int takeOomEventFd(Napi::Env env, Napi::Value handle);

class OomWatch : public Napi::ObjectWrap<OomWatch>, public EnvResource {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit OomWatch(const Napi::CallbackInfo& info);
  ~OomWatch() override;
  void releaseAtTeardown() override;

 private:
  static void OnReadable(uv_poll_t* handle, int status, int events);
  Napi::Value Close(const Napi::CallbackInfo& info);
  void Stop();

  Napi::Env env_ = nullptr;
  LoopHandles* handles_ = nullptr;
  int eventFd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference onOom_;
};

}  // namespace stockade
