#include "tcp/listener_socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace lb4 {

namespace {

// IPV6_FREEBIND's value in linux/in6.h; glibc's netinet/in.h does not name it everywhere.
#ifdef IPV6_FREEBIND
constexpr int kIpv6FreeBind = IPV6_FREEBIND;
#else
constexpr int kIpv6FreeBind = 78;
#endif

bool fail(SocketError& err, const char* syscall) {
  err.error = errno;
  err.syscall = syscall;
  return false;
}

bool openOne(const ListenerConfig& config, const SocketAddress& address, bool reusePort, UniqueFd& out,
             SocketError& err) {
  const int type = listenerSocketType(config.protocol);
  UniqueFd fd(socket(address.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail(err, "socket");
  int one = 1;
  // SO_REUSEADDR lets lb4 restart while old flows sit in TIME_WAIT on the port. Never on a
  // datagram socket: there it means "share this port with any other SO_REUSEADDR socket", so the
  // probe below would bind beside another program's UDP socket instead of failing, and the two
  // would split the datagrams. UDP has no TIME_WAIT to wait out.
  if (type == SOCK_STREAM && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
    return fail(err, "setsockopt");
  if (reusePort && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
    return fail(err, "setsockopt");
  if (address.family() == AF_INET6) {
    int v6only = config.dualStack ? 0 : 1;
    if (setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0)
      return fail(err, "setsockopt");
  }
  // IP_FREEBIND (IPV6_FREEBIND for an IPv6 socket, Linux 4.15) lets bind() take an address no
  // interface has: the VIP the peer holds. Without it bind() fails with EADDRNOTAVAIL on the
  // backup, and the alternative, net.ipv4.ip_nonlocal_bind, changes every socket on the host.
  // Once the address arrives the kernel delivers its SYNs to this socket; nothing reopens.
  if (config.freeBind) {
    const bool v6 = address.family() == AF_INET6;
    if (setsockopt(fd.get(), v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? kIpv6FreeBind : IP_FREEBIND, &one, sizeof(one)) != 0)
      return fail(err, "setsockopt");
  }
  // Accepted sockets inherit TCP_NODELAY: small writes go out at once, with no per-flow
  // setsockopt() to say so.
  if (type == SOCK_STREAM && setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
    return fail(err, "setsockopt");
  // A datagram socket bound to every address cannot tell which local address a client sent to,
  // and without it a reply leaves from whatever address the route prefers: a client on a second
  // address (or a resolver that matches replies by address) drops it. IP_PKTINFO makes every
  // recvmsg() carry the datagram's destination address, which the reply then names as its
  // source. On an IPv6 socket IPV6_RECVPKTINFO does it for IPv6 datagrams, and IP_PKTINFO (which
  // Linux accepts on IPv6 sockets too) for IPv4 ones reaching a dual-stack socket.
  if (type == SOCK_DGRAM && isWildcard(address)) {
    if (address.family() == AF_INET6 &&
        setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) != 0)
      return fail(err, "setsockopt");
    if ((address.family() == AF_INET || config.dualStack) &&
        setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) != 0)
      return fail(err, "setsockopt");
  }
  // Datagrams the kernel drops because the socket's receive queue is full are lost before lb4
  // sees them. SO_RXQ_OVFL makes every datagram read carry the socket's drop count so far (a
  // 32-bit counter that wraps), so the worker can count the drops as they happen.
  if (type == SOCK_DGRAM && setsockopt(fd.get(), SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)) != 0)
    return fail(err, "setsockopt");
  if (bind(fd.get(), address.get(), address.length()) != 0) return fail(err, "bind");
  out = std::move(fd);
  return true;
}

}  // namespace

bool isWildcard(const SocketAddress& address) {
  uint8_t ip[16];
  size_t n = address.ipBytes(ip);
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i)
    if (ip[i] != 0) return false;
  return true;
}

int listenerSocketType(Protocol protocol) {
  switch (protocol) {
    case Protocol::Tcp:
      return SOCK_STREAM;
    case Protocol::Udp:
      return SOCK_DGRAM;
  }
  return SOCK_STREAM;  // not reached: every protocol is above (the compiler checks)
}

bool openListenerGroup(const ListenerConfig& config, size_t count, std::vector<UniqueFd>& out,
                       SocketAddress& bound, SocketError& err) {
  out.clear();
  SocketAddress address = config.address;
  if (address.port() != 0) {
    UniqueFd probe;
    if (!openOne(config, address, false, probe, err)) return false;
  }
  for (size_t i = 0; i < count; ++i) {
    UniqueFd fd;
    if (!openOne(config, address, true, fd, err)) {
      out.clear();
      return false;
    }
    if (listenerSocketType(config.protocol) == SOCK_STREAM && listen(fd.get(), config.backlog) != 0) {
      fail(err, "listen");
      out.clear();
      return false;
    }
    if (i == 0) {
      bound.prepareForKernel();
      if (getsockname(fd.get(), bound.get(), bound.lengthPtr()) != 0) {
        fail(err, "getsockname");
        out.clear();
        return false;
      }
      address.setPort(bound.port());
    }
    out.push_back(std::move(fd));
  }
  return true;
}

}  // namespace lb4
