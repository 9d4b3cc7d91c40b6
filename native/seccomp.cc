// seccomp.cc — the seccomp-BPF profiles (DESIGN.md, "seccomp"): `default`, a deny list, and
// `strict`, an allow list.
// man 2 seccomp, man 2 seccomp_unotify, man 2 syscall (calling conventions),
// Documentation/userspace-api/seccomp_filter.
//
// Both profiles start alike:
// - the architecture is checked first: a 64-bit x86 process can otherwise make 32-bit
//   syscalls through `int 0x80`, whose numbers differ, and walk past every rule below; x32
//   numbers (bit 30) are refused the same way;
// - then the five syscalls whose verdict depends on an argument, each a block every other
//   syscall jumps over (see "Order and cost" below):
//   clone() with any CLONE_NEW* flag is refused as a kill (clone3() answers ENOSYS because its
//   flags sit in memory BPF cannot read, and glibc then falls back to clone(), so threads keep
//   working); ioctl TIOCSTI/TIOCLINUX (terminal input injection) answer EPERM, the command
//   compared on its low 32 bits as the kernel reads it (unsigned int); personality() keeps only
//   harmless values (EPERM); socket() and socketpair() only AF_UNIX, AF_INET, AF_INET6,
//   AF_NETLINK, and never the type SOCK_PACKET, which the kernel quietly turns into a PF_PACKET
//   socket for AF_INET (EAFNOSUPPORT). socketpair() needs the rule as much as socket(): it
//   creates both sockets through the family's own create function (autoloading its module)
//   before it asks the family for a pair, and some families (AF_TIPC) do make one.
// - both: no set-user-ID or set-group-ID bit on a file (chmod family, and open/mknod creating
//   one) answers EPERM: what the payload creates in a read-write grant is a host file, owned by
//   the caller — by root when host root grants its own directory (an idmapped mount,
//   mounts.cc) — and a set-ID bit on it would hand the caller's identity to any local user who
//   runs it. openat2() carries its mode in memory BPF cannot read, so it answers ENOSYS (callers
//   fall back to openat). These are argument checks too: they come after the five above.
// - default: syscalls that reconfigure namespaces, mounts, the kernel or other processes' memory
//   are refused as kills (kKilled); everything else is allowed.
// - strict: only the syscalls of kStrictAllowed are allowed (the table says why each is there);
//   kStrictErrno answers a few that programs call and cope with refused; the rest is refused as
//   a kill. See the table for why the rest is a kill and not ENOSYS.
// - numbers above the highest this build knows answer ENOSYS: a syscall added to a future
//   kernel is refused until it has been reviewed (and a program probing for it falls back).
//
// "Refused as a kill": with a supervisor (stockade-init, see init.c), the filter returns
// SECCOMP_RET_USER_NOTIF for these and for the argument refusals above, and the supervisor
// names the syscall, then kills the caller or answers the errno; without one, the filter itself
// returns SECCOMP_RET_KILL_PROCESS or the errno. Either way the refused call never runs: a
// notified syscall waits in the kernel until the supervisor answers, and if the supervisor's
// listener is gone the kernel answers ENOSYS itself.
//
// Order and cost. Since 5.11 the kernel caches, per syscall number, the verdict of every
// syscall that the filter allows whatever its arguments (an emulation of the filter at load
// time), and skips running it for those: so the length of the lists costs nothing for them.
// What runs the filter is the argument-checked syscalls (clone, ioctl, personality, socket,
// socketpair, the chmod/open/mknod family) and the refused ones. The argument blocks come first, so
// an ioctl() passes the architecture check and its own block only (bench/seccomp.ts measures it): a
// balanced decision tree over the numbers would shorten only the refused paths, which end the
// sandbox anyway.
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "syscall.h"
#include "sysnums.h"

#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF 0x7fc00000U
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_GET_ACTION_AVAIL
#define SECCOMP_GET_ACTION_AVAIL 2
#endif

