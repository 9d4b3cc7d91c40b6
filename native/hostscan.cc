// hostscan.cc — the check that a host directory about to be granted holds no unix socket or
// FIFO (lib/hostpath.ts findSocketOrFifo). A read-only bind stops neither connect() to a socket
// nor a write to a FIFO (the kernel applies MNT_READONLY to regular files, directories and
// symlinks only), so a grant holding one (docker.sock, $XDG_RUNTIME_DIR) reaches a host
// service. man 3 readdir, man 2 openat, man 7 unix, man 7 fifo.
//
// Why native: a granted node_modules is some 15,000 entries in 1,500 directories, and reading
// them with fs.readdirSync (a Dirent and a joined path string per entry) took ~45 ms of every
// `stockade run` that granted it; this walk makes one openat and a few getdents64 per
// directory and builds a path only for the directories it enters.
//
// The walk runs on threads of its own (startSpecialFileScan: one, and more while directories
// wait in the queue with no worker free, up to workersBeside()), while the JS thread goes on
// resolving the rest of the plan; lib/plan.ts waits for it before anything is spawned, and
// while it waits it walks too (finishSpecialFileScan, up to workersWaited()). A granted
// node_modules takes ~15 ms on one thread here, nearly all of it ext4's readdir (hashing and
// sorting each directory's names), which scales with threads. Each worker walks depth first, except
// that a directory it is about to enter goes to a short shared queue while that has room (first in,
// first out: the queue mostly holds shallow directories, the large subtrees), for whichever worker
// is free first. The walk is with the host's view, as the launcher's user: each directory opened
// relative to its parent's fd with O_NOFOLLOW | O_DIRECTORY, so a symlink planted anywhere below
// the root (by a payload that had it read-write) is not followed: inside the sandbox it points into
// the sandbox's own view, not the host's. It descends into submounts, as the bind takes them along
// (AT_RECURSIVE). Entry types come from d_type; a file system that leaves it DT_UNKNOWN gets a
// statx (AT_SYMLINK_NOFOLLOW) per entry.
//
// A clean walk leaves a witness (scanwitness.cc: each directory's identity and ctime, taken
// before it was read), and the next scan of the same tree checks it first (begin()): one statx
// per directory instead of reading it; any directory changed since, or a mount added or gone
// below the root, and the walk runs as without one. The mounts below the root are looked at
// either way: a socket mounted over a plain file is invisible to getdents.
//
// What cannot be looked at is handled as fs.readdirSync was: a directory the launcher may
// neither read nor search (EACCES, EPERM) is skipped, since the sandbox, with no more privilege,
// cannot enter it either; one it may search but not read (0711) ends the scan, since the sandbox
// can reach what is in it by name (searchable()); one that vanished or became something else since
// it was listed (ENOENT, ENOTDIR, ELOOP) is looked at again as an entry. Anything else (EMFILE,
// EIO, ENOMEM...) ends the scan with that errno, and the caller refuses the grant: what was not
// looked at may hold one.
#include "hostscan.h"

#include "scanwitness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <deque>
#include <memory>
#include <vector>

