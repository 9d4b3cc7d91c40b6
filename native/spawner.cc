// spawner.cc — the thread that spawns sandboxes, so that the JavaScript thread does not wait.
// man 2 prctl (PR_SET_PDEATHSIG), man 3 pthread_sigmask, libuv uv_async_t.
//
// A spawn is clone() with seven namespaces, then a wait while the child builds its root, binds
// listeners, drops privileges and execs: 1.5 to 3 ms on a 2-core VM, almost all of it waiting.
// On the JS thread that is time the event loop stands still, per sandbox. So every spawn of an
// environment (the main thread, or one Worker) runs on one thread of its own, and the loop
// learns the outcome through a uv_async_t. Why this shape:
// - One long-lived thread, not the libuv pool. PR_SET_PDEATHSIG is tied to the *thread* that
//   called clone(): a sandbox dies when that thread exits. A pool thread lives as long as the
//   process, and a spawn parked on it (up to the child's exec) would hold up the fs and DNS work
//   queued behind it. This thread lives exactly as long as its environment: its exit at
//   environment teardown kills the sandboxes of that environment, which is what "the sandbox dies
//   with its parent" meant when the JS thread spawned them.
// - The CLONE_VM child runs with the TLS of the thread that cloned it (spawn.cc). Here that is
//   this thread, which does nothing but wait for the child's exec or death before it takes the
//   next job, so nothing else runs on that thread pointer while the child uses it.
// - Every signal is blocked on this thread from its first instruction (it is created with a full
//   mask): none of Node's handlers runs here, and the child starts with signals blocked, as
//   spawn.cc requires; the child clears its mask right before execve.
// - The thread runs SCHED_BATCH (where the process runs SCHED_OTHER, the default): a batch task
//   gets the same CPU share as a normal one, but its wakeups do not preempt the task running
//   on the CPU. Without it, on a 2-core host, the JS thread's own submit() (and the child's exec,
//   waking this thread) preempted the JS thread in about half the spawns, for as long as this
//   thread then ran (clone(), the id maps): 0.3 ms median, p90 4.5 ms of event loop stalled in
//   a call that only queues a job. The child starts SCHED_BATCH too (so its setup does not
//   preempt the JS thread either) and switches back to SCHED_OTHER before its execve (child.cc),
//   so the payload runs as child_process.spawn would run it.
// - Jobs run one at a time in submission order, as spawns did on the JS thread; the JS side
//   sees 'spawn' (or 'error') per sandbox in that order.
// - A second thread, the releaser, closes what must not be closed on the JS thread nor hold up
//   the next spawn: the parent's reference to an exited sandbox's mount namespace, whose release
//   waits for an RCU grace period and tears its mounts down (spawn.h, SpawnResult::mountNsFd).
//   It is started and joined with the spawner thread, and clones nothing.
// - While no job waits, the spawner thread makes the warm child of the next spawn (spawn.cc,
//   "The warm pool"): it must be this thread, since the warm child's death signal and TLS are
//   this thread's, and it costs a job that arrives meanwhile at most the rest of one clone().
#include "spawner.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace stockade {

Spawner::Spawner(LoopHandles* handles, Deliver deliver, void* data)
    : handles_(handles), deliver_(deliver), data_(data) {
  // Made before the environment's teardown can begin (on the JS thread, in spawn()): not null.
  async_ = handles_->openAsync(&Spawner::onAsync, this);
  uv_unref(reinterpret_cast<uv_handle_t*>(async_));  // keeps the loop alive only while in flight
}

void Spawner::shutdown() {
  stop();
  for (auto* q : {&done_, &todo_}) {
    for (auto& job : *q) discard(*job);
    q->clear();
  }
  pthread_cond_destroy(&wake_);
  pthread_cond_destroy(&releaseWake_);
  pthread_mutex_destroy(&mu_);
  handles_->close(async_);
}

