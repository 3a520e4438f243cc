#include <arpa/inet.h>
#include <sys/socket.h>

#include "harness.h"
#include "io/socket_address.h"
#include "test_util.h"

using lb4::SocketAddress;

TEST(socket_address, parses_ipv4) {
  SocketAddress a;
  REQUIRE(SocketAddress::fromIp("127.0.0.1", 8080, a));
  CHECK_EQ(a.family(), AF_INET);
  CHECK_EQ(a.port(), 8080);
  CHECK_EQ(a.ip(), "127.0.0.1");
  CHECK_EQ(a.toString(), "127.0.0.1:8080");
  CHECK_EQ(a.length(), sizeof(sockaddr_in));
  const auto* sin = reinterpret_cast<const sockaddr_in*>(a.get());
  CHECK_EQ(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
  CHECK_EQ(sin->sin_port, htons(8080));
}

TEST(socket_address, parses_ipv6) {
  SocketAddress a;
  REQUIRE(SocketAddress::fromIp("::1", 443, a));
  CHECK_EQ(a.family(), AF_INET6);
  CHECK_EQ(a.port(), 443);
  CHECK_EQ(a.ip(), "::1");
  CHECK_EQ(a.toString(), "[::1]:443");
  CHECK_EQ(a.length(), sizeof(sockaddr_in6));

  SocketAddress b;
  REQUIRE(SocketAddress::fromIp("2001:DB8:0:0:0:0:0:1", 1, b));
  CHECK_EQ(b.toString(), "[2001:db8::1]:1");  // canonical, lower case, compressed
  SocketAddress any;
  REQUIRE(SocketAddress::fromIp("::", 0, any));
  CHECK_EQ(any.toString(), "[::]:0");
}

TEST(socket_address, rejects_bad_input) {
  const char* bad[] = {"",           "localhost",   "1.2.3",       "256.1.1.1", "1.2.3.4:80", "[::1]",
                       "::1::2",     " 1.2.3.4",    "1.2.3.4 ",    "fe80::1%lo", "1.2.3.4/24", "::g",
                       "0x7f.0.0.1", "12345::1:2:3:4:5:6:7"};
  for (const char* ip : bad) {
    SocketAddress a;
    SocketAddress::fromIp("127.0.0.1", 9, a);  // something to overwrite
    bool ok = SocketAddress::fromIp(ip, 80, a);
    if (ok) lb4test::fail(__FILE__, __LINE__, std::string("accepted \"") + ip + "\"");
    // A failed parse leaves an empty address, not the previous one.
    CHECK_EQ(a.family(), AF_UNSPEC);
    CHECK_EQ(a.port(), 0);
  }
}

TEST(socket_address, sets_and_gets_port) {
  SocketAddress v4 = lb4test::address("10.1.2.3", 1);
  v4.setPort(65535);
  CHECK_EQ(v4.port(), 65535);
  CHECK_EQ(v4.toString(), "10.1.2.3:65535");
  v4.setPort(0);
  CHECK_EQ(v4.port(), 0);

  SocketAddress v6 = lb4test::address("fd00::5", 1);
  v6.setPort(8443);
  CHECK_EQ(v6.port(), 8443);
  CHECK_EQ(v6.toString(), "[fd00::5]:8443");

  // An empty address has no port to set and stays empty.
  SocketAddress none;
  none.setPort(80);
  CHECK_EQ(none.family(), AF_UNSPEC);
  CHECK_EQ(none.port(), 0);
  CHECK_EQ(none.length(), 0u);
}

TEST(socket_address, shows_v4_mapped_as_v4) {
  SocketAddress a;
  REQUIRE(SocketAddress::fromIp("::ffff:10.0.0.1", 80, a));
  CHECK_EQ(a.family(), AF_INET6);  // still an IPv6 socket address
  CHECK_EQ(a.ip(), "10.0.0.1");
  CHECK_EQ(a.toString(), "10.0.0.1:80");  // and no brackets
  // Not every address with ffff in it is v4-mapped.
  SocketAddress b;
  REQUIRE(SocketAddress::fromIp("::ffff:0:a00:1", 80, b));
  CHECK_EQ(b.toString(), "[::ffff:0:a00:1]:80");
}

TEST(socket_address, reads_back_from_the_kernel) {
  SocketAddress bound;
  lb4::UniqueFd fd = lb4test::listenOn("127.0.0.1", 0, bound);
  REQUIRE(fd);
  SocketAddress a;
  a.prepareForKernel();
  CHECK_EQ(a.length(), sizeof(sockaddr_storage));
  REQUIRE(getsockname(fd.get(), a.get(), a.lengthPtr()) == 0);
  CHECK_EQ(a.length(), sizeof(sockaddr_in));
  CHECK_NE(a.port(), 0);
  CHECK_EQ(a.toString(), "127.0.0.1:" + std::to_string(a.port()));
}
