// relay.h — Relay, a JavaScript object that moves a tunnel's bytes in the kernel (relay.cc).
#pragma once

#include <napi.h>
#include <stdint.h>
#include <uv.h>

#include <string>

#include "loop_handles.h"

namespace stockade {

class Relay : public Napi::ObjectWrap<Relay>, public EnvResource {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Relay(const Napi::CallbackInfo& info);
  ~Relay() override;
  void releaseAtTeardown() override;

 private:
  // One direction of the tunnel: bytes read from side `src` are written to the other side.
  struct Direction {
    int pipe[2] = {-1, -1};
    size_t inPipe = 0;  // spliced in from src, not yet spliced out to dst
    std::string head;   // bytes JavaScript had already read from src: written first
    size_t headSent = 0;
    bool eof = false;    // src sent FIN
    bool shut = false;   // FIN passed on to dst: this direction is done
    bool grown = false;  // F_SETPIPE_SZ to kPipeSize tried (once, on the first full pipe)
    uint64_t bytes = 0;  // read from src (head not included)
    bool pending() const { return inPipe > 0 || headSent < head.size(); }
  };

  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnTimer(uv_timer_t* handle);
  int Pump(int index);
  void Rearm();
  void Finish(int err, bool timedOut);
  void Release();

  Napi::Env env_ = nullptr;
  LoopHandles* handles_ = nullptr;
  uv_loop_t* loop_ = nullptr;
  int fd_[2] = {-1, -1};  // 0: client, 1: upstream
  uv_poll_t* poll_[2] = {nullptr, nullptr};
  int events_[2] = {0, 0};
  uv_timer_t* timer_ = nullptr;
  uint64_t idleMs_ = 0;
  int pipeRoom_ = 0;  // bytes of pipe buffers the uid must keep free (0: no check), see relay.cc
  uint64_t lastActivity_ = 0;
  Direction dir_[2];  // 0: client -> upstream (up), 1: upstream -> client (down)
  bool running_ = false;
  Napi::FunctionReference onDone_;
};

}  // namespace stockade