namespace stockade {

namespace {

#if defined(__x86_64__)
constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
constexpr bool kHasX32 = true;
#elif defined(__aarch64__)
constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
constexpr bool kHasX32 = false;
#else
#error "stockade's seccomp tables cover x86_64 and aarch64"
#endif

// The highest syscall number of Linux 6.18 (file_setattr). Above it: ENOSYS.
constexpr uint32_t kHighestKnown = 469;

// Refused as a kill by both profiles: no sandboxed program has an honest use for them, and a
// kill that names the call makes the attempt visible.
constexpr uint32_t kKilled[] = {
    SYS_unshare,
    SYS_setns,
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_chroot,
    SYS_fsopen,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fspick,
    SYS_move_mount,
    SYS_open_tree,
    SYS_mount_setattr,
    SYS_open_tree_attr,
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_kcmp,
    SYS_pidfd_getfd,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_reboot,
    SYS_swapon,
    SYS_swapoff,
    SYS_acct,
    SYS_syslog,
    SYS_quotactl,
    SYS_quotactl_fd,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
    SYS_settimeofday,
    SYS_clock_settime,
    SYS_adjtimex,
    SYS_clock_adjtime,
#if defined(__x86_64__)
    SYS_iopl,
    SYS_ioperm,
    SYS_uselib,
#endif
};

// The strict profile's allow list, from tracing (strace -f) node 20 (fs, child_process, worker
// threads, http server and client, fetch, dns.lookup, fs.watch, unix sockets), python3.11
// (threads, subprocess, multiprocessing, asyncio, ssl, sqlite3, sockets, mmap, signals), the
// MCP servers the suite runs (server-everything, server-filesystem, server-memory) under an SDK
// client, and stockade's own calls after the filter (child.cc, init.c) — widened to each call's
// siblings (pread64 with preadv, stat with statx) so that a libc or runtime update that picks
// the sibling keeps working. clone, ioctl, personality, socket and socketpair are allowed with
// the argument checks of both profiles.
// One syscall a line, as the table is read:
// clang-format off
constexpr uint32_t kStrictAllowed[] = {
    // --- files: open, read, write, seek, close
    SYS_openat,
    SYS_read,
    SYS_write,
    SYS_readv,
    SYS_writev,
    SYS_pread64,
    SYS_pwrite64,
    SYS_preadv,
    SYS_pwritev,
    SYS_preadv2,
    SYS_pwritev2,
    SYS_lseek,
    SYS_close,
    SYS_close_range,  // fd hygiene before exec (python subprocess, node child_process)
    SYS_sendfile,  // fs.copyFile, shutil.copy
    SYS_copy_file_range,
    SYS_splice,
    SYS_tee,
    SYS_fsync,
    SYS_fdatasync,
    SYS_sync_file_range,
    SYS_fallocate,
    SYS_fadvise64,
    SYS_ftruncate,
    SYS_truncate,
    SYS_flock,  // npm, sqlite
    SYS_memfd_create,  // V8 and wasm code pages, python multiprocessing
    // --- file metadata and directories
    SYS_newfstatat,
    SYS_fstat,
    SYS_statx,  // libuv's stat
    SYS_statfs,
    SYS_fstatfs,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_readlinkat,
    SYS_getdents64,
    SYS_getcwd,
    SYS_chdir,
    SYS_fchdir,
    SYS_mkdirat,
    SYS_unlinkat,
    SYS_renameat,
    SYS_renameat2,
    SYS_linkat,
    SYS_symlinkat,
    SYS_mknodat,  // mkfifo (device nodes need CAP_MKNOD, which the sandbox lacks)
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchmodat2,
    SYS_fchown,
    SYS_fchownat,  // to the caller's own ids only, without capabilities
    SYS_utimensat,
    SYS_umask,
    SYS_getxattr,  // reading attributes (ls, cp -a, python shutil.copystat)
    SYS_lgetxattr,
    SYS_fgetxattr,
    SYS_listxattr,
    SYS_llistxattr,
    SYS_flistxattr,
    SYS_inotify_init1,  // fs.watch, file watchers of MCP servers
    SYS_inotify_add_watch,
    SYS_inotify_rm_watch,
    // --- descriptors and event loops (libuv, asyncio)
    SYS_dup,
    SYS_dup3,
    SYS_fcntl,
    SYS_pipe2,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_ppoll,
    SYS_pselect6,
    SYS_eventfd2,
    SYS_signalfd4,  // stockade-init
    SYS_timerfd_create,
    SYS_timerfd_settime,
    SYS_timerfd_gettime,
    // --- memory
    SYS_brk,
    SYS_mmap,
    SYS_munmap,
    SYS_mremap,
    SYS_mprotect,
    SYS_madvise,
    SYS_msync,
    SYS_mincore,
    SYS_mlock,  // bounded by RLIMIT_MEMLOCK
    SYS_munlock,
    SYS_membarrier,  // V8, JIT code patching
    SYS_pkey_alloc,  // V8 (memory protection keys for JIT pages)
    SYS_pkey_free,
    SYS_pkey_mprotect,
    SYS_get_mempolicy,
    // --- processes and threads
    SYS_execve,
    SYS_execveat,  // stockade-init is started with it
    SYS_exit,
    SYS_exit_group,
    SYS_wait4,
    SYS_waitid,
    SYS_set_tid_address,
    SYS_set_robust_list,
    SYS_get_robust_list,
    SYS_rseq,
    SYS_futex,
    SYS_futex_waitv,
    SYS_sched_yield,
    SYS_sched_getaffinity,  // os.cpus(), libuv's thread pool size
    SYS_sched_setaffinity,
    SYS_sched_getparam,
    SYS_sched_getscheduler,
    SYS_sched_setscheduler,  // lowering only, without CAP_SYS_NICE
    SYS_sched_get_priority_max,
    SYS_sched_get_priority_min,
    SYS_getpriority,
    SYS_setpriority,
    SYS_prlimit64,
    SYS_getrlimit,
    SYS_setrlimit,  // lowering only, without CAP_SYS_RESOURCE
    SYS_getrusage,
    SYS_times,
    SYS_prctl,  // PR_SET_NAME, PR_SET_PDEATHSIG, ...; no_new_privs holds, capabilities are gone
    SYS_capget,
    SYS_getpid,
    SYS_gettid,
    SYS_getppid,
    SYS_getpgid,
    SYS_setpgid,
    SYS_getsid,
    SYS_setsid,
    SYS_getuid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getegid,
    SYS_getresuid,
    SYS_getresgid,
    SYS_getgroups,
    SYS_uname,
    SYS_sysinfo,  // os.totalmem()
    SYS_getcpu,
    SYS_getrandom,
    SYS_pidfd_open,  // libuv 1.4x, python's subprocess
    SYS_pidfd_send_signal,
    SYS_seccomp,  // a payload's own filter can only refuse more
    SYS_landlock_create_ruleset,  // a payload's own Landlock domain can only restrict more
    SYS_landlock_add_rule,
    SYS_landlock_restrict_self,
    // --- signals
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_rt_sigsuspend,
    SYS_rt_sigpending,
    SYS_rt_sigtimedwait,
    SYS_rt_sigqueueinfo,
    SYS_rt_tgsigqueueinfo,
    SYS_sigaltstack,
    SYS_kill,  // within the sandbox's pid namespace (and Landlock's signal scope)
    SYS_tgkill,
    SYS_tkill,
    SYS_setitimer,
    SYS_getitimer,
    SYS_timer_create,
    SYS_timer_settime,
    SYS_timer_gettime,
    SYS_timer_getoverrun,
    SYS_timer_delete,
    // --- time
    SYS_clock_gettime,
    SYS_clock_getres,
    SYS_clock_nanosleep,
    SYS_nanosleep,
    SYS_gettimeofday,
    // --- sockets (the family is checked at socket(); the network namespace does the rest)
    SYS_bind,
    SYS_listen,
    SYS_accept,
    SYS_accept4,
    SYS_connect,
    SYS_getsockname,
    SYS_getpeername,
    SYS_getsockopt,
    SYS_setsockopt,
    SYS_sendto,
    SYS_recvfrom,
    SYS_sendmsg,
    SYS_recvmsg,
    SYS_sendmmsg,
    SYS_recvmmsg,
    SYS_shutdown,
#if defined(__x86_64__)
    // --- x86_64's older spellings of the calls above (glibc and static binaries still use
    //     some: python's os.fork is clone, but busybox and older binaries call these)
    SYS_open,
    SYS_creat,
    SYS_stat,
    SYS_lstat,
    SYS_access,
    SYS_readlink,
    SYS_getdents,
    SYS_mkdir,
    SYS_rmdir,
    SYS_unlink,
    SYS_rename,
    SYS_link,
    SYS_symlink,
    SYS_chmod,
    SYS_chown,
    SYS_lchown,
    SYS_mknod,
    SYS_utime,
    SYS_utimes,
    SYS_futimesat,
    SYS_pipe,
    SYS_dup2,
    SYS_poll,
    SYS_select,
    SYS_epoll_create,
    SYS_epoll_wait,
    SYS_eventfd,
    SYS_signalfd,
    SYS_inotify_init,
    SYS_fork,
    SYS_vfork,  // posix_spawn (python subprocess, node's libuv on some paths)
    SYS_getpgrp,
    SYS_alarm,
    SYS_pause,
    SYS_time,
    SYS_arch_prctl,  // TLS setup of every x86_64 process
#endif
};
// clang-format on

// Strict: refused with an errno rather than a kill, because ordinary programs call them and
// carry on when refused. EPERM: changing identity or host names (no capability would allow it
// anyway, so the answer is the one the kernel would give). ENOSYS: clone3 (see above).
// One syscall a line, as the table is read:
// clang-format off
constexpr uint32_t kStrictEperm[] = {
    SYS_setuid,
    SYS_setgid,
    SYS_setreuid,
    SYS_setregid,
    SYS_setresuid,
    SYS_setresgid,
    SYS_setfsuid,
    SYS_setfsgid,
    SYS_setgroups,
    SYS_capset,
    SYS_sethostname,
    SYS_setdomainname,
};
// clang-format on

constexpr uint32_t kCloneNewFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
constexpr uint32_t kTiocsti = 0x5412, kTioclinux = 0x541C;
// Docker's list: PER_LINUX, PER_LINUX32, UNAME26 with either, and the query value.
constexpr uint32_t kPersonalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
constexpr uint32_t kSocketFamilies[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
constexpr uint32_t kSockTypeMask = 0xf;  // the kernel's SOCK_TYPE_MASK; the rest is flags
constexpr uint32_t kSockPacket = 10;     // SOCK_PACKET

constexpr uint32_t kNr = offsetof(struct seccomp_data, nr);
constexpr uint32_t kArchOffset = offsetof(struct seccomp_data, arch);
// Low 32 bits of argument i (both supported ABIs are little-endian).
constexpr uint32_t arg(int i) {
  return offsetof(struct seccomp_data, args) + 8 * i;
}

constexpr uint32_t errnoRet(int e) {
  return SECCOMP_RET_ERRNO | (static_cast<uint32_t>(e) & 0xffff);
}

// What a refusal returns. With a supervisor every refusal worth naming is a notification, and
// init.c answers it (supervisorAnswer() there mirrors these errnos); without one, the filter
// answers itself.
struct Actions {
  uint32_t kill;
  uint32_t eperm;         // ioctl, personality
  uint32_t eafnosupport;  // socket, socketpair
};

Actions actionsFor(bool notify) {
  if (notify) return {SECCOMP_RET_USER_NOTIF, SECCOMP_RET_USER_NOTIF, SECCOMP_RET_USER_NOTIF};
  return {SECCOMP_RET_KILL_PROCESS, errnoRet(EPERM), errnoRet(EAFNOSUPPORT)};
}

class Builder {
 public:
  void load(uint32_t offset) { add(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset)); }
  void ret(uint32_t action) { add(BPF_STMT(BPF_RET | BPF_K, action)); }
  void andWith(uint32_t k) { add(BPF_STMT(BPF_ALU | BPF_AND | BPF_K, k)); }
  // if (A == k) return action;
  void returnIfEqual(uint32_t k, uint32_t action) {
    add(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, 0, 1));
    ret(action);
  }
  // if (A != k) return action;
  void returnUnlessEqual(uint32_t k, uint32_t action) {
    add(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, 1, 0));
    ret(action);
  }
  // if (A >= k) return action;
  void returnIfAtLeast(uint32_t k, uint32_t action) {
    add(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, k, 0, 1));
    ret(action);
  }
  // if (A & k) return action;
  void returnIfAnyBit(uint32_t k, uint32_t action) {
    add(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, k, 0, 1));
    ret(action);
  }
  // if (!(A & k)) return action;
  void returnUnlessAnyBit(uint32_t k, uint32_t action) {
    add(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, k, 1, 0));
    ret(action);
  }
  // if (A != nr) skip the next `length` instructions.
  void skipUnless(uint32_t nr, uint8_t length) {
    add(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, length));
  }
  size_t size() const { return program_.size(); }
  std::vector<struct sock_filter>& program() { return program_; }

 private:
  void add(struct sock_filter insn) { program_.push_back(insn); }
  std::vector<struct sock_filter> program_;
};

