// syscall.h — raw system calls for the child of clone(CLONE_VM), without glibc.
// man 2 syscall (calling conventions of x86_64 and aarch64), man 2 clone (CLONE_VM).
//
// The child runs in the parent's address space *and with the parent thread's TLS* (the thread
// pointer register is inherited; the child has no TLS of its own). Every glibc wrapper that
// fails writes errno, which lives in that TLS: a failing mkdir() in the child would overwrite
// the errno of the Node thread that is at the same moment inside read() or write() on the
// parent side, and the parent would misreport its own failure. Cancellation points (read,
// write, poll, ...) also update the calling thread's cancellation state in TLS. So the child
// calls the kernel directly: sys() returns what the kernel returned, which is -errno on
// failure, and touches no memory but its registers and the arguments' pointees.
//
// Use only from code that runs between clone() and execve() (functions named ...InChild and
// what they call); the parent side keeps glibc and errno. stockade-init (init.c), which has no
// libc at all, uses the C core, stockade_syscall6().
#pragma once

static inline long stockade_syscall6(long nr, long a1, long a2, long a3, long a4, long a5,
                                     long a6) {
#if defined(__x86_64__)
  long ret;
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  register long r9 __asm__("r9") = a6;
  // The kernel clobbers rcx (return address) and r11 (flags); "memory": the kernel reads and
  // writes through the pointer arguments.
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = nr;
  register long x0 __asm__("x0") = a1;
  register long x1 __asm__("x1") = a2;
  register long x2 __asm__("x2") = a3;
  register long x3 __asm__("x3") = a4;
  register long x4 __asm__("x4") = a5;
  register long x5 __asm__("x5") = a6;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
#else
#error "stockade's raw syscalls cover x86_64 and aarch64"
#endif
}

#ifdef __cplusplus
#include <type_traits>

namespace stockade {

namespace detail {

template <typename T>
inline long toArg(T value) {
  if constexpr (std::is_pointer_v<T>) {
    return reinterpret_cast<long>(value);
  } else if constexpr (std::is_null_pointer_v<T>) {
    return 0;
  } else {
    return static_cast<long>(value);
  }
}

}  // namespace detail

// sys(SYS_xxx, args...): the kernel's raw result; -4095..-1 is -errno.
template <typename... Args>
inline long sys(long nr, Args... args) {
  static_assert(sizeof...(Args) <= 6, "a system call takes at most six arguments");
  long a[6] = {detail::toArg(args)...};
  return stockade_syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

// The errno of a raw result, or 0 on success.
inline int sysError(long result) {
  return result < 0 && result > -4096 ? static_cast<int>(-result) : 0;
}

}  // namespace stockade
#endif  // __cplusplus
