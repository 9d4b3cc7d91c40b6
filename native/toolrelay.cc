// toolrelay.cc — the MCP tool layer's stdio (`stockade run --tools`) on two threads of its own.
// man 2 poll, man 2 eventfd, man 7 pipe, man 3 pthread_cond_wait, libuv uv_async_t.
//
// With the tool layer on, the launcher sits between the MCP client and the sandboxed server and
// reads every message. Doing that from the event loop costs two wakeups of the loop per round
// trip, and the streams around them: a relay in Node alone (no filter) made a round trip 1.36x
// direct on this 2-core machine, a relay on two blocked threads 1.09x (bench/mcp.ts). So each
// direction here is a thread blocked in poll(2) on its input, which splits lines, checks each
// with mcpcheck.cc and passes it on by itself when it may: the event loop is not on the path of
// an allowed call or of its answer. What it may not pass (kDefer: refusals, tools lists, anything
// unusual) goes to lib/mcp/filter.ts through a uv_async and the direction waits for the answer,
// so order is kept; lines that matter to the records (kObserve) go on and a copy follows.
//
// Threads own their fds: side 0 alone reads the client and writes (then closes) the server's
// stdin, side 1 alone reads the server's stdout; both write the client, a whole line at a time
// under outMu_. Every fd is non-blocking and every wait is a poll(2) that also watches the
// side's eventfd, so close() and the environment's teardown stop a thread wherever it waits.
// Backpressure is the blocking itself: a side waiting to write reads nothing more, and copies for
// JavaScript wait while more than kQueueBound bytes of them are undelivered.
// No policy and no logging here: lib/mcp/filter.ts does both.
#include "toolrelay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

namespace stockade {
namespace {

constexpr size_t kReadSize = 64 * 1024;
// Undelivered copies (kObserve) a side may run ahead of JavaScript by: beyond it, it waits.
constexpr size_t kQueueBound = 16 * 1024 * 1024;
// What an event costs beyond its bytes (the deque entry, the string): a flood of tiny lines is
// bounded by count too.
constexpr size_t kEventCost = 64;
// Deepest nesting the check reads, whatever the filter's limit: the scan recurses once per
// level on the relay thread's stack. A deeper message is deferred, and the filter's own limit
// decides it.
constexpr size_t kMaxCheckedDepth = 1024;

int setNonBlocking(int fd, int* before) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return errno;
  if (before != nullptr) *before = fl;
  if ((fl & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return errno;
  return 0;
}

void closeFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// CLOCK_MONOTONIC in ms: uv_hrtime's clock, so process.hrtime.bigint() / 1e6 in JavaScript.
double monotonicMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

}  // namespace

Napi::Function ToolRelay::Init(Napi::Env env) {
  return DefineClass(
      env, "ToolRelay",
      {InstanceMethod("start", &ToolRelay::Start), InstanceMethod("answer", &ToolRelay::Answer),
       InstanceMethod("drain", &ToolRelay::Drain), InstanceMethod("close", &ToolRelay::Close)});
}

// new ToolRelay(allow, deferCalls, maxLineBytes, maxDepth, onEvent[, batchMs])
ToolRelay::ToolRelay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ToolRelay>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsArray() || !info[1].IsBoolean() || !info[2].IsNumber() ||
      !info[3].IsNumber() || !info[4].IsFunction()) {
    Napi::TypeError::New(env,
                         "new ToolRelay(allow, deferCalls, maxLineBytes, maxDepth, onEvent) takes "
                         "an array of strings, a boolean, two numbers and a function")
        .ThrowAsJavaScriptException();
    return;
  }
  Napi::Array allow = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < allow.Length(); ++i) {
    Napi::Value v = allow.Get(i);
    if (!v.IsString()) {
      Napi::TypeError::New(env, "new ToolRelay(): allow must hold strings only")
          .ThrowAsJavaScriptException();
      return;
    }
    rules_.allow.push_back(v.As<Napi::String>().Utf8Value());
  }
  rules_.deferCalls = info[1].As<Napi::Boolean>().Value();
  int64_t maxLine = info[2].As<Napi::Number>().Int64Value();
  int64_t maxDepth = info[3].As<Napi::Number>().Int64Value();
  if (maxLine <= 0 || maxDepth <= 0) {
    Napi::TypeError::New(env, "new ToolRelay(): maxLineBytes and maxDepth must be positive")
        .ThrowAsJavaScriptException();
    return;
  }
  maxLineBytes_ = static_cast<size_t>(maxLine);
  rules_.maxDepth = std::min(static_cast<size_t>(maxDepth), kMaxCheckedDepth);
  onEvent_ = Napi::Persistent(info[4].As<Napi::Function>());
  if (info.Length() > 5 && info[5].IsNumber()) {
    int64_t ms = info[5].As<Napi::Number>().Int64Value();
    batchMs_ = ms > 0 && ms <= 1000 ? static_cast<uint64_t>(ms) : 0;
  }
  env_ = env;
  handles_ = loopHandlesOf(env);
  for (int i = 0; i < 2; ++i) {
    side_[i].relay = this;
    side_[i].index = i;
  }
}

