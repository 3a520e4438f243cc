#include "balance/least_conn.h"

namespace lb4 {

const BackendEntry* LeastConnPicker::choose(uint64_t, const TriedBackends& tried, bool avoidTried) {
  const auto& backends = table_->backends;
  const size_t n = backends.size();
  // Load is active flows over weight, compared by cross-multiplying to stay in integers. Active
  // counts are summed over every worker's counters: a relaxed read of a few cache lines.
  auto lighter = [](const BackendEntry& a, const BackendEntry& b) {
    int64_t la = a.counters->sum(Counter::flows_active) + a.counters->sum(Counter::sessions_active);
    int64_t lb = b.counters->sum(Counter::flows_active) + b.counters->sum(Counter::sessions_active);
    return la * static_cast<int64_t>(b.weight) < lb * static_cast<int64_t>(a.weight);
  };
  auto eligible = [&](const BackendEntry& b) { return b.takesNewFlows() && !(avoidTried && tried.contains(b.key)); };

  // Few backends: scan them all (exact). Start from a rotating offset so ties take turns.
  if (n <= kExactScanLimit) {
    const BackendEntry* best = nullptr;
    size_t start = static_cast<size_t>(rotation_++ % n);
    for (size_t k = 0; k < n; ++k) {
      const BackendEntry& b = backends[(start + k) % n];
      if (!eligible(b)) continue;
      if (!best || lighter(b, *best)) best = &b;
    }
    return best;
  }
  // Many backends: the power of two random choices.
  const BackendEntry* first = nullptr;
  const BackendEntry* second = nullptr;
  for (int attempt = 0; attempt < 8 && !second; ++attempt) {
    const BackendEntry& b = backends[nextRandom() % n];
    if (!eligible(b)) continue;
    if (!first) first = &b;
    else if (&b != first) second = &b;
  }
  if (!first) {  // eligible backends are rare: fall back to a scan
    for (const auto& b : backends)
      if (eligible(b) && (!first || lighter(b, *first))) first = &b;
    return first;
  }
  if (!second) return first;
  return lighter(*second, *first) ? second : first;
}

uint64_t LeastConnPicker::nextRandom() {
  // xorshift64: cheap, per worker, and quality enough for choosing two candidates.
  random_ ^= random_ << 13;
  random_ ^= random_ >> 7;
  random_ ^= random_ << 17;
  return random_;
}

}  // namespace lb4
