#pragma once
// A set of IPv4 and IPv6 networks (CIDRs) asked one question on the hot path: does it hold this
// address? Built once on the control thread, then read-only. Each family keeps one sorted array
// of masked addresses per prefix length present, so a lookup is a mask and a binary search per
// distinct length (at most 33 for IPv4, 129 for IPv6; a handful in practice), never a scan of
// every network. An IPv4-mapped IPv6 address (an IPv4 client of a dual-stack listener) is looked
// up as the IPv4 address it is.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/socket_address.h"

namespace lb4 {

class NetworkSet {
 public:
  // Adds "10.0.0.0/8", "2001:db8::/32" or a bare address (one host). Returns false, adding
  // nothing, for anything else.
  bool add(const std::string& cidr);
  bool empty() const { return v4_.empty() && v6_.empty(); }
  // Distinct networks held (one added twice counts once).
  size_t size() const;
  bool contains(const SocketAddress& address) const;

 private:
  using V6 = std::pair<uint64_t, uint64_t>;  // high, low 64 bits
  template <typename Word>
  struct Length {
    unsigned prefix = 0;
    std::vector<Word> networks;  // masked, sorted, unique
  };
  static uint32_t maskV4(uint32_t a, unsigned prefix);
  static V6 maskV6(V6 a, unsigned prefix);

  std::vector<Length<uint32_t>> v4_;
  std::vector<Length<V6>> v6_;
};

}  // namespace lb4
