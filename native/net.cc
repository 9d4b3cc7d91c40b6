// net.cc — the sandbox's network namespace: loopback, transparent routing, injected listeners.
// man 7 netdevice (SIOCSIFFLAGS), man 7 rtnetlink, man 7 unix (SCM_RIGHTS).
//
// The sandbox's netns starts with a single, down, loopback device and no route anywhere: with
// lo up, 127.0.0.1 inside works and nothing else exists. For egress through the proxy, the
// child binds the proxy's listening sockets *inside* its own netns and passes them to the
// parent, which serves them: no bridge process, no socket file, and the tenant is known from the
// socket. With routeAllLocal, `local 0.0.0.0/0 dev lo` (and ::/0) makes every address local, so
// a listener on 0.0.0.0:443 accepts a connect() to any address on port 443, and getsockname()
// on the accepted socket tells the original destination (checked unprivileged on 6.x kernels).
//
// The ...InChild half runs in the child, in the parent's address space: raw system calls only
// (syscall.h), buffers on the child's stack. receiveListenersFromChild is the parent's half.
#include <errno.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "syscall.h"

namespace stockade {

// Appends one RTM_NEWROUTE "local <family-any>/0 dev lo table local" request to `out`.
static size_t appendLocalRoute(std::vector<char>& out, int family, uint32_t seq) {
  struct Request {
    struct nlmsghdr header;
    struct rtmsg route;
    struct rtattr oifAttr;
    int oif;
  } req;
  memset(&req, 0, sizeof req);
  req.header.nlmsg_len = sizeof req;
  req.header.nlmsg_type = RTM_NEWROUTE;
  req.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  req.header.nlmsg_seq = seq;
  req.route.rtm_family = static_cast<unsigned char>(family);
  req.route.rtm_dst_len = 0;
  req.route.rtm_table = RT_TABLE_LOCAL;
  req.route.rtm_protocol = RTPROT_BOOT;
  req.route.rtm_scope = RT_SCOPE_HOST;
  req.route.rtm_type = RTN_LOCAL;
  req.oifAttr.rta_len = RTA_LENGTH(sizeof(int));
  req.oifAttr.rta_type = RTA_OIF;
  req.oif = 1;  // lo is always ifindex 1 in a fresh netns
  const char* bytes = reinterpret_cast<const char*>(&req);
  out.insert(out.end(), bytes, bytes + sizeof req);
  return sizeof req;
}

void prepareRouteMessages(Prepared& prep) {
  prep.routeMessages.clear();
  prep.routeMessage4Len = appendLocalRoute(prep.routeMessages, AF_INET, 1);
  appendLocalRoute(prep.routeMessages, AF_INET6, 2);
}

static int bringLoopbackUp() {
  long fd = sys(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return sysError(fd);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  int err = sysError(sys(SYS_ioctl, fd, SIOCGIFFLAGS, &ifr));
  if (err == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    err = sysError(sys(SYS_ioctl, fd, SIOCSIFFLAGS, &ifr));
  }
  sys(SYS_close, fd);
  return err;
}

// Sends one netlink request and waits for its acknowledgement.
static int netlinkRequest(long fd, const char* msg, size_t len) {
  long sent = sys(SYS_sendto, fd, msg, len, 0, nullptr, 0);
  if (sent < 0) return sysError(sent);
  if (sent != static_cast<long>(len)) return EIO;
  char reply[256];
  long n = sys(SYS_recvfrom, fd, reply, sizeof reply, 0, nullptr, nullptr);
  if (n < 0) return sysError(n);
  auto* header = reinterpret_cast<struct nlmsghdr*>(reply);
  if (n < static_cast<long>(sizeof *header) || header->nlmsg_type != NLMSG_ERROR) return EPROTO;
  auto* error = static_cast<struct nlmsgerr*>(NLMSG_DATA(header));
  return -error->error;
}

static int addLocalRoutes(const Prepared& prep) {
  long fd = sys(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return sysError(fd);
  const char* msgs = prep.routeMessages.data();
  size_t len4 = prep.routeMessage4Len;
  int err = netlinkRequest(fd, msgs, len4);
  if (err == 0) err = netlinkRequest(fd, msgs + len4, prep.routeMessages.size() - len4);
  sys(SYS_close, fd);
  return err;
}

// Returns the listening fd, or -errno.
static long openListener(const Listener& spec) {
  long fd = sys(SYS_socket, spec.family, spec.type | SOCK_CLOEXEC, 0);
  if (fd < 0) return fd;
  int one = 1;
  sys(SYS_setsockopt, fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  long rc;
  if (spec.family == AF_INET6) {
    sys(SYS_setsockopt, fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof sa);
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(spec.port);
    memcpy(&sa.sin6_addr, spec.addr, 16);
    rc = sys(SYS_bind, fd, &sa, sizeof sa);
  } else {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(spec.port);
    memcpy(&sa.sin_addr, spec.addr, 4);
    rc = sys(SYS_bind, fd, &sa, sizeof sa);
  }
  if (rc == 0 && spec.type == SOCK_STREAM) rc = sys(SYS_listen, fd, 511);
  if (rc != 0) {
    sys(SYS_close, fd);
    return rc;
  }
  return fd;
}

// The listener fds are sent in one SCM_RIGHTS message. Plan validation caps their number at
// kMaxListeners; the control buffer is on the child's stack.
static int sendListeners(const Prepared& prep, const int* fds, size_t count) {
  union {
    char bytes[CMSG_SPACE(kMaxListeners * sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  char byte = 'L';
  struct iovec iov = {&byte, 1};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.bytes;
  msg.msg_controllen = CMSG_SPACE(count * sizeof(int));
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(count * sizeof(int));
  memcpy(CMSG_DATA(cmsg), fds, count * sizeof(int));
  long sent = sys(SYS_sendmsg, prep.listenerSocket[1], &msg, MSG_NOSIGNAL);
  if (sent < 0) return sysError(sent);
  return sent == 1 ? 0 : EIO;
}

// Landlock checks connect() (ABI 4), but a TCP Fast Open client connects from sendto() or
// sendmsg() with MSG_FASTOPEN and no connect() at all: on 6.18 that reaches a port Landlock
// refuses to connect() to (test/landlock.test.ts shows both). net.ipv4.tcp_fastopen is per
// network namespace (4.12+), so the sandbox's own is set to 0, where the kernel answers
// MSG_FASTOPEN with EOPNOTSUPP (clients fall back to connect()); the payload, without
// CAP_NET_ADMIN and with /proc/sys read-only, cannot set it back. Nothing a sandbox does needs
// TFO: its peers are its own listeners and the proxy's. Where the host's /proc/sys is read-only
// (a container) the value stays, and the network namespace alone confines Fast Open.
int disableFastOpenInChild(const Plan& plan) {
  if (plan.shareNetwork || plan.landlock.handledNet == 0) return 0;
  long fd = sys(SYS_openat, AT_FDCWD, "/proc/sys/net/ipv4/tcp_fastopen", O_WRONLY | O_CLOEXEC);
  int err = sysError(fd);
  if (err == ENOENT || err == EROFS || err == EACCES) return 0;
  if (err != 0) return err;
  long n = sys(SYS_write, fd, "0\n", 2);
  sys(SYS_close, fd);
  return sysError(n);
}

// The congestion control of the sandbox's own network namespace, whose every TCP connection runs
// over its loopback (to its own listeners and the proxy's): a new namespace takes the host's
// default, and where that is BBR (as on this VM) every loopback connection is paced, which on a
// 2-core VM halved a tunnel's throughput and tripled the client's CPU per byte (bench/egress.ts:
// 0.50x of direct with BBR in the namespace, against 0.87x with CUBIC, both at the host's BBR).
// So the namespace gets CUBIC, or Reno (always built in) where CUBIC is not loaded; the host's
// own connections, the proxy's upstream ones included, keep the host's choice. Best effort: a
// namespace that refuses (a read-only /proc/sys) keeps the default, which costs speed only.
void loopbackCongestionInChild(const Plan& plan) {
  if (plan.shareNetwork) return;
  long fd =
      sys(SYS_openat, AT_FDCWD, "/proc/sys/net/ipv4/tcp_congestion_control", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (sys(SYS_write, fd, "cubic", 5) < 0) sys(SYS_write, fd, "reno", 4);
  sys(SYS_close, fd);
}

int setupNetworkInChild(const Plan& plan, const Prepared& prep, Step* step, int* index) {
  if (plan.shareNetwork) return 0;
  *step = Step::kLoopback;
  if (int err = bringLoopbackUp()) return err;
  if (plan.routeAllLocal) {
    *step = Step::kRoute;
    if (int err = addLocalRoutes(prep)) return err;
  }
  if (plan.listeners.empty()) return 0;

  *step = Step::kListener;
  int fds[kMaxListeners];
  size_t count = plan.listeners.size();
  for (size_t i = 0; i < count; ++i) {
    *index = static_cast<int>(i);
    long fd = openListener(plan.listeners[i]);
    if (fd < 0) return sysError(fd);
    fds[i] = static_cast<int>(fd);
  }
  *index = -1;
  *step = Step::kSendListeners;
  int err = sendListeners(prep, fds, count);
  for (size_t i = 0; i < count; ++i) sys(SYS_close, fds[i]);
  return err;
}

int receiveListenersFromChild(int socket, size_t count, std::vector<int>* fds) {
  char byte;
  struct iovec iov = {&byte, 1};
  std::vector<char> control(CMSG_SPACE(count * sizeof(int)));
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  if (n == 0) return EPIPE;  // the child failed before sending; its error record says why
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS ||
      cmsg->cmsg_len != CMSG_LEN(count * sizeof(int)))
    return EPROTO;
  fds->resize(count);
  memcpy(fds->data(), CMSG_DATA(cmsg), count * sizeof(int));
  return 0;
}

}  // namespace stockade
