// native/core/vip without changing the host: address parsing, the bytes of the rtnetlink request,
// of gratuitous ARP and of the neighbour advertisement, and the read-only calls against the
// loopback interface. Adding and removing addresses is tested as root inside network namespaces
// (test/ha/).

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <cstring>

#include "harness.h"
#include "vip/address_netlink.h"
#include "vip/announce.h"
#include "vip/vip_address.h"

using lb4::VipAddress;

TEST(vip, parses_cidr_and_ip) {
  VipAddress a;
  REQUIRE(lb4::parseVipCidr("192.0.2.10/24", a));
  CHECK_EQ(a.family, AF_INET);
  CHECK_EQ(a.prefix, 24);
  CHECK_EQ(a.length(), 4u);
  CHECK_EQ(a.toString(), "192.0.2.10/24");
  REQUIRE(lb4::parseVipCidr("2001:DB8::10/64", a));
  CHECK_EQ(a.family, AF_INET6);
  CHECK_EQ(a.length(), 16u);
  CHECK_EQ(a.toString(), "2001:db8::10/64");
  REQUIRE(lb4::parseVipCidr("10.0.0.1/32", a));
  REQUIRE(lb4::parseVipCidr("::1/128", a));
  REQUIRE(lb4::parseVipIp("192.0.2.10", a));
  CHECK_EQ(a.prefix, 32);
  REQUIRE(lb4::parseVipIp("fe80::1", a));
  CHECK_EQ(a.prefix, 128);

  for (const char* bad : {"192.0.2.10", "192.0.2.10/", "192.0.2.10/0", "192.0.2.10/33", "::1/129", "192.0.2.10/2a",
                          "192.0.2.10/-1", "192.0.2.10/0024", "host/24", "/24", "192.0.2.10/24/1", ""}) {
    VipAddress b;
    CHECK(!lb4::parseVipCidr(bad, b));
  }
  CHECK(!lb4::parseVipIp("192.0.2.10/24", a));
  CHECK(!lb4::parseVipIp("[::1]", a));
}

