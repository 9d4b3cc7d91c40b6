// audit.cc — whether Landlock's denial records (ABI 7, 6.15+) could be read on this host: the
// kernel audit subsystem over NETLINK_AUDIT. Parent side, for `stockade doctor` only.
// man 7 netlink; include/uapi/linux/audit.h (AUDIT_GET, AUDIT_NLGRP_READLOG, 3.16+);
// Documentation/admin-guide/LSM/landlock.rst ("Denied access requests are logged by default for
// a sandboxed program if audit is enabled").
//
// Why stockade does not turn Landlock denials into violation events (README, "Landlock"): the
// records exist only while the host's audit is enabled (audit_enabled: auditd or `auditctl -e 1`,
// or audit=1 at boot; landlock_log_denial returns at once otherwise), and reading them takes
// CAP_AUDIT_READ in the initial user namespace (the read-only multicast group journald uses) —
// so never for an unprivileged launcher, and as root only where an administrator turned audit
// on. Turning it on from the launcher is not an option: it is one switch for the whole host, and
// once on (audit_ever_enabled) every task created afterwards, until reboot, carries a syscall
// audit context. This probe says which of the two conditions holds here.
#include "audit.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/netlink.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace stockade {

namespace {

// Sends AUDIT_GET and reads the reply. The kernel acknowledges within sendto() but sends the
// status from a kernel thread of its own (audit_send_reply), so the read waits for it, at most
// a second (SO_RCVTIMEO): a kernel that never answers is reported as EAGAIN, not a hang.
// 1 or 0, or -errno.
int readEnabled(int fd) {
  struct {
    struct nlmsghdr header;
  } request = {};
  request.header.nlmsg_len = NLMSG_LENGTH(0);
  request.header.nlmsg_type = AUDIT_GET;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  request.header.nlmsg_seq = 1;
  struct sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  struct timeval timeout = {1, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) return -errno;
  if (sendto(fd, &request, request.header.nlmsg_len, 0, reinterpret_cast<struct sockaddr*>(&kernel),
             sizeof kernel) < 0)
    return -errno;
  for (int i = 0; i < 4; ++i) {
    alignas(struct nlmsghdr) char buffer[1024];
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) return -errno;
    for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(buffer);
         NLMSG_OK(h, static_cast<size_t>(n)); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr* err = static_cast<const struct nlmsgerr*>(NLMSG_DATA(h));
        if (err->error != 0) return err->error;  // -EPERM without CAP_AUDIT_CONTROL
      } else if (h->nlmsg_type == AUDIT_GET &&
                 h->nlmsg_len >= NLMSG_LENGTH(offsetof(struct audit_status, failure))) {
        const struct audit_status* status = static_cast<const struct audit_status*>(NLMSG_DATA(h));
        return status->enabled != 0 ? 1 : 0;
      }
    }
  }
  return -EPROTO;
}

}  // namespace

AuditProbe probeAudit() {
  AuditProbe probe;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
  if (fd < 0) {
    probe.enabled = probe.readLog = -errno;  // EPROTONOSUPPORT: no CONFIG_AUDIT
    return probe;
  }
  probe.enabled = readEnabled(fd);
  close(fd);
  fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
  if (fd < 0) {
    probe.readLog = -errno;
    return probe;
  }
  struct sockaddr_nl group = {};
  group.nl_family = AF_NETLINK;
  group.nl_groups = 1u << (AUDIT_NLGRP_READLOG - 1);
  probe.readLog =
      bind(fd, reinterpret_cast<struct sockaddr*>(&group), sizeof group) == 0 ? 0 : -errno;
  close(fd);
  return probe;
}

}  // namespace stockade
