// Per-source concurrency and rate limits. See source_tracker.h.

#include "policy/source_tracker.h"

#include <algorithm>

namespace lb4 {

SourceTracker::Key SourceTracker::keyOf(const SocketAddress& client) {
  uint8_t bytes[16] = {};
  const size_t length = client.ipBytes(bytes);
  Key k;
  // IPv4: the whole address, tagged so it cannot equal an IPv6 /64. IPv6: the /64 prefix.
  const size_t take = length == 4 ? 4 : 8;
  for (size_t i = 0; i < take; ++i) k.high = (k.high << 8) | bytes[i];
  k.low = length == 4 ? 4 : 16;
  return k;
}

void SourceTracker::refill(Source& s, uint32_t ratePerSecond, int64_t nowMs) {
  const int64_t capacity = static_cast<int64_t>(ratePerSecond) * 1000;
  if (s.milliTokens < 0) {
    s.milliTokens = capacity;
  } else {
    // `rate` tokens a second is `rate` thousandths of a token a millisecond.
    const int64_t elapsed = std::max<int64_t>(0, nowMs - s.refilledMs);
    s.milliTokens = std::min(capacity, s.milliTokens + elapsed * static_cast<int64_t>(ratePerSecond));
  }
  s.refilledMs = nowMs;
}

SourceVerdict SourceTracker::admit(const SocketAddress& client, uint32_t maxActive, uint32_t ratePerSecond, int64_t nowMs) {
  Source& s = sources_[keyOf(client)];
  if (maxActive != 0 && s.active >= maxActive) return SourceVerdict::TooMany;
  if (ratePerSecond != 0) {
    refill(s, ratePerSecond, nowMs);
    if (s.milliTokens < 1000) return SourceVerdict::TooFast;
    s.milliTokens -= 1000;
  }
  s.active++;
  return SourceVerdict::Admitted;
}

void SourceTracker::release(const SocketAddress& client) {
  auto it = sources_.find(keyOf(client));
  if (it != sources_.end() && it->second.active > 0) it->second.active--;
}

void SourceTracker::sweep(int64_t nowMs, uint32_t ratePerSecond) {
  for (auto it = sources_.begin(); it != sources_.end();) {
    Source& s = it->second;
    if (s.active == 0 && ratePerSecond != 0 && s.milliTokens >= 0) refill(s, ratePerSecond, nowMs);
    const bool full = ratePerSecond == 0 || s.milliTokens < 0 || s.milliTokens >= static_cast<int64_t>(ratePerSecond) * 1000;
    it = s.active == 0 && full ? sources_.erase(it) : std::next(it);
  }
}

}  // namespace lb4