ToolRelay::~ToolRelay() {
  if (running_ && handles_ != nullptr) handles_->untrack(this);
  stopThreads();
  release();
  pthread_cond_destroy(&room_);
  for (Side& s : side_) pthread_cond_destroy(&s.answer);
}

// start(clientIn, clientOut, serverIn, serverOut): 0 or an errno. The client's fds are
// duplicated (and put back as they were at the end); the server's pipe ends become the relay's.
Napi::Value ToolRelay::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() ||
      !info[3].IsNumber()) {
    Napi::TypeError::New(env, "start(clientIn, clientOut, serverIn, serverOut) takes four fds")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (running_ || clientIn_ >= 0 || onEvent_.IsEmpty()) return Napi::Number::New(env, EALREADY);
  int err = 0;
  clientIn_ = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
  if (clientIn_ < 0) err = errno;
  if (err == 0) {
    clientOut_ = fcntl(info[1].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
    if (clientOut_ < 0) err = errno;
  }
  if (err == 0) {
    serverIn_ = info[2].As<Napi::Number>().Int32Value();
    serverOut_ = info[3].As<Napi::Number>().Int32Value();
    err = setNonBlocking(clientIn_, &clientInFlags_);
  }
  if (err == 0) err = setNonBlocking(clientOut_, &clientOutFlags_);
  if (err == 0) err = setNonBlocking(serverIn_, nullptr);
  if (err == 0) err = setNonBlocking(serverOut_, nullptr);
  for (int i = 0; i < 2 && err == 0; ++i) {
    side_[i].wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (side_[i].wake < 0) err = errno;
  }
  if (err == 0) {
    async_ = handles_->openAsync(&ToolRelay::OnAsync, this);
    if (async_ == nullptr) err = ECANCELED;  // the environment is being torn down
  }
  if (err == 0 && batchMs_ > 0) {
    timer_ = handles_->openTimer(this);
    if (timer_ == nullptr) err = ECANCELED;
  }
  side_[0].in = clientIn_;
  side_[1].in = serverOut_;
  for (int i = 0; i < 2 && err == 0; ++i) {
    // libuv's thread calls, not pthread_create/pthread_join: those are GLIBC_2.34 symbols in
    // newer glibc, past the prebuilt addon's 2.28 floor (scripts/check-prebuilds.js).
    err = -uv_thread_create(&side_[i].thread, &ToolRelay::ThreadMain, &side_[i]);
    side_[i].started = err == 0;
  }
  if (err != 0) {
    stopThreads();
    release();
    return Napi::Number::New(env, err);
  }
  running_ = true;
  Ref();  // alive while relaying, even with no JavaScript reference
  handles_->track(this);
  return Napi::Number::New(env, 0);
}

// answer(side, toServer, toClient): what a deferred line (or an oversized one) becomes; either
// may be null. A side that waits for nothing ignores it.
Napi::Value ToolRelay::Answer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto bytes = [&](int i, std::string* out) {
    if (info.Length() <= static_cast<size_t>(i) || !info[i].IsBuffer()) return;
    auto b = info[i].As<Napi::Buffer<char>>();
    out->assign(b.Data(), b.Length());
  };
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "answer(side, toServer, toClient) takes a side (0 or 1) first")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int index = info[0].As<Napi::Number>().Int32Value();
  if (index != 0 && index != 1) return env.Undefined();
  Side& s = side_[index];
  pthread_mutex_lock(&mu_);
  if (s.waiting) {
    s.toServer.clear();
    s.toClient.clear();
    bytes(1, &s.toServer);
    bytes(2, &s.toClient);
    s.waiting = false;
    s.answered = true;
    pthread_cond_signal(&s.answer);
  }
  pthread_mutex_unlock(&mu_);
  return env.Undefined();
}

