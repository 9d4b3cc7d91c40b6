// relay.cc — moving an allowed tunnel's bytes in the kernel once nothing is left to inspect.
// man 2 splice, man 7 pipe (F_SETPIPE_SZ, pipe-max-size), man 2 shutdown, man 7 tcp.
//
// After lib/net has decided a tunnel and checked its first bytes (SNI / Host agreement), every
// further byte would only be copied kernel -> JavaScript -> kernel. Here each direction instead
// goes socket -> pipe -> socket with splice(2), so the payload never leaves the kernel. One
// uv_poll per socket drives both directions from the libuv loop (no threads); a uv_timer
// enforces the idle timeout. The Relay owns duplicates of the two sockets (F_DUPFD_CLOEXEC) and
// one non-blocking pipe per direction, and reports exactly once: onDone(bytesUp, bytesDown,
// errno, timedOut). No policy and no logging here.
//
// Backpressure: a direction reads from its source only while its pipe is empty; while the pipe
// holds bytes it waits for its destination to become writable instead. So a slow reader stops
// its peer's reads, and the socket buffers plus one pipe are all that is ever queued.
// Half-close: a FIN read from one side is passed on with shutdown(SHUT_WR) once that direction's
// pipe is drained; the relay finishes when both directions have done so. Any error closes both.
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace stockade {
namespace {

// Pipe capacity a direction grows to once it fills its default 64 KiB pipe in one splice (bulk
// transfer): a sixteenth of the splice calls per byte, about 2x less proxy CPU per GiB on
// loopback. Only then, because pipe buffers count against the user's
// /proc/sys/fs/pipe-user-pages-soft (64 MiB by default) whether used or not: growing every pipe
// would exhaust it after 32 tunnels, and the kernel then gives new pipes 2 pages. An
// unprivileged user over that limit gets EPERM here; the pipe keeps its size.
//
// The soft limit counts every pipe of the uid, in every process: once a uid is over it, each
// new pipe of an unprivileged process of that uid gets 2 pages instead of 16 (fs/pipe.c,
// alloc_pipe_info), so a launcher whose relays filled it would starve the caller's other
// programs. The kernel says nothing about the total, but F_SETPIPE_SZ growing a pipe fails
// with EPERM exactly when the uid would then be over the soft (or hard) limit, and a new pipe
// comes out smaller than 64 KiB when it is over already; HasPipeRoom() asks with a scratch pipe.
// (A process with CAP_SYS_RESOURCE or CAP_SYS_ADMIN is exempt, so root always has room.)
constexpr int kPipeSize = 1 << 20;
constexpr size_t kDefaultPipeSize = 64 * 1024;  // 16 pages, man 7 pipe
// Rounds of read-then-write per wakeup, so one busy tunnel cannot starve the loop; the poll is
// level-triggered and fires again at once if more is waiting.
constexpr int kRoundsPerWakeup = 16;

void closeFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Whether the uid may still add `bytes` of pipe buffers (one scratch pipe grown to that size,
// then closed) without going over pipe-user-pages-soft: 0, ENOBUFS when it may not, or the errno
// of pipe2 (EMFILE...). `bytes` must not exceed /proc/sys/fs/pipe-max-size (EPERM there too).
int HasPipeRoom(int bytes) {
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return errno;
  int err = 0;
  int size = fcntl(p[1], F_GETPIPE_SZ);
  if (size < 0)
    err = errno;
  else if (static_cast<size_t>(size) < kDefaultPipeSize)
    err = ENOBUFS;  // already over the soft limit: the kernel gave this pipe 2 pages
  else if (bytes > size && fcntl(p[1], F_SETPIPE_SZ, bytes) < 0)
    err = errno == EPERM ? ENOBUFS : errno;
  close(p[0]);
  close(p[1]);
  return err;
}

}  // namespace

Napi::Function Relay::Init(Napi::Env env) {
  return DefineClass(
      env, "Relay",
      {InstanceMethod("start", &Relay::Start), InstanceMethod("close", &Relay::Close)});
}

// new Relay(upHead: Buffer, downHead: Buffer, idleMs: number, onDone[, growPipes: boolean[,
// pipeRoom: number]]): nothing is opened yet. growPipes false keeps both pipes at the default
// 64 KiB (the caller's pipe budget has no room for 1 MiB ones, see lib/net/budget.ts).
// pipeRoom > 0: bytes of pipe buffers the uid must still be able to add under
// pipe-user-pages-soft once this relay's pipes exist (and again after a pipe grows), for the
// uid's other processes; start() returns ENOBUFS when it cannot, and a pipe that would eat into
// it does not grow. 0: no check.
Relay::Relay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Relay>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsBuffer() || !info[1].IsBuffer() || !info[2].IsNumber() ||
      !info[3].IsFunction()) {
    Napi::TypeError::New(env,
                         "new Relay(upHead, downHead, idleMs, onDone) takes two Buffers, a number "
                         "and a function")
        .ThrowAsJavaScriptException();
    return;
  }
  int64_t idle = info[2].As<Napi::Number>().Int64Value();
  if (idle <= 0) {
    Napi::TypeError::New(env, "new Relay(): idleMs must be positive").ThrowAsJavaScriptException();
    return;
  }
  for (int i = 0; i < 2; ++i) {
    auto b = info[i].As<Napi::Buffer<char>>();
    dir_[i].head.assign(b.Data(), b.Length());
  }
  idleMs_ = static_cast<uint64_t>(idle);
  if (info.Length() > 4 && info[4].IsBoolean() && !info[4].As<Napi::Boolean>().Value()) {
    for (auto& d : dir_) d.grown = true;  // "already tried": never grows
  }
  if (info.Length() > 5 && info[5].IsNumber()) {
    int64_t room = info[5].As<Napi::Number>().Int64Value();
    pipeRoom_ = room > 0 && room <= kPipeSize ? static_cast<int>(room) : 0;
  }
  onDone_ = Napi::Persistent(info[3].As<Napi::Function>());
  env_ = env;
  handles_ = loopHandlesOf(env);
}

