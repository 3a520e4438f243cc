#pragma once
// A virtual IP as the kernel takes it: family, the 4 or 16 address bytes, and a prefix length.
// Parsed from the text the control plane sends ("192.0.2.10/24", "2001:db8::10/64",
// "192.0.2.10"), and the error type every vip function returns.

#include <netinet/in.h>

#include <cstdint>
#include <string>

namespace lb4 {

struct VipAddress {
  int family = AF_UNSPEC;  // AF_INET or AF_INET6
  uint8_t bytes[16] = {};
  uint8_t prefix = 0;

  size_t length() const { return family == AF_INET ? 4 : 16; }
  std::string toString() const;  // "192.0.2.10/24"
};

// "ip/prefix" with a prefix of 1-32 (IPv4) or 1-128 (IPv6). False on anything else.
bool parseVipCidr(const std::string& text, VipAddress& out);
// A bare numeric address; the prefix is set to the full length (32 or 128).
bool parseVipIp(const std::string& text, VipAddress& out);

// What went wrong, errno-style: the failing call and its errno, plus the kernel's own words when
// it gave some (a netlink extended ack such as "Invalid prefix for given prefix length").
struct VipError {
  int error = 0;
  const char* syscall = "";
  std::string detail;

  bool ok() const { return error == 0; }
  static VipError none() { return {}; }
  static VipError of(int error, const char* syscall, std::string detail = {}) { return {error, syscall, std::move(detail)}; }
};

}  // namespace lb4