// drain(): delivers what the threads have queued, now (lib/mcp/filter.ts asks before it says
// which calls are in flight: a call is queued before its first byte reaches the server).
Napi::Value ToolRelay::Drain(const Napi::CallbackInfo& info) {
  deliver(info.Env());
  return info.Env().Undefined();
}

Napi::Value ToolRelay::Close(const Napi::CallbackInfo& info) {
  if (running_) {
    running_ = false;
    stopThreads();
    handles_->untrack(this);
    release();
    Unref();
  }
  return info.Env().Undefined();
}

void ToolRelay::releaseAtTeardown() {
  running_ = false;
  stopThreads();
  release();
}

void ToolRelay::stopThreads() {
  stop_ = true;
  pthread_mutex_lock(&mu_);
  for (Side& s : side_) pthread_cond_signal(&s.answer);
  pthread_cond_broadcast(&room_);
  pthread_mutex_unlock(&mu_);
  uint64_t one = 1;
  for (Side& s : side_)
    if (s.wake >= 0 && write(s.wake, &one, sizeof one) < 0) {
      // A full eventfd counter is still readable: the thread wakes either way.
    }
  for (Side& s : side_) {
    if (s.started) uv_thread_join(&s.thread);
    s.started = false;
  }
}

// After stopThreads(): nothing else touches the fds.
void ToolRelay::release() {
  if (clientIn_ >= 0 && clientInFlags_ >= 0) fcntl(clientIn_, F_SETFL, clientInFlags_);
  if (clientOut_ >= 0 && clientOutFlags_ >= 0) fcntl(clientOut_, F_SETFL, clientOutFlags_);
  closeFd(clientIn_);
  closeFd(clientOut_);
  closeFd(serverIn_);
  closeFd(serverOut_);
  for (Side& s : side_) closeFd(s.wake);
  batching_ = false;
  if (handles_ != nullptr) {
    handles_->close(async_);
    handles_->close(timer_);
  }
  pthread_mutex_lock(&mu_);
  events_.clear();
  queued_ = 0;
  pthread_mutex_unlock(&mu_);
}

void ToolRelay::OnAsync(uv_async_t* handle) {
  auto* self = static_cast<ToolRelay*>(handle->data);
  // JavaScript cannot run any more (canRunJs, loop_handles.h): the teardown that follows stops
  // the threads.
  if (!canRunJs(self->env_)) return;
  Napi::HandleScope scope(self->env_);
  self->deliver(self->env_);
}

// Copies of the lines passed on (kObserve) are only records: while this timer is armed they
// wait for it instead of waking the loop, so a run of calls costs the loop one wakeup per
// batchMs_, not two per call. Deferred lines and ends still wake it at once.
void ToolRelay::OnTimer(uv_timer_t* handle) {
  auto* self = static_cast<ToolRelay*>(handle->data);
  // Disarmed before the delivery: a copy queued after it wakes the loop itself.
  self->batching_ = false;
  if (!canRunJs(self->env_)) return;
  Napi::HandleScope scope(self->env_);
  self->deliver(self->env_);
}

void ToolRelay::deliver(Napi::Env env) {
  if (draining_) return;  // onEvent asked for a drain: the loop below goes on with it
  draining_ = true;
  bool any = false;
  for (;;) {
    pthread_mutex_lock(&mu_);
    if (events_.empty()) {
      pthread_mutex_unlock(&mu_);
      break;
    }
    any = true;
    Event e = std::move(events_.front());
    events_.pop_front();
    queued_ -= e.bytes.size() + kEventCost;
    pthread_cond_broadcast(&room_);
    pthread_mutex_unlock(&mu_);
    Napi::Value bytes = e.kind == kObserve || e.kind == kDefer
                            ? Napi::Buffer<char>::Copy(env, e.bytes.data(), e.bytes.size())
                            : env.Undefined();
    onEvent_.MakeCallback(Value(),
                          {Napi::Number::New(env, e.side), Napi::Number::New(env, e.kind), bytes,
                           Napi::Number::New(env, e.err), Napi::Number::New(env, e.at)});
    if (env.IsExceptionPending()) break;  // MakeCallback reported it; the rest waits for the next
  }
  draining_ = false;
  if (any && timer_ != nullptr && !batching_) {
    batching_ = true;
    uv_timer_start(timer_, &ToolRelay::OnTimer, batchMs_, 0);
  }
}

