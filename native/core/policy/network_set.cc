// Membership of an address in a set of networks. See network_set.h.

#include "policy/network_set.h"

#include <arpa/inet.h>

#include <algorithm>

namespace lb4 {

namespace {

uint64_t load64(const uint8_t* b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | b[i];
  return v;
}

template <typename Word>
void insertSorted(std::vector<Word>& list, Word w) {
  auto at = std::lower_bound(list.begin(), list.end(), w);
  if (at == list.end() || *at != w) list.insert(at, w);
}

}  // namespace

uint32_t NetworkSet::maskV4(uint32_t a, unsigned prefix) { return prefix == 0 ? 0 : a & (0xFFFFFFFFu << (32 - prefix)); }

NetworkSet::V6 NetworkSet::maskV6(V6 a, unsigned prefix) {
  if (prefix == 0) return {0, 0};
  if (prefix <= 64) return {a.first & (~0ull << (64 - prefix)), 0};
  if (prefix == 128) return a;
  return {a.first, a.second & (~0ull << (128 - prefix))};
}

bool NetworkSet::add(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  const std::string ip = cidr.substr(0, slash);
  uint8_t bytes[16] = {};
  unsigned width;
  if (inet_pton(AF_INET, ip.c_str(), bytes) == 1) {
    width = 32;
  } else if (inet_pton(AF_INET6, ip.c_str(), bytes) == 1) {
    width = 128;
  } else {
    return false;
  }
  unsigned prefix = width;
  if (slash != std::string::npos) {
    const std::string bits = cidr.substr(slash + 1);
    if (bits.empty() || bits.size() > 3 || bits.find_first_not_of("0123456789") != std::string::npos) return false;
    prefix = static_cast<unsigned>(std::stoul(bits));
    if (prefix > width) return false;
  }
  if (width == 32) {
    const uint32_t a = static_cast<uint32_t>(load64(bytes) >> 32);
    auto it = std::find_if(v4_.begin(), v4_.end(), [&](const auto& l) { return l.prefix == prefix; });
    if (it == v4_.end()) it = v4_.insert(v4_.end(), Length<uint32_t>{prefix, {}});
    insertSorted(it->networks, maskV4(a, prefix));
  } else {
    const V6 a{load64(bytes), load64(bytes + 8)};
    auto it = std::find_if(v6_.begin(), v6_.end(), [&](const auto& l) { return l.prefix == prefix; });
    if (it == v6_.end()) it = v6_.insert(v6_.end(), Length<V6>{prefix, {}});
    insertSorted(it->networks, maskV6(a, prefix));
  }
  return true;
}

size_t NetworkSet::size() const {
  size_t n = 0;
  for (const auto& l : v4_) n += l.networks.size();
  for (const auto& l : v6_) n += l.networks.size();
  return n;
}

bool NetworkSet::contains(const SocketAddress& address) const {
  uint8_t bytes[16] = {};
  const size_t length = address.ipBytes(bytes);
  if (length == 4) {
    const uint32_t a = static_cast<uint32_t>(load64(bytes) >> 32);
    for (const auto& l : v4_)
      if (std::binary_search(l.networks.begin(), l.networks.end(), maskV4(a, l.prefix))) return true;
    return false;
  }
  if (length != 16) return false;
  const V6 a{load64(bytes), load64(bytes + 8)};
  for (const auto& l : v6_)
    if (std::binary_search(l.networks.begin(), l.networks.end(), maskV6(a, l.prefix))) return true;
  return false;
}

}  // namespace lb4