// An argument check on syscall `nr`, emitted as a block that every other syscall jumps over.
// The block ends in a return, so control never falls through it; it reloads the number for
// nothing, as no instruction after it runs for `nr`.
template <typename Emit>
void guarded(Builder& b, uint32_t nr, Emit emit) {
  Builder block;
  emit(block);
  b.skipUnless(nr, static_cast<uint8_t>(block.size()));
  for (auto& insn : block.program()) b.program().push_back(insn);
}

// The architecture check and the five argument blocks, shared by both profiles. Leaves the
// syscall number in A.
void emitCommon(Builder& b, const Actions& act) {
  b.load(kArchOffset);
  b.returnUnlessEqual(kArch, SECCOMP_RET_KILL_PROCESS);  // never a notification: nothing to name
  b.load(kNr);
  if (kHasX32) b.returnIfAtLeast(0x40000000, SECCOMP_RET_KILL_PROCESS);
  guarded(b, SYS_ioctl, [&](Builder& g) {
    g.load(arg(1));
    g.returnIfEqual(kTiocsti, act.eperm);
    g.returnIfEqual(kTioclinux, act.eperm);
    g.ret(SECCOMP_RET_ALLOW);
  });
  guarded(b, SYS_clone, [&](Builder& g) {
    g.load(arg(0));
    g.returnIfAnyBit(kCloneNewFlags, act.kill);
    g.ret(SECCOMP_RET_ALLOW);
  });
  b.returnIfEqual(SYS_clone3, errnoRet(ENOSYS));
  guarded(b, SYS_personality, [&](Builder& g) {
    g.load(arg(0));
    for (uint32_t p : kPersonalities) g.returnIfEqual(p, SECCOMP_RET_ALLOW);
    g.ret(act.eperm);
  });
  // Family (argument 0) and type (argument 1) of both; the kernel reads them as ints.
  auto familyAndType = [&](Builder& g) {
    g.load(arg(1));
    g.andWith(kSockTypeMask);
    g.returnIfEqual(kSockPacket, act.eafnosupport);
    g.load(arg(0));
    for (uint32_t family : kSocketFamilies) g.returnIfEqual(family, SECCOMP_RET_ALLOW);
    g.ret(act.eafnosupport);
  };
  guarded(b, SYS_socket, familyAndType);
  guarded(b, SYS_socketpair, familyAndType);
  // Set-ID bits: the mode is argument `modeArg`; for open calls only when they create a file.
  auto noSetId = [](int modeArg, int flagsArg = -1) {
    return [=](Builder& g) {
      if (flagsArg >= 0) {
        g.load(arg(flagsArg));
        g.returnUnlessAnyBit(O_CREAT | (O_TMPFILE & ~O_DIRECTORY), SECCOMP_RET_ALLOW);
      }
      g.load(arg(modeArg));
      g.returnIfAnyBit(S_ISUID | S_ISGID, errnoRet(EPERM));
      g.ret(SECCOMP_RET_ALLOW);
    };
  };
  guarded(b, SYS_fchmod, noSetId(1));
  guarded(b, SYS_fchmodat, noSetId(2));
  guarded(b, SYS_fchmodat2, noSetId(2));
  guarded(b, SYS_openat, noSetId(3, 2));
  guarded(b, SYS_mknodat, noSetId(2));
#if defined(__x86_64__)
  guarded(b, SYS_chmod, noSetId(1));
  guarded(b, SYS_open, noSetId(2, 1));
  guarded(b, SYS_creat, noSetId(1));
  guarded(b, SYS_mknod, noSetId(1));
#endif
  b.returnIfEqual(SYS_openat2, errnoRet(ENOSYS));
}