void ToolRelay::post(Event&& e) {
  e.at = monotonicMs();
  pthread_mutex_lock(&mu_);
  // Copies wait for room; deferred lines, ends and the rest are small or waited on anyway.
  while (e.kind == kObserve && queued_ > kQueueBound && !stop_) pthread_cond_wait(&room_, &mu_);
  queued_ += e.bytes.size() + kEventCost;
  bool later = e.kind == kObserve && batching_;
  events_.push_back(std::move(e));
  pthread_mutex_unlock(&mu_);
  // batching_ was read and the event pushed under mu_: if the timer was still armed then, its
  // delivery (which disarms first, then takes mu_ and the queue) finds this event.
  if (!later) uv_async_send(async_);  // thread-safe; coalesced sends deliver everything queued
}

void ToolRelay::ThreadMain(void* arg) {
  auto* s = static_cast<Side*>(arg);
  ToolRelay* self = s->relay;
  // Named for ps -L and /proc/PID/task/TID/comm (test/mcp-native-relay.test.ts looks for them);
  // prctl, as pthread_setname_np is another GLIBC_2.34 symbol.
  prctl(PR_SET_NAME, s->index == 0 ? "mcp-relay-up" : "mcp-relay-down");
  self->pump(*s);
  pthread_mutex_lock(&self->mu_);
  bool last = ++self->finished_ == 2;
  pthread_mutex_unlock(&self->mu_);
  if (last && !self->stop_) self->post({s->index, kDone, std::string(), 0});
}

// Whether the side must stop now; reads its eventfd so the next poll waits again.
bool ToolRelay::stopped(Side& s) {
  uint64_t n;
  if (read(s.wake, &n, sizeof n) < 0) {
    // EAGAIN: nothing was signalled.
  }
  return stop_ || (s.index == 0 && clientGone_);
}

