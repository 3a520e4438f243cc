// Gratuitous ARP (RFC 5227 section 3 "announcement", and the older gratuitous reply) and
// unsolicited neighbour advertisements (RFC 4861 section 7.2.6).
//
// What a Linux neighbour does with them matters more than the RFCs, since that is what the
// clients and routers of a load balancer mostly are:
// - ARP: by default (arp_accept=0) a gratuitous ARP updates an entry the host already has and
//   creates none. That is what a takeover needs: every host that talked to the VIP has an entry
//   pointing at the old node. The kernel counts a packet as gratuitous (and so overrides an entry
//   it updated less than locktime ago) when sender IP equals target IP, and, for a reply, when
//   the target MAC equals the sender MAC.
// - NA: an unsolicited advertisement likewise updates only an existing entry (unless
//   accept_untracked_na is set); with the override flag it replaces the cached MAC address and
//   marks the entry STALE, so the next packet goes to the new node and is then confirmed.

#include "vip/announce.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "io/unique_fd.h"

namespace lb4 {

namespace {

// The interface's index and Ethernet address. Links without one (loopback, tun, WireGuard)
// have no ARP or neighbour discovery to update: EOPNOTSUPP.
VipError ethernetInterface(int fd, const std::string& ifname, int& index, uint8_t mac[6]) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) return VipError::of(ENODEV, "if_nametoindex");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  if (ioctl(fd, SIOCGIFINDEX, &ifr) != 0) return VipError::of(errno, "ioctl(SIOCGIFINDEX)");
  index = ifr.ifr_ifindex;
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) return VipError::of(errno, "ioctl(SIOCGIFHWADDR)");
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
    return VipError::of(EOPNOTSUPP, "announce", "interface " + ifname + " is not Ethernet: there is no ARP or neighbour cache to update");
  std::memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
  return VipError::none();
}

VipError sendPacket(int fd, const void* data, size_t length, const sockaddr* to, socklen_t toLength, const char* syscall) {
  ssize_t n;
  do {
    n = sendto(fd, data, length, 0, to, toLength);
  } while (n < 0 && errno == EINTR);
  // ENETDOWN: the interface is down. ENOBUFS: its queue is full; a later round may pass.
  if (n < 0) return VipError::of(errno, syscall);
  return VipError::none();
}

