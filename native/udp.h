// udp.h — UdpEndpoint, a JavaScript object serving an injected UDP socket (udp.cc).
#pragma once

#include <napi.h>
#include <uv.h>

#include "loop_handles.h"

namespace stockade {

class UdpEndpoint : public Napi::ObjectWrap<UdpEndpoint>, public EnvResource {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit UdpEndpoint(const Napi::CallbackInfo& info);
  ~UdpEndpoint() override;
  void releaseAtTeardown() override;

 private:
  static void OnReadable(uv_poll_t* handle, int status, int events);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  void Stop();

  Napi::Env env_ = nullptr;
  LoopHandles* handles_ = nullptr;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference onMessage_;
};

}  // namespace stockade