void ToolRelay::pump(Side& s) {
  char buf[kReadSize];
  int err = 0;
  for (;;) {
    struct pollfd fds[2] = {{s.in, POLLIN, 0}, {s.wake, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if ((fds[1].revents & POLLIN) && stopped(s)) break;
    if (fds[0].revents == 0) continue;
    ssize_t n = read(s.in, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      err = errno;
      break;
    }
    if (n == 0) break;
    feed(s, buf, static_cast<size_t>(n));
    if (stop_ || (s.index == 0 && clientGone_)) break;
  }
  if (stop_) return;
  // A line still too long when its input ended is dropped and said, as at its '\n'.
  if (err == 0 && s.discarding && !(s.index == 0 && clientGone_) &&
      !defer(s, kOversize, nullptr, 0))
    return;
  if (s.index == 0) {
    if (!clientGone_) {
      if (err != 0) {
        clientGone(err);
      } else {
        // A last line without '\n' is read like any other, and goes on with one.
        if (!s.partial.empty() && !s.discarding) {
          std::string last = std::move(s.partial);
          last.push_back('\n');
          line(s, last.data(), last.size() - 1, last.data(), last.size());
        }
        post({0, kEnd, std::string(), 0});
      }
    }
    // EOF on the server's stdin is how an MCP client asks a stdio server to exit.
    closeFd(serverIn_);
    return;
  }
  // The server's side: a last line without '\n' goes out exactly as it came (filter.ts).
  if (err == 0 && !s.partial.empty() && !s.discarding)
    toClient(s, s.partial.data(), s.partial.size());
  post({1, kEnd, std::string(), err});
}

void ToolRelay::feed(Side& s, const char* data, size_t n) {
  size_t start = 0;
  while (start < n) {
    const char* nl = static_cast<const char*>(memchr(data + start, '\n', n - start));
    size_t end = nl == nullptr ? n : static_cast<size_t>(nl - data);
    size_t piece = end - start;
    if (s.discarding || s.partial.size() + piece > maxLineBytes_) {
      // Too long to read whole: dropped, never a byte of it passed on; said once, at its end.
      s.discarding = true;
      s.partial.clear();
      if (nl != nullptr) {
        s.discarding = false;
        if (!defer(s, kOversize, nullptr, 0)) return;
      }
    } else if (nl == nullptr) {
      s.partial.append(data + start, piece);
    } else if (s.partial.empty()) {
      // The common case, a whole line in one read, goes on without a copy.
      if (!line(s, data + start, piece, data + start, piece + 1)) return;
    } else {
      s.partial.append(data + start, piece + 1);
      std::string whole = std::move(s.partial);
      s.partial.clear();
      if (!line(s, whole.data(), whole.size() - 1, whole.data(), whole.size())) return;
    }
    if (nl == nullptr) return;
    start = end + 1;
  }
}

// One line: `text` without its '\n', `raw` with it. False when the side must stop.
bool ToolRelay::line(Side& s, const char* text, size_t len, const char* raw, size_t rawLen) {
  Verdict v =
      s.index == 0 ? checkClientLine(text, len, rules_) : checkServerLine(text, len, rules_);
  if (v == Verdict::kDefer) return defer(s, kDefer, raw, rawLen);
  // The copy is queued before the line goes on: a call is in lib/mcp/filter.ts's records (drain)
  // before the server can act on it.
  if (v == Verdict::kObserve) post({s.index, kObserve, std::string(raw, rawLen), 0});
  return s.index == 0 ? toServer(s, raw, rawLen) : toClient(s, raw, rawLen);
}

bool ToolRelay::defer(Side& s, int kind, const char* raw, size_t rawLen) {
  pthread_mutex_lock(&mu_);
  s.waiting = true;
  s.answered = false;
  queued_ += rawLen + kEventCost;
  events_.push_back(
      {s.index, kind, std::string(raw == nullptr ? "" : raw, rawLen), 0, monotonicMs()});
  pthread_mutex_unlock(&mu_);
  uv_async_send(async_);
  pthread_mutex_lock(&mu_);
  while (!s.answered && !stop_) pthread_cond_wait(&s.answer, &mu_);
  std::string server = std::move(s.toServer), client = std::move(s.toClient);
  s.toServer.clear();
  s.toClient.clear();
  s.waiting = false;
  pthread_mutex_unlock(&mu_);
  if (stop_) return false;
  if (!server.empty() && s.index == 0 && !toServer(s, server.data(), server.size())) return false;
  return client.empty() || toClient(s, client.data(), client.size());
}

// 0, ECANCELED when the side must stop, or the errno of write(2).
int ToolRelay::writeAll(int fd, const char* p, size_t n, Side& s) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w >= 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return errno;
    struct pollfd fds[2] = {{fd, POLLOUT, 0}, {s.wake, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return errno;
    if ((fds[1].revents & POLLIN) && stopped(s)) return ECANCELED;
  }
  return 0;
}

// Side 0 only. False when the side must stop.
bool ToolRelay::toServer(Side& s, const char* p, size_t n) {
  if (serverInBroken_ || serverIn_ < 0) return true;  // the server exited: its stdout says so
  int err = writeAll(serverIn_, p, n, s);
  if (err == ECANCELED) return false;
  if (err != 0) serverInBroken_ = true;
  return true;
}

// False when the side must stop. Once the client is gone, what goes to it is dropped (side 1
// reads on, so the server is never blocked on a full pipe).
bool ToolRelay::toClient(Side& s, const char* p, size_t n) {
  pthread_mutex_lock(&outMu_);
  int err = clientGone_ ? 0 : writeAll(clientOut_, p, n, s);
  pthread_mutex_unlock(&outMu_);
  if (err == ECANCELED) return false;
  if (err != 0) clientGone(err);
  return !(s.index == 0 && clientGone_);
}

// The client closed its end (EPIPE on its stdout) or reading it failed: side 0 stops reading it
// and ends the server's stdin, as a client shutting a stdio server down does.
void ToolRelay::clientGone(int err) {
  if (clientGone_.exchange(true)) return;
  post({0, kClientGone, std::string(), err});
  uint64_t one = 1;
  if (write(side_[0].wake, &one, sizeof one) < 0) {
    // Full counter: readable already.
  }
}

}  // namespace stockade
