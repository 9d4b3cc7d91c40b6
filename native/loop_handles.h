// loop_handles.h — the libuv handles and kernel objects one Node environment (the main thread
// or one Worker) holds through the addon, and their release when that environment goes.
// libuv uv_close(3) ("the close callback runs on a later loop iteration"), Node's N-API
// napi_add_async_cleanup_hook.
#pragma once

#include <uv.h>

#include <stddef.h>
#include <sys/types.h>

#include <vector>

namespace stockade {

// Something the addon holds for JavaScript (a sandbox, a UDP endpoint, a relay, an OOM watch)
// that must let go of its handles, fds and processes when its environment is torn down, before
// the addon's code is unloaded. Tracked by the environment's LoopHandles while it holds any.
class EnvResource {
 public:
  // The environment is going: release everything at once and report nothing (no JavaScript can
  // run). Called once, on the loop's thread; the resource is untracked before the call.
  virtual void releaseAtTeardown() = 0;

 protected:
  ~EnvResource() = default;

 private:
  friend class LoopHandles;
  EnvResource* prev_ = nullptr;
  EnvResource* next_ = nullptr;
  bool tracked_ = false;
};

// Why one registry per environment. A handle's close callback runs on a later loop iteration,
// and it is the addon's code. When a Worker ends, Node runs its cleanup hooks, frees the
// environment, runs the loop once more to finish closes, and unloads the addon: a handle closed
// from a plain cleanup hook or an object's finalizer has its callback called into unmapped code
// (the segfault of `worker.terminate()` with a sandbox alive). So every handle is made and closed
// here, counted, and the environment's one async cleanup hook (addon.cc) does not finish until
// the last close callback has run: Node keeps turning the loop until then.
class LoopHandles {
 public:
  explicit LoopHandles(uv_loop_t* loop) : loop_(loop) {}
  LoopHandles(const LoopHandles&) = delete;
  LoopHandles& operator=(const LoopHandles&) = delete;

  uv_loop_t* loop() const { return loop_; }

  // New handles, `data` in handle->data; null once teardown has begun (or when libuv refuses:
  // *err then holds the errno, e.g. EPERM for a regular file's fd).
  uv_poll_t* openPoll(int fd, void* data, int* err = nullptr);
  uv_timer_t* openTimer(void* data);
  uv_async_t* openAsync(uv_async_cb cb, void* data);

  // Stops and closes the handle (its memory is freed by the close callback); null is fine. The
  // pointer is cleared: no callback of the owner's runs for this handle any more.
  template <typename T>
  void close(T*& handle) {
    if (handle != nullptr) closeHandle(reinterpret_cast<uv_handle_t*>(handle));
    handle = nullptr;
  }

  // O(1), no allocation (this is on the spawn path).
  void track(EnvResource* r);
  void untrack(EnvResource* r);

  // Environment teardown: every tracked resource releases what it holds, then `done(arg)` runs
  // once no handle made here is open (at once if none is). Nothing can be opened afterwards.
  void teardown(void (*done)(void*), void* arg);

  // For a releaseAtTeardown(): an fd that JavaScript may or may not have wrapped, identified by
  // its (st_dev, st_ino), closed at the end of teardown only if that number still names that
  // file (see closeIfSame). At the end because every other resource (a UdpEndpoint that took
  // the fd) has closed what it owns by then, and Node closed the handles it wrapped before the
  // cleanup hooks ran (canRunJs below): a wrapped fd is gone or its number reused, never closed
  // twice. Allocates; teardown only.
  void closeLast(int fd, dev_t dev, ino_t ino) { closeLast_.push_back({fd, dev, ino}); }

 private:
  struct Identified {
    int fd;
    dev_t dev;
    ino_t ino;
  };
  void closeHandle(uv_handle_t* handle);
  static void onClosed(uv_handle_t* handle);
  void finishIfIdle();

  uv_loop_t* loop_;
  size_t open_ = 0;  // handles made here whose close callback has not run
  EnvResource* first_ = nullptr;
  bool tearingDown_ = false;
  void (*done_)(void*) = nullptr;
  void* doneArg_ = nullptr;
  std::vector<Identified> closeLast_;
};

// The (device, inode) of an open fd, or false. statx rather than fstat: glibc 2.33 made fstat a
// symbol of its own (fstat@GLIBC_2.33), and the prebuilt addon loads on glibc 2.28
// (scripts/check-prebuilds.js); statx is 2.28's.
bool fdIdentity(int fd, dev_t* dev, ino_t* ino);

// Closes `fd` if it is still open on the file (st_dev, st_ino): a descriptor that may have been
// closed by its other possible owner since, and its number reused, is left alone. Returns
// whether it closed it.
bool closeIfSame(int fd, dev_t dev, ino_t ino);

// The registry of the environment `env` (a napi_env): the addon's instance data (addon.cc).
LoopHandles* loopHandlesOf(struct napi_env__* env);

// Whether the environment `env` can still run JavaScript (addon.cc). Every libuv callback of the
// addon that calls into JavaScript asks first. Why: when a Worker stops (terminate(),
// process.exit() inside it) Node marks its environment stopping and still turns its loop, and
// when it frees the environment, Node's Environment::CleanupHandles() runs the loop again
// (uv_run, with JavaScript disallowed) *before* the cleanup hooks, so before
// AddonData::OnEnvTeardown. A poll, timer or async callback that fires then and calls into
// JavaScript gets a failed N-API status, and node-addon-api turns that into a fatal error (e.g.
// the spawn completion's sandboxClass.New() came back empty, and unwrapping it aborted with
// "Error::New napi_get_last_error_info", env null). Such a callback instead stops its handle
// and returns: its resource is still tracked, and the teardown that follows releases it
// natively (kills and reaps, closes, removes cgroups), as for any resource alive at teardown.
bool canRunJs(struct napi_env__* env);

}  // namespace stockade