std::vector<struct sock_filter> build(SeccompProfile profile, bool notify) {
  const Actions act = actionsFor(notify);
  Builder b;
  emitCommon(b, act);
  for (uint32_t nr : kKilled) b.returnIfEqual(nr, act.kill);
  b.returnIfAtLeast(kHighestKnown + 1, errnoRet(ENOSYS));
  if (profile == SeccompProfile::kDefault) {
    b.ret(SECCOMP_RET_ALLOW);
  } else {
    for (uint32_t nr : kStrictEperm) b.returnIfEqual(nr, errnoRet(EPERM));
    for (uint32_t nr : kStrictAllowed) b.returnIfEqual(nr, SECCOMP_RET_ALLOW);
    // Everything else: a kill. Strict is for servers whose needs are known; an unlisted call is
    // an attack or a missing entry of the table above, and a kill that names it says which,
    // where an ENOSYS would send the program down a fallback path nobody has tested.
    b.ret(act.kill);
  }
  return std::move(b.program());
}

struct Program {
  std::vector<struct sock_filter> insns;
  struct sock_fprog prog;
  explicit Program(std::vector<struct sock_filter> v) : insns(std::move(v)) {
    prog = {static_cast<unsigned short>(insns.size()), insns.data()};
  }
};

}  // namespace

