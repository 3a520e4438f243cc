// Matching client addresses against the trusted networks. See trusted_networks.h.

#include "proxy_protocol/trusted_networks.h"

#include <arpa/inet.h>

#include <cstring>

namespace lb4 {

bool TrustedNetworks::add(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  const std::string ip = cidr.substr(0, slash);
  Network n{};
  if (inet_pton(AF_INET, ip.c_str(), n.bytes) == 1) {
    n.length = 4;
  } else if (inet_pton(AF_INET6, ip.c_str(), n.bytes) == 1) {
    n.length = 16;
  } else {
    return false;
  }
  const unsigned width = n.length * 8u;
  unsigned prefix = width;
  if (slash != std::string::npos) {
    const std::string bits = cidr.substr(slash + 1);
    if (bits.empty() || bits.size() > 3 || bits.find_first_not_of("0123456789") != std::string::npos) return false;
    prefix = static_cast<unsigned>(std::stoul(bits));
    if (prefix > width) return false;
  }
  n.prefix = static_cast<uint8_t>(prefix);
  networks_.push_back(n);
  return true;
}

bool TrustedNetworks::contains(const SocketAddress& address) const {
  uint8_t bytes[16];
  const size_t length = address.ipBytes(bytes);
  for (const Network& n : networks_) {
    if (n.length != length) continue;
    const unsigned whole = n.prefix / 8u, rest = n.prefix % 8u;
    if (std::memcmp(n.bytes, bytes, whole) != 0) continue;
    if (rest != 0) {
      const uint8_t mask = static_cast<uint8_t>(0xFF00u >> rest);
      if ((n.bytes[whole] & mask) != (bytes[whole] & mask)) continue;
    }
    return true;
  }
  return false;
}

}  // namespace lb4
