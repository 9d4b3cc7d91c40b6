// seccomp.cc — the default seccomp-BPF profile (DESIGN.md, "seccomp").
// man 2 seccomp, man 2 syscall (calling conventions), Documentation/userspace-api/seccomp_filter.
//
// A deny list over the native ABI, built once per process:
// - the architecture is checked first: a 64-bit x86 process can otherwise make 32-bit
//   syscalls through `int 0x80`, whose numbers differ, and walk past every rule below; x32
//   numbers (bit 30) are refused the same way;
// - syscalls that reconfigure namespaces, mounts, the kernel or other processes' memory kill the
//   whole process (SECCOMP_RET_KILL_PROCESS, 4.14+): a sandboxed program has no honest use for
//   them, and a SIGSYS death makes the attempt visible;
// - clone() with any CLONE_NEW* flag kills; clone3() answers ENOSYS because its flags sit in
//   memory BPF cannot read, and glibc then falls back to clone() (threads keep working);
// - ioctl TIOCSTI/TIOCLINUX (terminal input injection) answer EPERM; the command is compared
//   on its low 32 bits, as the kernel reads it (unsigned int);
// - personality() keeps only harmless values; socket() and socketpair() only AF_UNIX, AF_INET,
//   AF_INET6, AF_NETLINK (no raw packet sockets, no obscure protocol families with a history of
//   bugs). socketpair() needs the rule as much as socket(): it creates both sockets through
//   the family's own create function (autoloading its module) before it asks the family for a
//   pair, and some families (AF_TIPC) do make one;
// - no set-user-ID or set-group-ID bit on a file (chmod family, and open/mknod creating one)
//   answers EPERM: what the payload creates in a read-write grant is a host file, owned by the
//   caller — by root when host root grants its own directory (an idmapped mount, mounts.cc) —
//   and a set-ID bit on it would hand the caller's identity to any local user who runs it.
//   openat2() carries its mode in memory BPF cannot read, so it answers ENOSYS (callers fall
//   back to openat);
// - numbers above the highest this table knows answer ENOSYS: a syscall added to a future
//   kernel is refused until it has been reviewed.
// The kernel (5.11+) caches the verdict of every syscall whose outcome does not depend on its
// arguments, so the filter costs almost nothing outside clone, ioctl, personality and the
// socket calls.
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

constexpr uint32_t kCloneNewFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
constexpr uint32_t kTiocsti = 0x5412, kTioclinux = 0x541C;
// Docker's list: PER_LINUX, PER_LINUX32, UNAME26 with either, and the query value.
constexpr uint32_t kPersonalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
constexpr uint32_t kSocketFamilies[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};

constexpr uint32_t kNr = offsetof(struct seccomp_data, nr);
constexpr uint32_t kArchOffset = offsetof(struct seccomp_data, arch);
// Low 32 bits of argument i (both supported ABIs are little-endian).
constexpr uint32_t arg(int i) {
  return offsetof(struct seccomp_data, args) + 8 * i;
}

constexpr uint32_t kKill = SECCOMP_RET_KILL_PROCESS;
constexpr uint32_t errnoRet(int e) {
  return SECCOMP_RET_ERRNO | (static_cast<uint32_t>(e) & 0xffff);
}

class Builder {
 public:
  void load(uint32_t offset) { add(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset)); }
  void ret(uint32_t action) { add(BPF_STMT(BPF_RET | BPF_K, action)); }
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
// The block ends in a return, so control never falls through it.
template <typename Emit>
void guarded(Builder& b, uint32_t nr, Emit emit) {
  Builder block;
  emit(block);
  b.skipUnless(nr, static_cast<uint8_t>(block.size()));
  for (auto& insn : block.program()) b.program().push_back(insn);
}

std::vector<struct sock_filter> buildDefault() {
  Builder b;
  b.load(kArchOffset);
  b.returnUnlessEqual(kArch, kKill);
  b.load(kNr);
  if (kHasX32) b.returnIfAtLeast(0x40000000, kKill);
  for (uint32_t nr : kKilled) b.returnIfEqual(nr, kKill);
  b.returnIfEqual(SYS_clone3, errnoRet(ENOSYS));
  guarded(b, SYS_clone, [](Builder& g) {
    g.load(arg(0));
    g.returnIfAnyBit(kCloneNewFlags, kKill);
    g.ret(SECCOMP_RET_ALLOW);
  });
  guarded(b, SYS_ioctl, [](Builder& g) {
    g.load(arg(1));
    g.returnIfEqual(kTiocsti, errnoRet(EPERM));
    g.returnIfEqual(kTioclinux, errnoRet(EPERM));
    g.ret(SECCOMP_RET_ALLOW);
  });
  guarded(b, SYS_personality, [](Builder& g) {
    g.load(arg(0));
    for (uint32_t p : kPersonalities) g.returnIfEqual(p, SECCOMP_RET_ALLOW);
    g.ret(errnoRet(EPERM));
  });
  // The family is argument 0 of both; the kernel reads it as an int (low 32 bits).
  auto onlyAllowedFamilies = [](Builder& g) {
    g.load(arg(0));
    for (uint32_t family : kSocketFamilies) g.returnIfEqual(family, SECCOMP_RET_ALLOW);
    g.ret(errnoRet(EAFNOSUPPORT));
  };
  guarded(b, SYS_socket, onlyAllowedFamilies);
  guarded(b, SYS_socketpair, onlyAllowedFamilies);
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
  b.returnIfAtLeast(kHighestKnown + 1, errnoRet(ENOSYS));
  b.ret(SECCOMP_RET_ALLOW);
  return std::move(b.program());
}

}  // namespace

const struct sock_fprog* defaultFilter() {
  static std::vector<struct sock_filter> program = buildDefault();
  static struct sock_fprog prog = {static_cast<unsigned short>(program.size()), program.data()};
  return &prog;
}

int installFilterInChild(const struct sock_fprog* filter) {
  // seccomp(2) rather than prctl: TSYNC is not wanted (one thread). SECCOMP_FILTER_FLAG_SPEC_ALLOW
  // (4.17) is deliberately not set: where the kernel ties SSBD/STIBP to seccomp (booted with
  // spec_store_bypass_disable=seccomp, or its default before 5.16) an administrator chose that,
  // and a sandbox of untrusted code is the last place to opt out. Since 5.16 the default is
  // prctl, where the flag changes nothing; bench/seccomp.ts measures both (forcing SSBD+STIBP on
  // a syscall-heavy payload showed no difference beyond the noise on a 6.18 eIBRS host).
  // Raw (syscall.h): this runs in the child.
  return sysError(sys(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, filter));
}

}  // namespace stockade