VipError announceIpv4(const std::string& ifname, const VipAddress& address, int count) {
  // SOCK_DGRAM: the kernel writes the Ethernet header from sockaddr_ll (broadcast destination,
  // our MAC as source), so only the ARP payload is built here. Protocol 0: this socket receives
  // nothing; with ETH_P_ARP it would be handed a copy of every ARP packet until closed.
  UniqueFd fd(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return VipError::of(errno, "socket(AF_PACKET)");
  int index = 0;
  uint8_t mac[6];
  VipError e = ethernetInterface(fd.get(), ifname, index, mac);
  if (!e.ok()) return e;
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = index;
  to.sll_halen = ETH_ALEN;
  std::memset(to.sll_addr, 0xff, ETH_ALEN);
  // Both kinds each round: Linux and most stacks take the request; some older stacks and
  // switches only learn from replies (arping -A sends those).
  std::vector<uint8_t> request = buildGratuitousArp(false, mac, address.bytes);
  std::vector<uint8_t> reply = buildGratuitousArp(true, mac, address.bytes);
  for (int i = 0; i < count; ++i) {
    for (const auto* packet : {&request, &reply}) {
      e = sendPacket(fd.get(), packet->data(), packet->size(), reinterpret_cast<sockaddr*>(&to), sizeof(to), "sendto(ARP)");
      if (!e.ok()) return e;
    }
  }
  return VipError::none();
}

VipError announceIpv6(const std::string& ifname, const VipAddress& address, int count) {
  // A raw ICMPv6 socket: the kernel builds the IPv6 header and always computes the ICMPv6
  // checksum (RFC 3542 section 3.1), pseudo-header included.
  UniqueFd fd(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
  if (!fd) return VipError::of(errno, "socket(ICMPv6)");
  int index = 0;
  uint8_t mac[6];
  VipError e = ethernetInterface(fd.get(), ifname, index, mac);
  if (!e.ok()) return e;
  // This socket only sends: block every ICMPv6 type, or it would be queued a copy of each one
  // the host receives until it is closed.
  icmp6_filter filter;
  ICMP6_FILTER_SETBLOCKALL(&filter);
  if (setsockopt(fd.get(), IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof(filter)) != 0) return VipError::of(errno, "setsockopt(ICMP6_FILTER)");
  // Neighbour discovery messages must arrive with hop limit 255 (RFC 4861 section 7.1.2): it
  // proves no router forwarded them. The multicast default is 1, which receivers drop.
  int hops = 255;
  if (setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) != 0) return VipError::of(errno, "setsockopt(IPV6_MULTICAST_HOPS)");
  if (setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof(index)) != 0) return VipError::of(errno, "setsockopt(IPV6_MULTICAST_IF)");
  // Not to ourselves: our own stack would only discard an advertisement of its own address.
  int loop = 0;
  if (setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof(loop)) != 0) return VipError::of(errno, "setsockopt(IPV6_MULTICAST_LOOP)");

  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);  // all nodes on the link
  to.sin6_scope_id = static_cast<uint32_t>(index);
  std::vector<uint8_t> advert = buildUnsolicitedAdvertisement(mac, address.bytes);

  // The VIP itself as the source address, given per packet with IPV6_PKTINFO. The kernel accepts
  // it only if the address is on the host and not tentative (else EINVAL): which holds for a VIP
  // just added, since it is added without DAD (address_netlink.cc).
  alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  iovec iov{advert.data(), advert.size()};
  msghdr msg{};
  msg.msg_name = &to;
  msg.msg_namelen = sizeof(to);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = IPPROTO_IPV6;
  cmsg->cmsg_type = IPV6_PKTINFO;
  cmsg->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
  in6_pktinfo info{};
  std::memcpy(&info.ipi6_addr, address.bytes, 16);
  info.ipi6_ifindex = static_cast<unsigned>(index);
  std::memcpy(CMSG_DATA(cmsg), &info, sizeof(info));

  for (int i = 0; i < count; ++i) {
    ssize_t n;
    do {
      n = sendmsg(fd.get(), &msg, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      int err = errno;
      if (err == EINVAL) return VipError::of(err, "sendmsg(NA)", "the address must be on " + ifname + " and not tentative");
      return VipError::of(err, "sendmsg(NA)");
    }
  }
  return VipError::none();
}

}  // namespace

std::vector<uint8_t> buildGratuitousArp(bool reply, const uint8_t mac[6], const uint8_t ipv4[4]) {
  std::vector<uint8_t> p(28, 0);
  uint16_t hrd = htons(ARPHRD_ETHER), pro = htons(ETH_P_IP), op = htons(reply ? ARPOP_REPLY : ARPOP_REQUEST);
  std::memcpy(&p[0], &hrd, 2);
  std::memcpy(&p[2], &pro, 2);
  p[4] = ETH_ALEN;
  p[5] = 4;
  std::memcpy(&p[6], &op, 2);
  std::memcpy(&p[8], mac, 6);     // sender MAC: the new owner
  std::memcpy(&p[14], ipv4, 4);   // sender IP: the VIP
  if (reply) std::memcpy(&p[18], mac, 6);  // target MAC: zero in a request, the sender's in a reply
  std::memcpy(&p[24], ipv4, 4);   // target IP: the VIP again; sender IP == target IP is what makes it gratuitous
  return p;
}

std::vector<uint8_t> buildUnsolicitedAdvertisement(const uint8_t mac[6], const uint8_t ipv6[16]) {
  std::vector<uint8_t> p(32, 0);
  p[0] = ND_NEIGHBOR_ADVERT;
  p[1] = 0;  // code; bytes 2-3, the checksum, are the kernel's
  // Override (replace the cached MAC address). Not solicited: a solicited advertisement to a
  // multicast address is invalid. Not router: the VIP is a service address, not a gateway.
  p[4] = 0x20;
  std::memcpy(&p[8], ipv6, 16);  // target: the VIP
  p[24] = ND_OPT_TARGET_LINKADDR;
  p[25] = 1;  // option length in units of 8 bytes
  std::memcpy(&p[26], mac, 6);
  return p;
}

VipError announceAddress(const std::string& ifname, const VipAddress& address, int count) {
  if (count < 1) return VipError::none();
  if (address.family == AF_INET) return announceIpv4(ifname, address, count);
  if (address.family == AF_INET6) return announceIpv6(ifname, address, count);
  return VipError::of(EAFNOSUPPORT, "announce");
}

}  // namespace lb4