namespace stockade {
namespace {

// One open directory per level of a worker's descent: bounded so that a hostile tree (a payload
// can nest directories in its read-write grant for the next start) cannot exhaust the launcher's
// fds or memory: at most kMaxWorkers x kMaxDepth fds and buffers, and kQueued fds queued. A
// tree that needs more fds
// than the launcher may open fails with EMFILE, and the grant is refused (as past the entry
// limit: a payload can always make its own grant unusable, never usable unchecked).
constexpr size_t kMaxDepth = 512;  // lib/hostpath.ts MAX_SCAN_DEPTH
constexpr size_t kMaxWorkers = 4;
// Directories queued for whichever worker is free first: each holds an open fd.
constexpr size_t kQueued = 16;

// getdents64 straight into a buffer of its own per level (no fdopendir, which adds an fcntl
// and an fstat per directory: a quarter of the walk's system calls).
constexpr size_t kBufferSize = 16 * 1024;

struct linux_dirent64 {
  ino64_t d_ino;
  off64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

struct Level {
  int fd = -1;
  size_t pathLength = 0;   // of the walk's path when this directory was entered
  size_t at = 0, end = 0;  // the unread part of buffer
  std::unique_ptr<char[]> buffer;
};

// The type of `name` below `dir`, not following a final symlink, or -1 (errno set). statx, not
// lstat or fstatat: glibc 2.33 made those symbols of its own, past the prebuilt addon's glibc
// 2.28 floor (scripts/check-prebuilds.js).
int typeAt(int dir, const char* name) {
  struct statx stx;
  if (statx(dir, name, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) != 0) return -1;
  return stx.stx_mode & S_IFMT;
}

SpecialKind kindOf(int mode) {
  if (S_ISSOCK(mode)) return SpecialKind::socket;
  if (S_ISFIFO(mode)) return SpecialKind::fifo;
  return SpecialKind::none;
}

bool unreadable(int err) {
  return err == EACCES || err == EPERM;
}

// A directory this user may not list but may search (0711, 0311): the sandbox, as this user
// (or as nobody, which cannot list it either), cannot read its names, but reaches a socket or a
// FIFO in it by name (connect(2) and open(2) need search permission on the path, not read).
// What it holds cannot be checked, so the scan gives up on it (EACCES) instead of skipping it.
bool searchable(int dir, const char* name) {
  return faccessat(dir, name, X_OK, 0) == 0;
}

// The entry changed between getdents64 and the open: it is no longer a directory here.
bool changed(int err) {
  return err == ENOENT || err == ENOTDIR || err == ELOOP;
}

// A directory still to be walked: open, with its path and its depth (the root is 1).
struct Task {
  int fd;
  std::string path;
  size_t depth;
};

size_t cpusAllowed() {
  cpu_set_t set;
  return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

// While the caller goes on working (lib/plan.ts resolving the rest of a plan, or `stockade run`
// loading it: lib/hostpath.ts prefetchSocketScans), the CPUs it leaves: one worker on a 2-CPU
// host. Three there had the JS thread's module loading take 11-13 ms instead of 2.
size_t workersBeside() {
  size_t cpus = cpusAllowed();
  return cpus < 2 ? 1 : cpus - 1 > kMaxWorkers ? kMaxWorkers : cpus - 1;
}

// Once the caller waits (and walks too): one more than the CPUs, at most kMaxWorkers. On a 2-CPU
// VM a granted node_modules (warm page cache) took 13-17 ms with one worker, 11 with two, 9 with
// three, and no less with four.
size_t workersWaited() {
  size_t cpus = cpusAllowed();
  return cpus + 1 > kMaxWorkers ? kMaxWorkers : cpus + 1;
}

}  // namespace

struct SpecialFileScan {
  std::string root;
  size_t limit = 0;
  int rootFd = -1;  // the root, open, until begin() queues it
  // The witness (scanwitness.cc): where it is ("" for none), and how recent a directory's change
  // may be for a clean walk to write one.
  std::string witness;
  int64_t racyNs = 0;
  int64_t beganNs = 0;  // CLOCK_REALTIME when begin() ran
  uint64_t mounts = 0;  // mountsBelow(root) when begin() ran
  std::atomic<bool> begun{false};
  std::atomic<bool> unwitnessed{false};  // the walk saw something a witness cannot vouch for
  std::vector<DirStamp> stamps;          // under mu: every directory walked
  WitnessUse witnessUse = WitnessUse::none;
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
  std::deque<Task> queue;         // under mu: first in, first out, so the shallowest go first
  size_t wanted = 1;              // workers at most
  size_t workers = 0;             // taking part (under mu)
  size_t idle = 0;                // waiting for a task (under mu)
  bool finished = false;          // under mu: nothing more to take
  std::atomic<size_t> queued{0};  // queue.size(), read without mu
  std::atomic<size_t> seen{0};
  std::atomic<bool> stop{false};
  SpecialScan out;                   // under mu once workers run
  std::vector<uv_thread_t> threads;  // under mu; final once finished

