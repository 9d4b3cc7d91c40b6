// udp.cc — serving a UDP socket that was bound inside a sandbox's network namespace.
// man 7 udp, man 2 recvmmsg.
//
// Node's dgram cannot adopt an existing fd, and the DNS responder's socket must be the one the
// child bound on 127.0.0.1:53 inside its own netns (the parent has no way into that netns). So
// the addon polls the fd from the libuv loop and hands each datagram to JavaScript with the
// peer's address; send() answers through the same socket. No policy here: lib/net decides.
#include <errno.h>
#include <fcntl.h>
#include <napi.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "udp.h"

namespace stockade {

Napi::Function UdpEndpoint::Init(Napi::Env env) {
  return DefineClass(
      env, "UdpEndpoint",
      {InstanceMethod("send", &UdpEndpoint::Send), InstanceMethod("close", &UdpEndpoint::Close)});
}

// new UdpEndpoint(fd, onMessage(data: Buffer, peer: Buffer)): takes ownership of fd.
UdpEndpoint::UdpEndpoint(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpEndpoint>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "new UdpEndpoint(fd, onMessage) takes an fd and a function")
        .ThrowAsJavaScriptException();
    return;
  }
  fd_ = info[0].As<Napi::Number>().Int32Value();
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  env_ = env;
  handles_ = loopHandlesOf(env);
  int err = 0;
  poll_ = handles_->openPoll(fd_, this, &err);
  if (poll_ == nullptr) {
    close(fd_);  // ours from the call on, as promised
    fd_ = -1;
    Napi::Error e = Napi::Error::New(env, std::string("uv_poll_init: ") + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
    return;
  }
  onMessage_ = Napi::Persistent(info[1].As<Napi::Function>());
  uv_poll_start(poll_, UV_READABLE, &UdpEndpoint::OnReadable);
  handles_->track(this);
  Ref();  // alive while it serves, until close()
}

UdpEndpoint::~UdpEndpoint() {
  Stop();
}

void UdpEndpoint::OnReadable(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<UdpEndpoint*>(handle->data);
  if (status < 0) return;
  // JavaScript cannot run any more (canRunJs, loop_handles.h): stop; teardown closes the socket.
  if (!canRunJs(self->env_)) return static_cast<void>(uv_poll_stop(handle));
  Napi::HandleScope scope(self->env_);
  // Bounded per wakeup so a flood cannot starve the loop; the poll fires again if more remain.
  for (int i = 0; i < 64 && self->fd_ >= 0; ++i) {
    char buf[4096];
    struct sockaddr_storage peer;
    socklen_t peerLen = sizeof peer;
    ssize_t n = recvfrom(self->fd_, buf, sizeof buf, MSG_TRUNC, reinterpret_cast<sockaddr*>(&peer),
                         &peerLen);
    if (n < 0) break;  // EAGAIN, or an error the next wakeup will see again
    if (static_cast<size_t>(n) > sizeof buf) continue;  // oversized datagram: dropped
    self->onMessage_.MakeCallback(
        self->Value(),
        {Napi::Buffer<char>::Copy(self->env_, buf, static_cast<size_t>(n)),
         Napi::Buffer<char>::Copy(self->env_, reinterpret_cast<char*>(&peer), peerLen)});
  }
}

// send(data: Buffer, peer: Buffer) -> 0 or an errno.
Napi::Value UdpEndpoint::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsBuffer()) {
    Napi::TypeError::New(env, "send(data, peer) takes two Buffers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (fd_ < 0) return Napi::Number::New(env, EBADF);
  auto data = info[0].As<Napi::Buffer<char>>();
  auto peer = info[1].As<Napi::Buffer<char>>();
  ssize_t n =
      sendto(fd_, data.Data(), data.Length(), MSG_DONTWAIT | MSG_NOSIGNAL,
             reinterpret_cast<const sockaddr*>(peer.Data()), static_cast<socklen_t>(peer.Length()));
  return Napi::Number::New(env, n < 0 ? errno : 0);
}

Napi::Value UdpEndpoint::Close(const Napi::CallbackInfo& info) {
  Stop();
  return info.Env().Undefined();
}

// Closes the watcher before the fd it polls (uv_poll requires that order).
void UdpEndpoint::Stop() {
  if (poll_ != nullptr) {
    handles_->untrack(this);
    handles_->close(poll_);
    Unref();
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

// The environment goes while the endpoint serves: the socket is closed with it (no JavaScript
// runs, so the self-reference is left to the finalizer that follows).
void UdpEndpoint::releaseAtTeardown() {
  handles_->close(poll_);
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

}  // namespace stockade
