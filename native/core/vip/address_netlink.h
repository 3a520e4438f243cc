#pragma once
// Adding, removing and finding an address on an interface through rtnetlink (RTM_NEWADDR,
// RTM_DELADDR, RTM_GETADDR on a NETLINK_ROUTE socket), the way `ip addr` does, without running
// it. Each call opens its own netlink socket, sends one request and reads the kernel's answer
// before returning: it blocks the calling thread for as long as the kernel takes to apply one
// address change (microseconds). Needs CAP_NET_ADMIN in the network namespace for add/remove.

#include <cstdint>
#include <string>
#include <vector>

#include "vip/vip_address.h"

namespace lb4 {

// Adds `address` to interface `ifname`. EEXIST when the interface has it already (nothing
// changed), ENODEV when there is no such interface, EPERM without CAP_NET_ADMIN.
VipError addAddress(const std::string& ifname, const VipAddress& address);

// Removes `address` (same prefix length) from `ifname`. EADDRNOTAVAIL when it is not there.
VipError removeAddress(const std::string& ifname, const VipAddress& address);

// Sets `present` to whether `ifname` has `address` (prefix length ignored).
VipError hasAddress(const std::string& ifname, const VipAddress& address, bool& present);

// The request RTM_NEWADDR/RTM_DELADDR sends, built apart from the socket so tests can read it.
std::vector<uint8_t> buildAddressRequest(uint16_t type, uint32_t sequence, int ifindex, const VipAddress& address);

}  // namespace lb4