  // One more worker, under mu: its thread blocks every signal (it inherits the mask of a worker,
  // or the one startSpecialFileScan set). libuv's thread calls, for the prebuilt addon's glibc
  // floor, as in the spawner (native/spawner.cc).
  bool addWorker() {
    uv_thread_t t;
    if (uv_thread_create(
            &t, [](void* self) { static_cast<SpecialFileScan*>(self)->work(); }, this) != 0)
      return false;
    threads.push_back(t);
    ++workers;
    return true;
  }

  // The first result wins: a socket, a FIFO, or why the scan gave up. Every worker stops.
  void settle(SpecialKind kind, int err, const std::string& path) {
    pthread_mutex_lock(&mu);
    if (!stop.load()) {
      out.kind = kind;
      out.err = err;
      out.path = path;
      stop.store(true);
      finished = true;
      pthread_cond_broadcast(&wake);
    }
    pthread_mutex_unlock(&mu);
  }

  // Queues `task` for whichever worker is free first, while the queue has room.
  bool handOver(Task& task) {
    if (queued.load(std::memory_order_relaxed) >= kQueued) return false;
    pthread_mutex_lock(&mu);
    bool taken = !finished && queue.size() < kQueued;
    if (taken) {
      queue.push_back(std::move(task));
      queued.store(queue.size(), std::memory_order_relaxed);
      // Workers are added as there is work for them: a small grant is walked by one thread,
      // without the cost of starting the others (~40 us each).
      if (idle > 0)
        pthread_cond_signal(&wake);
      else if (workers < wanted)
        addWorker();
    }
    pthread_mutex_unlock(&mu);
    return taken;
  }

  // A directory about to be read, stamped for the witness (before its entries are read: a change
  // while they are read moves its ctime past the stamp).
  void stamp(int fd, const std::string& path, std::vector<DirStamp>* into) {
    if (witness.empty() || unwitnessed.load(std::memory_order_relaxed)) return;
    DirStamp d;
    if (!stampDir(fd, "", &d) || d.sec * 1000000000 + d.nsec > beganNs - racyNs) {
      unwitnessed.store(true, std::memory_order_relaxed);
      return;
    }
    d.rel =
        path.size() > root.size() ? path.substr(root.size() + (root.back() == '/' ? 0 : 1)) : "";
    into->push_back(std::move(d));
  }