void Spawner::discard(SpawnJob& job) {
  SpawnResult& r = job.result;
  if (r.pidfd >= 0) {
    killAndReap(r.pid, r.pidfd);
    close(r.pidfd);
  }
  if (r.statusFd >= 0) close(r.statusFd);
  if (r.mountNsFd >= 0) close(r.mountNsFd);
  if (r.oomEventFd >= 0) close(r.oomEventFd);
  for (int fd : r.listenerFds) close(fd);
  for (int fd : job.ownedFds) close(fd);
  r.pidfd = r.statusFd = r.mountNsFd = r.oomEventFd = -1;
  r.listenerFds.clear();
  job.ownedFds.clear();
  // Spawned or not, its cgroups were made by lib/limits for it, and nobody else will remove
  // them now. After the reap they are empty (killAndReap, spawn.h).
  removeCgroupDirs(job.plan.cgroupDirs);
  job.plan.cgroupDirs.clear();
}

int Spawner::start() {
  if (!started_) {
    sigset_t all, old;
    sigfillset(&all);
    // libuv's thread calls and sigprocmask rather than pthread_create and pthread_sigmask: in
    // glibc >= 2.34 those are GLIBC_2.34/2.32 symbols, and the prebuilt addon must load on glibc
    // 2.28 (scripts/check-prebuilds.js); Node exports libuv, and sigprocmask sets this thread's
    // mask exactly as pthread_sigmask does in glibc.
    sigprocmask(SIG_SETMASK, &all, &old);  // inherited by the new thread
    int err = -uv_thread_create(&thread_, [](void* self) { Spawner::threadMain(self); }, this);
    if (err == 0) {
      err = -uv_thread_create(&releaser_, [](void* self) { Spawner::releaserMain(self); }, this);
      if (err != 0) {
        pthread_mutex_lock(&mu_);
        stopping_ = true;
        pthread_cond_signal(&wake_);
        pthread_mutex_unlock(&mu_);
        uv_thread_join(&thread_);
        stopping_ = false;
      }
    }
    sigprocmask(SIG_SETMASK, &old, nullptr);
    if (err != 0) return err;
    started_ = true;
  }
  return 0;
}

int Spawner::prewarm(const WarmKey& key) {
  if (int err = start()) return err;
  pthread_mutex_lock(&mu_);
  refill_ = true;
  refillKey_ = key;
  pthread_cond_signal(&wake_);
  pthread_mutex_unlock(&mu_);
  return 0;
}

