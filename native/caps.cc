// caps.cc — capabilities to zero and no_new_privs.
// man 7 capabilities, man 2 capset, man 2 prctl (PR_CAPBSET_DROP, PR_CAP_AMBIENT,
// PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS).
//
// In two halves around the identity change: the bounding set and securebits need
// CAP_SETPCAP, which setresuid() away from uid 0 takes (host-root mode); capset() to zero and
// no_new_privs need nothing. After both, the payload holds no capability in any set, cannot
// regain one through execve (bounding set empty, NOROOT locked, no_new_privs), and file
// capabilities and set-uid bits are ignored. The ...InChild functions make raw system calls
// (syscall.h): they run in the child, which shares the parent's memory and TLS.
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "syscall.h"

namespace stockade {

// Parent side: the highest capability this kernel knows (36 on 5.4, 40 since 5.9).
int readLastCap() {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return CAP_LAST_CAP;
  char buf[16] = {};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? atoi(buf) : CAP_LAST_CAP;
}

int dropBoundingSetInChild(int lastCap) {
  const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                             SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
  if (int err = sysError(sys(SYS_prctl, PR_SET_SECUREBITS, bits, 0, 0, 0))) return err;
  for (int cap = 0; cap <= lastCap; ++cap) {
    int err = sysError(sys(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0));
    if (err != 0 && err != EINVAL) return err;
  }
  return 0;
}

int dropCapabilitiesInChild() {
  int err = sysError(sys(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
  if (err != 0 && err != EINVAL) return err;
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  return sysError(sys(SYS_capset, &header, data));
}

}  // namespace stockade