Relay::~Relay() {
  if (handles_ != nullptr) handles_->untrack(this);
  Release();
}

// start(clientFd, upstreamFd) -> 0 or an errno. Duplicates both fds (the caller then closes its
// own, which neither sends a FIN nor stops the duplicates) and starts relaying. On failure
// nothing stays open and the caller's sockets are untouched, so it can relay them itself.
Napi::Value Relay::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "start(clientFd, upstreamFd) takes two fds")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (running_ || fd_[0] >= 0 || onDone_.IsEmpty()) return Napi::Number::New(env, EALREADY);
  int err = 0;
  for (int i = 0; i < 2 && err == 0; ++i) {
    fd_[i] = fcntl(info[i].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
    if (fd_[i] < 0) {
      err = errno;
      break;
    }
    // O_NONBLOCK lives on the open file description, shared with the original; libuv set it
    // already, this only makes the relay independent of that.
    int fl = fcntl(fd_[i], F_GETFL);
    if (fl < 0 || fcntl(fd_[i], F_SETFL, fl | O_NONBLOCK) < 0) err = errno;
  }
  for (int i = 0; i < 2 && err == 0; ++i) {
    if (pipe2(dir_[i].pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
      err = errno;
      break;
    }
  }
  // With our two pipes counted, the uid must still have room for pipeRoom_ more (see kPipeSize).
  if (err == 0 && pipeRoom_ > 0) err = HasPipeRoom(pipeRoom_);
  if (err != 0) {
    Release();
    return Napi::Number::New(env, err);
  }
  loop_ = handles_->loop();
  for (int i = 0; i < 2 && err == 0; ++i) poll_[i] = handles_->openPoll(fd_[i], this, &err);
  if (err != 0) {  // e.g. EPERM: not a socket epoll can watch
    Release();
    return Napi::Number::New(env, err);
  }
  timer_ = handles_->openTimer(this);
  lastActivity_ = uv_now(loop_);
  uv_timer_start(timer_, &Relay::OnTimer, idleMs_, 0);
  running_ = true;
  Ref();  // alive while relaying, even with no JavaScript reference
  handles_->track(this);
  Rearm();
  return Napi::Number::New(env, 0);
}

// close(): stops at once, closes both sockets, and reports (errno 0) if it was still running.
Napi::Value Relay::Close(const Napi::CallbackInfo& info) {
  Finish(0, false);
  return info.Env().Undefined();
}

// Moves what it can in direction `index` without blocking; 0 or an errno.
int Relay::Pump(int index) {
  Direction& d = dir_[index];
  int src = fd_[index], dst = fd_[1 - index];
  for (int round = 0; round < kRoundsPerWakeup; ++round) {
    while (d.headSent < d.head.size()) {
      ssize_t n = send(dst, d.head.data() + d.headSent, d.head.size() - d.headSent,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN ? 0 : errno;
      }
      d.headSent += static_cast<size_t>(n);
      lastActivity_ = uv_now(loop_);
    }
    while (d.inPipe > 0) {
      ssize_t n =
          splice(d.pipe[0], nullptr, dst, nullptr, d.inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN ? 0 : errno;  // EAGAIN: Rearm() polls dst for writable
      }
      d.inPipe -= static_cast<size_t>(n);
      lastActivity_ = uv_now(loop_);
    }
    if (d.eof) {
      // Everything src sent before its FIN has been written: pass the FIN on.
      if (!d.shut && shutdown(dst, SHUT_WR) != 0 && errno != ENOTCONN) return errno;
      d.shut = true;
      return 0;
    }
    ssize_t n = splice(src, nullptr, d.pipe[1], nullptr, static_cast<size_t>(kPipeSize),
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) {
      d.eof = true;
      continue;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      // The pipe is empty here, so EAGAIN means src has nothing: Rearm() polls it for readable.
      return errno == EAGAIN ? 0 : errno;
    }
    d.inPipe += static_cast<size_t>(n);
    d.bytes += static_cast<uint64_t>(n);
    lastActivity_ = uv_now(loop_);
    if (!d.grown && d.inPipe >= kDefaultPipeSize) {
      d.grown = true;
      // Best effort, see kPipeSize; undone when the uid has no room left beyond it. Shrinking
      // back cannot fail: the pipe holds at most the 16 pages it had.
      if (fcntl(d.pipe[1], F_SETPIPE_SZ, kPipeSize) >= 0 && pipeRoom_ > 0 &&
          HasPipeRoom(pipeRoom_) != 0)
        fcntl(d.pipe[1], F_SETPIPE_SZ, static_cast<int>(kDefaultPipeSize));
    }
  }
  return 0;
}

// Polls each socket for what its two directions wait for: readable while the direction it
// feeds has an empty pipe, writable while the direction into it has bytes queued.
void Relay::Rearm() {
  for (int i = 0; i < 2; ++i) {
    int events = 0;
    if (!dir_[i].eof && !dir_[i].pending()) events |= UV_READABLE;
    if (dir_[1 - i].pending() || (dir_[1 - i].eof && !dir_[1 - i].shut)) events |= UV_WRITABLE;
    if (events == events_[i]) continue;
    events_[i] = events;
    if (events == 0) {
      uv_poll_stop(poll_[i]);
    } else {
      uv_poll_start(poll_[i], events, &Relay::OnPoll);
    }
  }
}

void Relay::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Relay*>(handle->data);
  int i = handle == self->poll_[0] ? 0 : 1;
  if (status < 0) {
    // libuv reports EPOLLERR as UV_EBADF and stops the handle; the socket knows the real cause.
    int soError = 0;
    socklen_t len = sizeof soError;
    if (getsockopt(self->fd_[i], SOL_SOCKET, SO_ERROR, &soError, &len) != 0 || soError == 0) {
      soError = -status;
    }
    self->Finish(soError, false);
    return;
  }
  int err = 0;
  // Readable: this socket is a source. Writable: it is the destination of the other direction.
  if (events & UV_READABLE) err = self->Pump(i);
  if (err == 0 && (events & UV_WRITABLE)) err = self->Pump(1 - i);
  if (err != 0) {
    self->Finish(err, false);
  } else if (self->dir_[0].shut && self->dir_[1].shut) {
    self->Finish(0, false);
  } else {
    self->Rearm();
  }
}

