#pragma once
// The networks a listener takes PROXY protocol headers from (`--accept-proxy CIDR`). A client
// outside them is refused: it could name any address as its own. An IPv4-mapped IPv6 client (an
// IPv4 client of a dual-stack listener) matches the IPv4 networks.

#include <cstdint>
#include <string>
#include <vector>

#include "io/socket_address.h"

namespace lb4 {

class TrustedNetworks {
 public:
  // Adds "10.0.0.0/8", "2001:db8::/32", or a bare address (a single host). Returns false, adding
  // nothing, for anything else: a bad address, a prefix past the family's width.
  bool add(const std::string& cidr);
  bool empty() const { return networks_.empty(); }
  size_t size() const { return networks_.size(); }
  bool contains(const SocketAddress& address) const;

 private:
  struct Network {
    uint8_t bytes[16];
    uint8_t length;  // 4 or 16
    uint8_t prefix;  // bits
  };
  std::vector<Network> networks_;
};

}  // namespace lb4
