#pragma once
// Hashes for balancing: 64-bit FNV-1a, which is small, has no seed and gives the same value on
// every node and every run, so a backend's identity hash and a client's flow hash agree across
// the two nodes of a pair (and with a consistent-hashing table built from them).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "io/socket_address.h"

namespace lb4 {

constexpr uint64_t kFnv64Offset = 14695981039346656037ULL;
constexpr uint64_t kFnv64Prime = 1099511628211ULL;

constexpr uint64_t fnv1a64(const uint8_t* data, size_t n, uint64_t hash = kFnv64Offset) {
  for (size_t i = 0; i < n; ++i) {
    hash ^= data[i];
    hash *= kFnv64Prime;
  }
  return hash;
}

inline uint64_t fnv1a64(std::string_view text) {
  return fnv1a64(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// SplitMix64's finaliser: spreads a hash's bits so that every output bit depends on every input
// bit. FNV-1a of a few address bytes has weak low bits; a table index taken modulo its size
// needs them strong.
constexpr uint64_t mixHash(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// A backend's identity hash (BackendEntry::idHash), from its stable id "<listener>/<backend>".
inline uint64_t backendIdHash(std::string_view id) { return fnv1a64(id); }

// The flow hash a picker receives: the client's IP address only, not its port, so that a
// hashing algorithm keeps every connection of one client on one backend. An IPv4 client seen
// on a dual-stack listener (::ffff:a.b.c.d) hashes as the IPv4 address it is.
inline uint64_t clientFlowHash(const SocketAddress& client) {
  uint8_t ip[16];
  size_t n = client.ipBytes(ip);
  return fnv1a64(ip, n);
}

}  // namespace lb4