  void begin();
  void walk(Task task);
  void work();
};

// Run by the first worker (or the caller, if it comes first): the mounts below the root are
// looked at, a witness that holds settles the scan clean without a walk, and otherwise the root
// is queued for the walk.
void SpecialFileScan::begin() {
  if (rootFd < 0) return;  // settled by startSpecialFileScan: not a directory, or unreadable
  // A mount over a file below the root is carried into the sandbox with the bind, and the walk
  // would see the file under it (getdents gives the type of what the directory holds, not of
  // what is mounted there): a socket bound over a plain file is found here.
  std::vector<std::string> points;
  if (mountsBelow(root, &mounts, &points)) {
    for (const std::string& point : points) {
      int mode = typeAt(AT_FDCWD, point.c_str());
      if (mode >= 0 && kindOf(mode) != SpecialKind::none) {
        settle(kindOf(mode), 0, point);
        break;
      }
    }
  } else {
    mounts = 0;
    unwitnessed.store(true);
  }
  if (!witness.empty() && !stop.load()) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    beganNs = static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
    if (mounts != 0 && witnessHolds(witness, root, limit, mounts)) {
      witnessUse = WitnessUse::held;
      settle(SpecialKind::none, 0, "");
    }
  }
  pthread_mutex_lock(&mu);
  if (!finished) {
    queue.push_back(Task{rootFd, root, 1});
    queued.store(queue.size(), std::memory_order_relaxed);
    rootFd = -1;
    if (idle > 0) pthread_cond_signal(&wake);
  }
  pthread_mutex_unlock(&mu);
  if (rootFd >= 0) {
    close(rootFd);  // settled before the walk began: a witness held, a mount found, cancelled
    rootFd = -1;
  }
}

void SpecialFileScan::walk(Task task) {
  // levels[0..depth) are open; a Level's buffer is kept for the next directory at its depth.
  std::vector<Level> levels(1);
  size_t depth = 1;
  levels[0].fd = task.fd;
  levels[0].pathLength = task.path.size();
  levels[0].buffer.reset(new char[kBufferSize]);
  std::string path = std::move(task.path);
  std::vector<DirStamp> stamped;
  stamp(task.fd, path, &stamped);
  while (depth > 0 && !stop.load(std::memory_order_relaxed)) {
    Level& level = levels[depth - 1];
    path.resize(level.pathLength);
    if (level.at >= level.end) {
      long n = syscall(SYS_getdents64, level.fd, level.buffer.get(), kBufferSize);
      if (n <= 0) {
        if (n < 0) settle(SpecialKind::none, errno, path);
        close(level.fd);
        level.fd = -1;
        --depth;
        continue;
      }
      level.at = 0;
      level.end = static_cast<size_t>(n);
    }
    auto* e = reinterpret_cast<linux_dirent64*>(level.buffer.get() + level.at);
    level.at += e->d_reclen;
    const char* name = e->d_name;
    if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
    if (seen.fetch_add(1, std::memory_order_relaxed) + 1 > limit) {
      settle(SpecialKind::none, E2BIG, root);
      break;
    }
    if (path.back() != '/') path += '/';
    path += name;
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      int mode = typeAt(level.fd, name);
      if (mode < 0) {
        if (errno != ENOENT) settle(SpecialKind::none, errno, path);
        unwitnessed.store(true, std::memory_order_relaxed);  // vanished as it was listed
        continue;
      }
      type = S_ISDIR(mode) ? DT_DIR : S_ISSOCK(mode) ? DT_SOCK : S_ISFIFO(mode) ? DT_FIFO : DT_REG;
    }
    if (type == DT_SOCK || type == DT_FIFO) {
      settle(type == DT_SOCK ? SpecialKind::socket : SpecialKind::fifo, 0, path);
      break;
    }
    if (type != DT_DIR) continue;
    size_t below = task.depth + depth;  // the depth of the directory about to be entered
    if (below > kMaxDepth) {
      settle(SpecialKind::none, ELOOP, path);
      break;
    }
    int fd = openat(level.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (unreadable(err)) {
        unwitnessed.store(true, std::memory_order_relaxed);
        if (!searchable(level.fd, name)) continue;  // closed to this user: nothing to reach
        settle(SpecialKind::none, err, path);
        break;
      }
      if (!changed(err)) {
        settle(SpecialKind::none, err, path);
        break;
      }
      // Replaced since it was listed: by a socket or FIFO, that is what the sandbox would see.
      unwitnessed.store(true, std::memory_order_relaxed);
      int mode = typeAt(level.fd, name);
      if (mode >= 0 && kindOf(mode) != SpecialKind::none) settle(kindOf(mode), 0, path);
      continue;
    }
    Task next{fd, path, below};
    if (handOver(next)) continue;
    stamp(fd, path, &stamped);
    if (levels.size() == depth) levels.emplace_back();
    Level& deeper = levels[depth++];  // `level` may have moved: not used below
    deeper.fd = fd;
    deeper.pathLength = path.size();
    deeper.at = deeper.end = 0;
    if (!deeper.buffer) deeper.buffer.reset(new char[kBufferSize]);
  }
  for (size_t i = 0; i < depth; ++i) close(levels[i].fd);
  if (!stamped.empty()) {
    pthread_mutex_lock(&mu);
    stamps.insert(stamps.end(), std::make_move_iterator(stamped.begin()),
                  std::make_move_iterator(stamped.end()));
    pthread_mutex_unlock(&mu);
  }
}

// Takes tasks until the queue is empty with every worker idle, or the scan settled.
void SpecialFileScan::work() {
  if (!begun.exchange(true)) begin();
  pthread_mutex_lock(&mu);
  for (;;) {
    if (finished) break;
    if (!queue.empty()) {
      Task task = std::move(queue.front());
      queue.pop_front();
      queued.store(queue.size(), std::memory_order_relaxed);
      pthread_mutex_unlock(&mu);
      walk(std::move(task));
      pthread_mutex_lock(&mu);
      continue;
    }
    if (++idle == workers) {
      finished = true;
      pthread_cond_broadcast(&wake);
      break;
    }
    pthread_cond_wait(&wake, &mu);
    --idle;
  }
  pthread_mutex_unlock(&mu);
}

SpecialFileScan* startSpecialFileScan(const std::string& root, size_t limit,
                                      const std::string& witness, int64_t racyMs) {
  auto* scan = new SpecialFileScan;
  scan->root = root;
  scan->limit = limit;
  scan->witness = witness;
  scan->racyNs = racyMs * 1000000;
  SpecialScan& out = scan->out;
  int rootType = typeAt(AT_FDCWD, root.c_str());
  if (rootType < 0) {
    out.err = errno;
    out.path = root;
    return scan;
  }
  out.kind = kindOf(rootType);
  if (out.kind != SpecialKind::none) {
    out.path = root;
    return scan;
  }
  if (!S_ISDIR(rootType)) return scan;
  int top = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (top < 0) {
    int err = errno;
    if ((unreadable(err) && searchable(AT_FDCWD, root.c_str())) ||
        (!unreadable(err) && !changed(err))) {
      out.err = err;
      out.path = root;
    }
    return scan;
  }
  scan->rootFd = top;  // queued by begin(), unless a witness holds
  scan->wanted = workersBeside();
  scan->threads.reserve(kMaxWorkers);  // never reallocated while workers add to it
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  pthread_mutex_lock(&scan->mu);
  scan->addWorker();  // if none could be made, finishSpecialFileScan walks on the caller's thread
  pthread_mutex_unlock(&scan->mu);
  sigprocmask(SIG_SETMASK, &old, nullptr);
  return scan;
}

SpecialScan finishSpecialFileScan(SpecialFileScan* scan) {
  if (scan->threads.empty()) {
    // No thread could be made: the caller walks, alone.
    scan->workers = 1;
    scan->wanted = 1;
    scan->work();
  } else {
    // The caller walks too, as one more worker, and more may be added now that it has stopped
    // working beside them. The first worker ends only once the scan has finished, and no worker
    // is added after that.
    pthread_mutex_lock(&scan->mu);
    bool walk = !scan->finished;
    if (walk) {
      ++scan->workers;
      scan->wanted = workersWaited();
    }
    uv_thread_t first = scan->threads[0];
    pthread_mutex_unlock(&scan->mu);
    if (walk) scan->work();
    uv_thread_join(&first);
    for (size_t i = 1; i < scan->threads.size(); ++i) uv_thread_join(&scan->threads[i]);
  }
  for (Task& task : scan->queue) close(task.fd);  // left when the scan settled early
  if (scan->rootFd >= 0) close(scan->rootFd);     // settled before it began
  SpecialScan out = std::move(scan->out);
  out.witness = scan->witnessUse;
  // A clean walk that saw nothing a witness cannot vouch for leaves one for the next scan.
  if (out.witness == WitnessUse::none && out.err == 0 && out.kind == SpecialKind::none &&
      !scan->stop.load() && !scan->unwitnessed.load() && !scan->witness.empty() &&
      !scan->stamps.empty() &&
      writeWitness(scan->witness, WitnessHead{scan->root, scan->mounts, scan->seen.load()},
                   scan->stamps))
    out.witness = WitnessUse::written;
  delete scan;
  if (out.err != 0) out.kind = SpecialKind::none;
  return out;
}

void abandonSpecialFileScan(SpecialFileScan* scan) {
  scan->settle(SpecialKind::none, ECANCELED, scan->root);
  finishSpecialFileScan(scan);
}

}  // namespace stockade