TEST(vip, rtnetlink_request_bytes) {
  VipAddress a;
  REQUIRE(lb4::parseVipCidr("2001:db8::10/64", a));
  std::vector<uint8_t> msg = lb4::buildAddressRequest(RTM_NEWADDR, 7, 3, a);
  REQUIRE(msg.size() >= NLMSG_LENGTH(sizeof(ifaddrmsg)));
  nlmsghdr h;
  std::memcpy(&h, msg.data(), sizeof(h));
  CHECK_EQ(h.nlmsg_len, msg.size());
  CHECK_EQ(h.nlmsg_type, RTM_NEWADDR);
  CHECK_EQ(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  CHECK_EQ(h.nlmsg_seq, 7u);
  ifaddrmsg ifa;
  std::memcpy(&ifa, msg.data() + NLMSG_HDRLEN, sizeof(ifa));
  CHECK_EQ(ifa.ifa_family, AF_INET6);
  CHECK_EQ(ifa.ifa_prefixlen, 64);
  CHECK_EQ(ifa.ifa_index, 3u);
  CHECK_EQ(ifa.ifa_flags, IFA_F_NODAD);  // usable at once: no duplicate address detection

  // Two attributes, IFA_LOCAL then IFA_ADDRESS, each carrying the 16 address bytes.
  size_t offset = NLMSG_SPACE(sizeof(ifaddrmsg));
  for (unsigned short type : {IFA_LOCAL, IFA_ADDRESS}) {
    REQUIRE(offset + RTA_LENGTH(16) <= msg.size());
    rtattr rta;
    std::memcpy(&rta, msg.data() + offset, sizeof(rta));
    CHECK_EQ(rta.rta_type, type);
    CHECK_EQ(rta.rta_len, RTA_LENGTH(16));
    CHECK(std::memcmp(msg.data() + offset + RTA_LENGTH(0), a.bytes, 16) == 0);
    offset += RTA_SPACE(16);
  }
  CHECK_EQ(offset, msg.size());

  REQUIRE(lb4::parseVipCidr("192.0.2.10/24", a));
  msg = lb4::buildAddressRequest(RTM_DELADDR, 8, 3, a);
  std::memcpy(&h, msg.data(), sizeof(h));
  std::memcpy(&ifa, msg.data() + NLMSG_HDRLEN, sizeof(ifa));
  CHECK_EQ(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);  // no CREATE/EXCL on removal
  CHECK_EQ(ifa.ifa_flags, 0);
  CHECK_EQ(ifa.ifa_prefixlen, 24);
  CHECK_EQ(msg.size(), NLMSG_SPACE(sizeof(ifaddrmsg)) + 2 * RTA_SPACE(4));
}

TEST(vip, gratuitous_arp_bytes) {
  const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  const uint8_t ip[4] = {192, 0, 2, 10};
  const uint8_t request[28] = {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,                          // Ethernet, IPv4, request
                               0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 192, 0, 2, 10,                  // sender: our MAC, the VIP
                               0, 0, 0, 0, 0, 0, 192, 0, 2, 10};                                    // target: zero MAC, the VIP
  const uint8_t reply[28] = {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02,                            // reply
                             0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 192, 0, 2, 10,                    //
                             0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 192, 0, 2, 10};                   // target MAC = sender MAC
  std::vector<uint8_t> r = lb4::buildGratuitousArp(false, mac, ip);
  REQUIRE(r.size() == 28u);
  CHECK(std::memcmp(r.data(), request, 28) == 0);
  r = lb4::buildGratuitousArp(true, mac, ip);
  REQUIRE(r.size() == 28u);
  CHECK(std::memcmp(r.data(), reply, 28) == 0);
}

TEST(vip, neighbour_advertisement_bytes) {
  const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  VipAddress a;
  REQUIRE(lb4::parseVipIp("2001:db8::10", a));
  std::vector<uint8_t> p = lb4::buildUnsolicitedAdvertisement(mac, a.bytes);
  REQUIRE(p.size() == 32u);
  CHECK_EQ(p[0], 136);  // neighbour advertisement
  CHECK_EQ(p[1], 0);
  CHECK_EQ(p[2] | p[3], 0);  // the kernel fills the checksum
  CHECK_EQ(p[4], 0x20);      // override only: not router, not solicited
  CHECK_EQ(p[5] | p[6] | p[7], 0);
  CHECK(std::memcmp(&p[8], a.bytes, 16) == 0);
  CHECK_EQ(p[24], 2);  // target link-layer address option
  CHECK_EQ(p[25], 1);  // 8 bytes
  CHECK(std::memcmp(&p[26], mac, 6) == 0);
}

TEST(vip, read_only_kernel_calls) {
  VipAddress a;
  REQUIRE(lb4::parseVipIp("127.0.0.1", a));
  bool present = false;
  lb4::VipError e = lb4::hasAddress("lo", a, present);
  CHECK(e.ok());
  CHECK(present);
  REQUIRE(lb4::parseVipIp("127.0.0.2", a));
  e = lb4::hasAddress("lo", a, present);
  CHECK(e.ok());
  CHECK(!present);
  REQUIRE(lb4::parseVipIp("::1", a));
  e = lb4::hasAddress("lo", a, present);
  CHECK(e.ok());  // present unless IPv6 is disabled here

  e = lb4::hasAddress("lb4-no-such-if", a, present);
  CHECK_EQ(e.error, ENODEV);
  CHECK_EQ(std::string(e.syscall), "if_nametoindex");
  e = lb4::hasAddress("an-interface-name-far-too-long", a, present);
  CHECK_EQ(e.error, ENODEV);
  REQUIRE(lb4::parseVipCidr("192.0.2.10/24", a));
  CHECK_EQ(lb4::addAddress("lb4-no-such-if", a).error, ENODEV);
  CHECK_EQ(lb4::removeAddress("lb4-no-such-if", a).error, ENODEV);

  // Loopback has no Ethernet address: nothing to announce (EPERM first when not root).
  e = lb4::announceAddress("lo", a, 1);
  CHECK(e.error == EOPNOTSUPP || e.error == EPERM);
  CHECK(lb4::announceAddress("lo", a, 0).ok());  // zero rounds: nothing sent, nothing opened
}
