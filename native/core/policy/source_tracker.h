#pragma once
// Per-source limits of one listener on one worker: concurrent flows and new flows per second
// per source, a source being an IPv4 address or an IPv6 /64 (one host's usual allocation, so a
// client cannot dodge the limit by cycling through its own addresses).
//
// Kept per worker, with no sharing: the effective limits are per worker. The kernel spreads a
// source's connections over the workers' reuseport sockets by the 4-tuple hash, so with N workers
// one source may hold up to N times the limit. A table shared by every worker would make the
// limit exact at the price of atomics on a shared line per accept; per worker keeps the accept
// path free of them, as every other table of the data plane is. Run one worker, or divide the
// limit by the worker count, when it must be exact.
//
// The rate is a token bucket per source: it holds at most `rate` tokens (one second's worth, so a
// burst up to the rate passes) and gains `rate` tokens a second; each new flow takes one.
// Worker thread only.

#include <cstdint>
#include <unordered_map>

#include "io/socket_address.h"

namespace lb4 {

enum class SourceVerdict { Admitted, TooMany, TooFast };

class SourceTracker {
 public:
  // Counts a new flow from `client` against the limits (0: none). Admitted flows are counted
  // active until release().
  SourceVerdict admit(const SocketAddress& client, uint32_t maxActive, uint32_t ratePerSecond, int64_t nowMs);
  // An admitted flow from `client` ended.
  void release(const SocketAddress& client);
  // Forgets sources with no flow and a full bucket, so the table holds only sources that matter
  // now (idle sweep).
  void sweep(int64_t nowMs, uint32_t ratePerSecond);
  size_t size() const { return sources_.size(); }

 private:
  struct Key {
    uint64_t high = 0, low = 0;
    bool operator==(const Key& o) const { return high == o.high && low == o.low; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return static_cast<size_t>(k.high * 0x9E3779B97F4A7C15ull ^ k.low); }
  };
  struct Source {
    uint32_t active = 0;
    int64_t milliTokens = -1;  // thousandths of a token; -1: a full bucket not yet drawn from
    int64_t refilledMs = 0;
  };
  static Key keyOf(const SocketAddress& client);
  static void refill(Source& s, uint32_t ratePerSecond, int64_t nowMs);

  std::unordered_map<Key, Source, KeyHash> sources_;
};

}  // namespace lb4
