#pragma once
// Telling the link that an address has moved to this host, so neighbours send to its MAC address
// at once instead of waiting for their cache entry of the old host to go stale (tens of seconds):
// gratuitous ARP for IPv4, an unsolicited neighbour advertisement for IPv6. Each call opens a
// socket, sends `count` rounds back to back and closes it. Needs CAP_NET_RAW.

#include <cstdint>
#include <string>
#include <vector>

#include "vip/vip_address.h"

namespace lb4 {

// Sends `count` rounds for `address` out of `ifname`: per round an ARP request and an ARP reply
// (IPv4), or one neighbour advertisement (IPv6). An IPv6 address must be on the interface, since
// it is the advertisement's source (EINVAL otherwise); ARP does not check. EOPNOTSUPP on a link
// that is not Ethernet, ENETDOWN on one that is down.
VipError announceAddress(const std::string& ifname, const VipAddress& address, int count);

// The ARP payload (28 bytes, no Ethernet header) of a gratuitous request or reply.
std::vector<uint8_t> buildGratuitousArp(bool reply, const uint8_t mac[6], const uint8_t ipv4[4]);
// The ICMPv6 neighbour advertisement (32 bytes, checksum left 0 for the kernel) with the
// override flag and a target link-layer address option.
std::vector<uint8_t> buildUnsolicitedAdvertisement(const uint8_t mac[6], const uint8_t ipv6[16]);

}  // namespace lb4