int Spawner::submit(std::unique_ptr<SpawnJob> job) {
  if (int err = start()) return err;
  pthread_mutex_lock(&mu_);
  todo_.push_back(std::move(job));
  pthread_cond_signal(&wake_);
  pthread_mutex_unlock(&mu_);
  if (inFlight_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
  return 0;
}

void* Spawner::threadMain(void* self) {
  static_cast<Spawner*>(self)->run();
  return nullptr;
}

// A warm child unused this long is let go (killed, reaped, its cgroup removed): a burst of
// spawns keeps one ready, and a process that stopped spawning keeps nothing for long.
constexpr time_t kWarmIdleSeconds = 2;

// The warm child, if it fits this plan: taken, with its v2 cgroup made the plan's own (the
// directory lib/limits named is then never made; the addon reports the one used). One that
// does not fit is let go. The next spawn like this one finds a new one.
void Spawner::takeWarm(Plan& plan, Warm* taken) {
  if (!plan.warm) return;
  WarmKey key = warmKeyOf(plan);
  pthread_mutex_lock(&mu_);
  refill_ = plan.warmRefill;
  refillKey_ = key;
  pthread_mutex_unlock(&mu_);
  if (!warm_) return;
  if (!warmMatches(*warm_, key)) {
    warm_.reset();
    return;
  }
  std::string dir = adoptWarmCgroup(*warm_);
  for (CgroupSpec& cg : plan.cgroups) {
    if (cg.version != 2 || dir.empty()) continue;
    for (std::string& d : plan.cgroupDirs)
      if (d == cg.dir) d = dir;
    cg.dir = dir;
    cg.premade = true;
    break;
  }
  *taken = std::move(warm_);
}

void Spawner::run() {
  struct sched_param none = {};
  bool batch =
      sched_getscheduler(0) == SCHED_OTHER && sched_setscheduler(0, SCHED_BATCH, &none) == 0;
  pthread_mutex_lock(&mu_);
  for (;;) {
    while (todo_.empty() && !stopping_) {
      // Idle: make the warm child the last spawn asked for, or let an unused one go in time.
      if (refill_ && !warm_) {
        refill_ = false;
        pthread_mutex_unlock(&mu_);
        warm_ = makeWarm(refillKey_);
        clock_gettime(CLOCK_REALTIME, &warmSince_);
        pthread_mutex_lock(&mu_);
        continue;
      }
      if (!warm_) {
        pthread_cond_wait(&wake_, &mu_);
        continue;
      }
      struct timespec until = warmSince_;
      until.tv_sec += kWarmIdleSeconds;
      if (pthread_cond_timedwait(&wake_, &mu_, &until) == ETIMEDOUT && todo_.empty()) {
        pthread_mutex_unlock(&mu_);
        warm_.reset();
        pthread_mutex_lock(&mu_);
      }
    }
    if (stopping_) break;
    std::unique_ptr<SpawnJob> job = std::move(todo_.front());
    todo_.pop_front();
    pthread_mutex_unlock(&mu_);
    job->plan.resetScheduler = batch;
    Warm warm;
    takeWarm(job->plan, &warm);
    SpawnResult made;
    if (int err = makeCgroupsFromParent(job->plan, made)) {
      made.failed = true;
      made.error = {static_cast<int32_t>(Step::kCgroup), err, -1};
      job->result = std::move(made);
      // The warm child first: its cgroup can only be removed once it is gone.
      warm.reset();
      removeCgroupsFromParent(job->plan);
    } else {
      job->result = spawnSandbox(job->plan, std::move(warm));
      job->result.oomEventFd = made.oomEventFd;
      closeCgroupFds(job->plan);  // the child holds its own copies, or is gone
      if (job->result.failed) {
        removeCgroupsFromParent(job->plan);
        if (job->result.oomEventFd >= 0) close(job->result.oomEventFd);
        job->result.oomEventFd = -1;
      }
    }
    // The child got its own copy of the fd table at clone(): the duplicates are done with.
    for (int fd : job->ownedFds) close(fd);
    job->ownedFds.clear();
    pthread_mutex_lock(&mu_);
    done_.push_back(std::move(job));
    uv_async_send(async_);  // async-signal- and thread-safe; coalesced sends drain all
  }
  pthread_mutex_unlock(&mu_);
}

void Spawner::onAsync(uv_async_t* handle) {
  static_cast<Spawner*>(handle->data)->drain();
}

void Spawner::drain() {
  std::deque<std::unique_ptr<SpawnJob>> ready;
  std::vector<Release> closed;
  pthread_mutex_lock(&mu_);
  ready.swap(done_);
  closed.swap(closed_);
  pthread_mutex_unlock(&mu_);
  for (auto& job : ready) {
    if (--inFlight_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    deliver_(std::move(job), data_);
  }
  for (const Release& r : closed) {
    if (--inFlight_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    r.done(r.data);
  }
}

bool Spawner::closeLater(int fd, Released done, void* data) {
  if (!started_) return false;
  pthread_mutex_lock(&mu_);
  toClose_.push_back({fd, done, data});
  pthread_cond_signal(&releaseWake_);
  pthread_mutex_unlock(&mu_);
  if (inFlight_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
  return true;
}

void* Spawner::releaserMain(void* self) {
  static_cast<Spawner*>(self)->release();
  return nullptr;
}

// The releaser thread: closes what closeLater() queued, in any order, until stop().
void Spawner::release() {
  pthread_mutex_lock(&mu_);
  while (!stopping_) {
    if (toClose_.empty()) {
      pthread_cond_wait(&releaseWake_, &mu_);
      continue;
    }
    Release r = toClose_.back();
    toClose_.pop_back();
    pthread_mutex_unlock(&mu_);
    close(r.fd);
    pthread_mutex_lock(&mu_);
    closed_.push_back(r);
    uv_async_send(async_);
  }
  pthread_mutex_unlock(&mu_);
}

void Spawner::stop() {
  if (!started_) return;
  pthread_mutex_lock(&mu_);
  stopping_ = true;
  pthread_cond_signal(&wake_);
  pthread_cond_signal(&releaseWake_);
  pthread_mutex_unlock(&mu_);
  uv_thread_join(&thread_);
  uv_thread_join(&releaser_);
  started_ = false;
  warm_.reset();
  for (const Release& r : toClose_) close(r.fd);
  toClose_.clear();
  closed_.clear();  // nobody is told at teardown
}

}  // namespace stockade
