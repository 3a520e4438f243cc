#include "balance/backend_table.h"

namespace lb4 {

void Balancer::reset(const BackendTable* table) {
  table_ = table;
  current_.assign(table ? table->backends.size() : 0, 0);
  rotation_ = offset_;
  TriedBackends none;
  if (table_ && table_->algorithm == Algorithm::RoundRobin)
    for (uint32_t i = 0; i < offset_; ++i) pickRoundRobin(none, true);
}

const BackendEntry* Balancer::pick(const TriedBackends& tried) {
  if (!table_ || table_->backends.empty()) return nullptr;
  auto pickWith = [&](bool avoidTried) {
    return table_->algorithm == Algorithm::LeastConn ? pickLeastConn(tried, avoidTried)
                                                     : pickRoundRobin(tried, avoidTried);
  };
  const BackendEntry* chosen = pickWith(true);
  // Every candidate failed once already: trying one of them again beats refusing the client.
  if (!chosen && tried.count > 0) chosen = pickWith(false);
  return chosen;
}

const BackendEntry* Balancer::pickRoundRobin(const TriedBackends& tried, bool avoidTried) {
  const auto& backends = table_->backends;
  int64_t total = 0;
  size_t best = backends.size();
  for (size_t i = 0; i < backends.size(); ++i) {
    const BackendEntry& b = backends[i];
    if (!b.takesNewFlows() || (avoidTried && tried.contains(b.key))) continue;
    current_[i] += b.weight;
    total += b.weight;
    if (best == backends.size() || current_[i] > current_[best]) best = i;
  }
  if (best == backends.size()) return nullptr;
  current_[best] -= total;
  return &backends[best];
}

const BackendEntry* Balancer::pickLeastConn(const TriedBackends& tried, bool avoidTried) {
  const auto& backends = table_->backends;
  const size_t n = backends.size();
  // Load is active flows over weight, compared by cross-multiplying to stay in integers. Active
  // counts are summed over every worker's counters: a relaxed read of a few cache lines.
  auto lighter = [](const BackendEntry& a, const BackendEntry& b) {
    int64_t la = a.counters->sum(Counter::flows_active);
    int64_t lb = b.counters->sum(Counter::flows_active);
    return la * static_cast<int64_t>(b.weight) < lb * static_cast<int64_t>(a.weight);
  };
  auto eligible = [&](const BackendEntry& b) { return b.takesNewFlows() && !(avoidTried && tried.contains(b.key)); };

  // Few backends: scan them all (exact). Start from a rotating offset so ties take turns.
  constexpr size_t kExactScanLimit = 16;
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
  // Many backends: the power of two random choices, which keeps the maximum load within a
  // small factor of the optimum without reading every backend's counters.
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

uint64_t Balancer::nextRandom() {
  // xorshift64: cheap, per worker, and quality enough for choosing two candidates.
  random_ ^= random_ << 13;
  random_ ^= random_ >> 7;
  random_ ^= random_ << 17;
  return random_;
}

}  // namespace lb4
