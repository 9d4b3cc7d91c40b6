// toolrelay.h — ToolRelay, a JavaScript object that carries the MCP tool layer's stdio on two
// threads of its own (toolrelay.cc).
#pragma once

#include <napi.h>
#include <pthread.h>
#include <uv.h>

#include <atomic>
#include <deque>
#include <string>

#include "loop_handles.h"
#include "mcpcheck.h"

namespace stockade {

class ToolRelay : public Napi::ObjectWrap<ToolRelay>, public EnvResource {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit ToolRelay(const Napi::CallbackInfo& info);
  ~ToolRelay() override;
  void releaseAtTeardown() override;

  // What onEvent(side, kind, bytes, errno) is told; lib/native.ts names them.
  enum Kind {
    kObserve = 0,   // a line passed on by itself: its copy, for the records
    kDefer = 1,     // a line the direction holds until answer(side, ...)
    kOversize = 2,  // a line longer than maxLineBytes ended (dropped); answer(side, ...) too
    kEnd = 3,       // the side's input ended (errno 0) or failed; a last line without '\n' with it
    kClientGone = 4,  // writing to the client failed (EPIPE...) or reading it did
    kDone = 5,        // both threads have finished: close() joins them at once
  };

 private:
  struct Event {
    int side;
    int kind;
    std::string bytes;
    int err;
    // When it was queued, ms on CLOCK_MONOTONIC (what process.hrtime reads): a copy is queued
    // before its line goes on, so lib/mcp/filter.ts can tell which calls were in flight at a
    // moment that reaches it later (a seccomp violation, lib/cli/run.ts).
    double at = 0;
  };
  // One direction: side 0 reads the client and writes the server, side 1 the reverse.
  struct Side {
    ToolRelay* relay = nullptr;
    int index = 0;
    int in = -1;
    int wake = -1;  // eventfd: stop, or (side 0) the client is gone
    uv_thread_t thread{};
    bool started = false;
    std::string partial;  // the line read so far
    bool discarding = false;
    bool waiting = false;  // a deferred line: answer() fills what follows
    bool answered = false;
    std::string toServer, toClient;
    pthread_cond_t answer = PTHREAD_COND_INITIALIZER;
  };

  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Answer(const Napi::CallbackInfo& info);
  Napi::Value Drain(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  static void OnAsync(uv_async_t* handle);
  static void OnTimer(uv_timer_t* handle);
  static void ThreadMain(void* arg);

  void pump(Side& s);
  void feed(Side& s, const char* data, size_t n);
  bool line(Side& s, const char* text, size_t len, const char* raw, size_t rawLen);
  bool defer(Side& s, int kind, const char* raw, size_t rawLen);
  void post(Event&& e);
  int writeAll(int fd, const char* p, size_t n, Side& s);
  bool toServer(Side& s, const char* p, size_t n);
  bool toClient(Side& s, const char* p, size_t n);
  void clientGone(int err);
  bool stopped(Side& s);
  void deliver(Napi::Env env);
  void stopThreads();
  void release();

  Napi::Env env_ = nullptr;
  LoopHandles* handles_ = nullptr;
  uv_async_t* async_ = nullptr;
  uv_timer_t* timer_ = nullptr;        // delivers copies batchMs_ after the last delivery
  uint64_t batchMs_ = 0;               // 0: every copy wakes the loop at once
  std::atomic<bool> batching_{false};  // the timer is armed: copies need not wake the loop
  Napi::FunctionReference onEvent_;
  ToolRules rules_;
  size_t maxLineBytes_ = 0;
  int clientIn_ = -1, clientOut_ = -1, serverIn_ = -1, serverOut_ = -1;
  int clientInFlags_ = -1, clientOutFlags_ = -1;  // as found: put back at the end
  Side side_[2];
  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;     // events_, queued_, the answers
  pthread_cond_t room_ = PTHREAD_COND_INITIALIZER;     // queued_ fell under the bound
  pthread_mutex_t outMu_ = PTHREAD_MUTEX_INITIALIZER;  // one line at a time to the client
  std::deque<Event> events_;
  size_t queued_ = 0;  // bytes of events_ not yet delivered
  std::atomic<bool> stop_{false};
  std::atomic<bool> clientGone_{false};
  bool serverInBroken_ = false;  // side 0 only: the server's stdin failed (it exited)
  int finished_ = 0;             // threads done (under mu_)
  bool running_ = false;
  bool draining_ = false;
};

}  // namespace stockade
