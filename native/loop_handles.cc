// loop_handles.cc — the environment's registry of libuv handles and resources (loop_handles.h).
// libuv uv_poll_init(3), uv_timer_init(3), uv_async_init(3), uv_close(3).
#include "loop_handles.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace stockade {

uv_poll_t* LoopHandles::openPoll(int fd, void* data, int* err) {
  if (tearingDown_) {
    if (err != nullptr) *err = ECANCELED;
    return nullptr;
  }
  auto* h = new uv_poll_t;
  int rc = uv_poll_init(loop_, h, fd);
  if (rc != 0) {
    // Nothing was registered with the loop: the handle may be freed at once.
    delete h;
    if (err != nullptr) *err = -rc;
    return nullptr;
  }
  h->data = data;
  ++open_;
  return h;
}

uv_timer_t* LoopHandles::openTimer(void* data) {
  if (tearingDown_) return nullptr;
  auto* h = new uv_timer_t;
  uv_timer_init(loop_, h);  // cannot fail
  h->data = data;
  ++open_;
  return h;
}

uv_async_t* LoopHandles::openAsync(uv_async_cb cb, void* data) {
  if (tearingDown_) return nullptr;
  auto* h = new uv_async_t;
  uv_async_init(loop_, h, cb);  // cannot fail on Linux (the loop's eventfd is shared)
  h->data = data;
  ++open_;
  return h;
}

void LoopHandles::closeHandle(uv_handle_t* handle) {
  // From here on the handle belongs to the registry: no owner callback can run for it any more
  // (uv_close stops it), and the close callback finds the registry through data.
  handle->data = this;
  uv_close(handle, &LoopHandles::onClosed);
}

void LoopHandles::onClosed(uv_handle_t* handle) {
  auto* self = static_cast<LoopHandles*>(handle->data);
  switch (handle->type) {
    case UV_POLL:
      delete reinterpret_cast<uv_poll_t*>(handle);
      break;
    case UV_TIMER:
      delete reinterpret_cast<uv_timer_t*>(handle);
      break;
    case UV_ASYNC:
      delete reinterpret_cast<uv_async_t*>(handle);
      break;
    default:
      break;  // only the three kinds above are ever made here
  }
  --self->open_;
  self->finishIfIdle();
}

void LoopHandles::track(EnvResource* r) {
  if (r->tracked_) return;
  r->tracked_ = true;
  r->prev_ = nullptr;
  r->next_ = first_;
  if (first_ != nullptr) first_->prev_ = r;
  first_ = r;
}

void LoopHandles::untrack(EnvResource* r) {
  if (!r->tracked_) return;
  if (r->prev_ != nullptr) r->prev_->next_ = r->next_;
  if (r->next_ != nullptr) r->next_->prev_ = r->prev_;
  if (first_ == r) first_ = r->next_;
  r->prev_ = r->next_ = nullptr;
  r->tracked_ = false;
}

void LoopHandles::teardown(void (*done)(void*), void* arg) {
  tearingDown_ = true;
  done_ = done;
  doneArg_ = arg;
  // Each release untracks its resource first and may close handles, but never tracks another.
  while (first_ != nullptr) {
    EnvResource* r = first_;
    untrack(r);
    r->releaseAtTeardown();
  }
  for (const Identified& f : closeLast_) closeIfSame(f.fd, f.dev, f.ino);
  closeLast_.clear();
  finishIfIdle();
}

void LoopHandles::finishIfIdle() {
  if (!tearingDown_ || open_ != 0 || done_ == nullptr) return;
  void (*done)(void*) = done_;
  done_ = nullptr;
  done(doneArg_);
}

bool fdIdentity(int fd, dev_t* dev, ino_t* ino) {
  struct statx stx;
  if (fd < 0 || statx(fd, "", AT_EMPTY_PATH, STATX_INO, &stx) != 0) return false;
  *dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  *ino = stx.stx_ino;
  return true;
}

bool closeIfSame(int fd, dev_t dev, ino_t ino) {
  dev_t now_dev;
  ino_t now_ino;
  if (!fdIdentity(fd, &now_dev, &now_ino) || now_dev != dev || now_ino != ino) return false;
  close(fd);
  return true;
}

}  // namespace stockade
