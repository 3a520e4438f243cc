#pragma once
// The 64-bit tag each epoll registration carries: what kind of descriptor it is (low 8 bits)
// and which one of that kind (the other 56 bits: a listener slot, a flow slot). The worker
// dispatches on the kind, so a new protocol adds its kinds here, and only here.

#include <cstdint>

namespace lb4 {

enum class TagKind : uint8_t {
  Wake = 0,        // the worker's command queue
  Listener = 1,    // a listening socket; index: the listener slot
  TcpClient = 2,   // a TCP flow's client socket; index: the flow's slot in the flow table
  TcpBackend = 3,  // a TCP flow's backend socket; index: the flow's slot
  UdpUpstream = 4, // a UDP session's connected socket to its backend; index: the session's slot
};

constexpr int kTagKindBits = 8;
constexpr uint64_t kTagIndexLimit = uint64_t{1} << (64 - kTagKindBits);

constexpr uint64_t makeTag(TagKind kind, uint64_t index) {
  return (index << kTagKindBits) | static_cast<uint8_t>(kind);
}
constexpr TagKind tagKind(uint64_t tag) { return static_cast<TagKind>(tag & ((1u << kTagKindBits) - 1)); }
constexpr uint64_t tagIndex(uint64_t tag) { return tag >> kTagKindBits; }

}  // namespace lb4
