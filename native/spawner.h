// spawner.h — one long-lived thread per Node environment that runs spawnSandbox() (spawn.cc)
// off the JavaScript thread, and hands each result back on the environment's event loop.
#pragma once

#include <pthread.h>
#include <uv.h>

#include <deque>
#include <memory>

#include "loop_handles.h"
#include "spawn.h"

namespace stockade {

// The addon derives its per-job data (the JS callbacks) from this; a job the environment never
// got back is destroyed with its sandbox killed and reaped.
struct SpawnJob {
  virtual ~SpawnJob() = default;
  Plan plan;
  SpawnResult result;
  // Descriptors the job owns (private duplicates of the payload's stdio, see addon.cc), closed
  // once the spawn is over.
  std::vector<int> ownedFds;
};

class Spawner {
 public:
  using Deliver = void (*)(std::unique_ptr<SpawnJob> job, void* data);

  // `deliver` runs on the loop's thread, once per submitted job, in submission order.
  Spawner(LoopHandles* handles, Deliver deliver, void* data);
  Spawner(const Spawner&) = delete;
  Spawner& operator=(const Spawner&) = delete;

  // Queues a job (called on the loop's thread). 0, or the errno of starting the thread.
  int submit(std::unique_ptr<SpawnJob> job);

  // Has the thread make a warm child for `key` while it has nothing else to do (called on the
  // loop's thread): for a spawn whose plan is still being resolved, which then takes it. A job
  // that comes first cancels it (takeWarm). 0, or the errno of starting the thread.
  int prewarm(const WarmKey& key);

  // Closes `fd` on the releaser thread, then calls done(data) on the loop's thread (called on
  // the loop's thread): for an fd whose close blocks, the last reference to a sandbox's mount
  // namespace (spawn.h, SpawnResult::mountNsFd). False, with nothing done, once the threads are
  // stopped; `done` is not called if the environment is torn down first.
  using Released = void (*)(void* data);
  bool closeLater(int fd, Released done, void* data);

  // Environment teardown: finishes the job at hand, joins the thread (whose exit sends
  // PR_SET_PDEATHSIG to every sandbox it spawned), kills, reaps and releases every sandbox that
  // was not delivered (its cgroups removed), and closes the async handle through the registry,
  // which tells the environment's cleanup hook when the close is done (loop_handles.h). The
  // Spawner may be deleted afterwards.
  void shutdown();
  ~Spawner() = default;

  // Kills, reaps and releases the sandbox of a job nobody will be told about (its fds closed, its
  // cgroups removed): what shutdown() does to every undelivered job, and what `deliver` does with
  // a job that arrives once its environment can no longer run JavaScript (addon.cc).
  static void discard(SpawnJob& job);

 private:
  int start();
  void stop();
  static void* threadMain(void* self);
  static void* releaserMain(void* self);
  void release();
  static void onAsync(uv_async_t* handle);
  void run();
  void drain();

  LoopHandles* handles_;
  Deliver deliver_;
  void* data_;
  uv_async_t* async_ = nullptr;
  pthread_t thread_{};
  pthread_t releaser_{};
  bool started_ = false;
  size_t inFlight_ = 0;  // loop thread only: jobs and releases not yet delivered

  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t wake_ = PTHREAD_COND_INITIALIZER;
  pthread_cond_t releaseWake_ = PTHREAD_COND_INITIALIZER;
  bool stopping_ = false;                       // under mu_
  std::deque<std::unique_ptr<SpawnJob>> todo_;  // under mu_
  std::deque<std::unique_ptr<SpawnJob>> done_;  // under mu_
  struct Release {
    int fd;
    Released done;
    void* data;
  };
  std::vector<Release> toClose_;  // under mu_: for the releaser thread
  std::vector<Release> closed_;   // under mu_: for the loop's thread

  // The warm pool (spawn.h): at most one warm child, made while no job waits, like the last
  // spawn that asked for it (or prewarm), and let go after kWarmIdle unused. warm_: spawner
  // thread only (and shutdown(), after the join); refill_ and refillKey_ under mu_.
  Warm warm_;
  bool refill_ = false;
  WarmKey refillKey_;
  struct timespec warmSince_ = {};
  void takeWarm(Plan& plan, Warm* taken);
};

}  // namespace stockade