// The four programs are immutable once built and the same for every environment (they depend on
// the build target only), so one copy per process is shared: built before any clone().
const struct sock_fprog* filterFor(SeccompProfile profile, bool notify) {
  static const Program programs[] = {
      Program(build(SeccompProfile::kDefault, false)),
      Program(build(SeccompProfile::kDefault, true)),
      Program(build(SeccompProfile::kStrict, false)),
      Program(build(SeccompProfile::kStrict, true)),
  };
  int i = (profile == SeccompProfile::kStrict ? 2 : 0) + (notify ? 1 : 0);
  return &programs[i].prog;
}

bool seccompNotifyAvailable() {
  uint32_t action = SECCOMP_RET_USER_NOTIF;  // 5.0; the listener flag came with it
  return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
}

int installFilterInChild(const struct sock_fprog* filter, bool notify, int* listener) {
  // seccomp(2) rather than prctl: TSYNC is not wanted (one thread). SECCOMP_FILTER_FLAG_SPEC_ALLOW
  // (4.17) is deliberately not set: where the kernel ties SSBD/STIBP to seccomp (booted with
  // spec_store_bypass_disable=seccomp, or its default before 5.16) an administrator chose that,
  // and a sandbox of untrusted code is the last place to opt out. Since 5.16 the default is
  // prctl, where the flag changes nothing; bench/seccomp.ts measures both (forcing SSBD+STIBP on
  // a syscall-heavy payload showed no difference beyond the noise on a 6.18 eIBRS host). With
  // NEW_LISTENER the result is the supervisor's fd (close-on-exec), else 0.
  // Raw (syscall.h): this runs in the child.
  long rc = sys(SYS_seccomp, SECCOMP_SET_MODE_FILTER, notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0,
                filter);
  if (int err = sysError(rc)) return err;
  *listener = notify ? static_cast<int>(rc) : -1;
  return 0;
}

}  // namespace stockade
