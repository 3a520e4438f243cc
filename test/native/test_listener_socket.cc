#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "harness.h"
#include "tcp/listener_socket.h"
#include "test_util.h"

using lb4::ListenerConfig;
using lb4::SocketAddress;
using lb4::SocketError;
using lb4::UniqueFd;
using lb4::openListenerGroup;

namespace {

ListenerConfig config(const char* ip, uint16_t port, bool dualStack = false) {
  ListenerConfig c;
  c.name = "test";
  c.address = lb4test::address(ip, port);
  c.dualStack = dualStack;
  return c;
}

int intOption(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof(v);
  getsockopt(fd, level, name, &v, &len);
  return v;
}

bool ipv6Loopback() {
  UniqueFd fd(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  SocketAddress a = lb4test::address("::1", 0);
  return fd && bind(fd.get(), a.get(), a.length()) == 0;
}

// Connects to `to` and accepts on whichever socket of `group` the kernel chose; returns the peer
// address the listener saw, or an empty address.
SocketAddress connectAndAccept(const SocketAddress& to, std::vector<UniqueFd>& group) {
  int err = 0;
  UniqueFd client = lb4test::connectTo(to, 2000, &err);
  if (!client) return SocketAddress();
  std::vector<pollfd> fds;
  for (auto& fd : group) fds.push_back({fd.get(), POLLIN, 0});
  if (poll(fds.data(), fds.size(), 2000) <= 0) return SocketAddress();
  for (auto& p : fds) {
    if (!(p.revents & POLLIN)) continue;
    SocketAddress peer;
    peer.prepareForKernel();
    UniqueFd accepted(accept4(p.fd, peer.get(), peer.lengthPtr(), SOCK_CLOEXEC));
    if (accepted) return peer;
  }
  return SocketAddress();
}

}  // namespace

TEST(listener_socket, port_zero_shares_one_port_across_the_group) {
  std::vector<UniqueFd> group;
  SocketAddress bound;
  SocketError err;
  REQUIRE(openListenerGroup(config("127.0.0.1", 0), 4, group, bound, err));
  REQUIRE(group.size() == 4);
  CHECK_NE(bound.port(), 0);
  CHECK_EQ(bound.toString(), "127.0.0.1:" + std::to_string(bound.port()));
  for (auto& fd : group) {
    CHECK(fd);
    CHECK_EQ(lb4test::localAddress(fd.get()).toString(), bound.toString());
    CHECK_EQ(intOption(fd.get(), SOL_SOCKET, SO_REUSEPORT), 1);
    CHECK_EQ(intOption(fd.get(), SOL_SOCKET, SO_ACCEPTCONN), 1);
  }
  // The group accepts connections.
  SocketAddress peer = connectAndAccept(bound, group);
  CHECK_EQ(peer.ip(), "127.0.0.1");
}

TEST(listener_socket, a_fixed_free_port_works) {
  uint16_t port = lb4test::unusedPort();
  REQUIRE(port != 0);
  std::vector<UniqueFd> group;
  SocketAddress bound;
  SocketError err;
  REQUIRE(openListenerGroup(config("127.0.0.1", port), 2, group, bound, err));
  CHECK_EQ(group.size(), 2u);
  CHECK_EQ(bound.port(), port);
  // Closing the group frees the port for the next one (a restart).
  group.clear();
  std::vector<UniqueFd> again;
  CHECK(openListenerGroup(config("127.0.0.1", port), 2, again, bound, err));
}

TEST(listener_socket, port_held_by_a_plain_listener_is_in_use) {
  SocketAddress taken;
  UniqueFd plain = lb4test::listenOn("127.0.0.1", 0, taken);  // no SO_REUSEADDR, no SO_REUSEPORT
  REQUIRE(plain);
  std::vector<UniqueFd> group;
  group.emplace_back(UniqueFd());  // openListenerGroup clears what it is given
  SocketAddress bound;
  SocketError err;
  CHECK(!openListenerGroup(config("127.0.0.1", taken.port()), 3, group, bound, err));
  CHECK_EQ(err.error, EADDRINUSE);
  CHECK_EQ(std::string(err.syscall), "bind");
  CHECK(group.empty());
  // The harness checks that no descriptor stayed open.
}

TEST(listener_socket, port_held_by_another_reuseport_group_is_in_use) {
  // SO_REUSEPORT alone would let a second group of the same user join the first and share its
  // connections without an error; the probe socket catches it.
  std::vector<UniqueFd> first;
  SocketAddress bound;
  SocketError err;
  REQUIRE(openListenerGroup(config("127.0.0.1", 0), 2, first, bound, err));
  std::vector<UniqueFd> second;
  SocketAddress bound2;
  SocketError err2;
  CHECK(!openListenerGroup(config("127.0.0.1", bound.port()), 2, second, bound2, err2));
  CHECK_EQ(err2.error, EADDRINUSE);
  CHECK_EQ(std::string(err2.syscall), "bind");
  CHECK(second.empty());

  // Likewise a plain reuseport listener (another program's) on the port.
  SocketAddress other;
  UniqueFd foreign = lb4test::listenOn("127.0.0.1", 0, other, true, true);
  REQUIRE(foreign);
  CHECK(!openListenerGroup(config("127.0.0.1", other.port()), 1, second, bound2, err2));
  CHECK_EQ(err2.error, EADDRINUSE);
  CHECK(second.empty());
}

TEST(listener_socket, ipv6_loopback) {
  if (!ipv6Loopback()) {
    lb4test::note("skipped: no IPv6 loopback here");
    return;
  }
  std::vector<UniqueFd> group;
  SocketAddress bound;
  SocketError err;
  REQUIRE(openListenerGroup(config("::1", 0), 2, group, bound, err));
  CHECK_EQ(bound.family(), AF_INET6);
  CHECK_NE(bound.port(), 0);
  CHECK_EQ(bound.toString(), "[::1]:" + std::to_string(bound.port()));
  for (auto& fd : group) CHECK_EQ(intOption(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY), 1);
  SocketAddress peer = connectAndAccept(bound, group);
  CHECK_EQ(peer.ip(), "::1");
  // v6-only: the same port on 127.0.0.1 is not this listener.
  int e = 0;
  UniqueFd v4 = lb4test::connectTo(lb4test::address("127.0.0.1", bound.port()), 1000, &e);
  CHECK(!v4);
  CHECK_EQ(e, ECONNREFUSED);
}

TEST(listener_socket, dual_stack_accepts_ipv4) {
  if (!ipv6Loopback()) {
    lb4test::note("skipped: no IPv6 here");
    return;
  }
  std::vector<UniqueFd> group;
  SocketAddress bound;
  SocketError err;
  REQUIRE(openListenerGroup(config("::", 0, true), 2, group, bound, err));
  for (auto& fd : group) CHECK_EQ(intOption(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY), 0);
  SocketAddress peer = connectAndAccept(lb4test::address("127.0.0.1", bound.port()), group);
  CHECK_EQ(peer.family(), AF_INET6);  // ::ffff:127.0.0.1 ...
  CHECK_EQ(peer.ip(), "127.0.0.1");   // ... shown as the IPv4 address it is
  CHECK_EQ(peer.toString().rfind("127.0.0.1:", 0), 0u);
  SocketAddress peer6 = connectAndAccept(lb4test::address("::1", bound.port()), group);
  CHECK_EQ(peer6.ip(), "::1");
}

TEST(listener_socket, failure_on_a_later_socket_closes_the_earlier_ones) {
  // Leave exactly two descriptor numbers free under RLIMIT_NOFILE: the first two sockets of the
  // group open, the third fails with EMFILE, and the two must be closed again.
  rlimit saved;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  int free = 0;
  rlim_t limit = 0;
  for (int fd = 0; fd < 4096 && free < 2; ++fd) {
    if (!lb4test::isOpen(fd)) {
      ++free;
      limit = static_cast<rlim_t>(fd) + 1;
    }
  }
  REQUIRE(free == 2);
  rlimit tight = saved;
  tight.rlim_cur = limit;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
  std::vector<UniqueFd> group;
  SocketAddress bound;
  SocketError err;
  bool ok = openListenerGroup(config("127.0.0.1", 0), 3, group, bound, err);
  setrlimit(RLIMIT_NOFILE, &saved);
  CHECK(!ok);
  CHECK_EQ(err.error, EMFILE);
  CHECK_EQ(std::string(err.syscall), "socket");
  CHECK(group.empty());
  // The harness checks that the two sockets opened before the failure were closed.
}

TEST(listener_socket, an_unusable_address_fails_cleanly) {
  ListenerConfig c;  // no address at all
  std::vector<UniqueFd> group;
  SocketAddress bound;
  SocketError err;
  CHECK(!openListenerGroup(c, 2, group, bound, err));
  CHECK_NE(err.error, 0);
  CHECK_EQ(std::string(err.syscall), "socket");
  CHECK(group.empty());
}

// The accept path sets no TCP_NODELAY per flow: accepted sockets must inherit it from the
// listening socket.
TEST(listener_socket, accepted_sockets_inherit_nodelay) {
  std::vector<UniqueFd> group;
  SocketAddress bound;
  SocketError err;
  REQUIRE(openListenerGroup(config("127.0.0.1", 0), 1, group, bound, err));
  CHECK_EQ(intOption(group[0].get(), IPPROTO_TCP, TCP_NODELAY), 1);
  UniqueFd client = lb4test::connectTo(bound, 2000);
  REQUIRE(client);
  pollfd p{group[0].get(), POLLIN, 0};
  REQUIRE(poll(&p, 1, 2000) == 1);
  UniqueFd accepted(accept4(group[0].get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(accepted);
  CHECK_EQ(intOption(accepted.get(), IPPROTO_TCP, TCP_NODELAY), 1);
}
