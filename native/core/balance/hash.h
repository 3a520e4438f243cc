#pragma once
// Hashes for balancing: 64-bit FNV-1a, which is small, has no seed and gives the same value on
// every node and every run, so a backend's identity hash and a client's flow hash agree across
// the two nodes of a pair (and with a consistent-hashing table built from them).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "enums.h"
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

// The flow hash a picker receives. By default (HashKey::Address) the client's IP address only,
// not its port, so that a hashing algorithm keeps every connection of one client on one backend;
// with HashKey::AddressPort the port follows the address bytes, so each of a client's flows (each
// source port) is placed on its own. An IPv4 client seen on a dual-stack listener
// (::ffff:a.b.c.d) hashes as the IPv4 address it is. The port goes in in network byte order, so
// the hash is the same on every node whatever its byte order.
inline uint64_t clientFlowHash(const SocketAddress& client, HashKey key = HashKey::Address) {
  uint8_t bytes[18];
  size_t n = client.ipBytes(bytes);
  if (key == HashKey::AddressPort) {
    const uint16_t port = client.port();
    bytes[n++] = static_cast<uint8_t>(port >> 8);
    bytes[n++] = static_cast<uint8_t>(port & 0xff);
  }
  return fnv1a64(bytes, n);
}

}  // namespace lb4