void Relay::OnTimer(uv_timer_t* handle) {
  auto* self = static_cast<Relay*>(handle->data);
  uint64_t idle = uv_now(self->loop_) - self->lastActivity_;
  if (idle >= self->idleMs_) {
    self->Finish(ETIMEDOUT, true);
  } else {
    uv_timer_start(handle, &Relay::OnTimer, self->idleMs_ - idle, 0);
  }
}

// The environment goes while relaying (a Worker terminated, Node exiting): both sockets and the
// pipes are closed, nothing is reported (no JavaScript can run).
void Relay::releaseAtTeardown() {
  running_ = false;
  Release();
}

void Relay::Finish(int err, bool timedOut) {
  if (!running_) return;
  // onDone cannot be told (canRunJs, loop_handles.h): stop everything and stay tracked, so the
  // environment's teardown, which follows, closes the sockets and pipes.
  if (!canRunJs(env_)) {
    for (uv_poll_t* poll : poll_)
      if (poll != nullptr) uv_poll_stop(poll);
    if (timer_ != nullptr) uv_timer_stop(timer_);
    return;
  }
  running_ = false;
  handles_->untrack(this);
  Release();
  Napi::Env env = env_;
  Napi::HandleScope scope(env);
  Napi::FunctionReference onDone = std::move(onDone_);
  onDone.MakeCallback(Value(), {Napi::Number::New(env, static_cast<double>(dir_[0].bytes)),
                                Napi::Number::New(env, static_cast<double>(dir_[1].bytes)),
                                Napi::Number::New(env, err), Napi::Boolean::New(env, timedOut)});
  Unref();
}

// Stops the handles before closing the fds they poll (uv_poll requires that order).
void Relay::Release() {
  if (handles_ != nullptr) {
    handles_->close(poll_[0]);
    handles_->close(poll_[1]);
    handles_->close(timer_);
  }
  for (int i = 0; i < 2; ++i) {
    closeFd(fd_[i]);
    closeFd(dir_[i].pipe[0]);
    closeFd(dir_[i].pipe[1]);
  }
}

}  // namespace stockade
