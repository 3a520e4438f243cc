#include "balance/round_robin.h"

namespace lb4 {

void RoundRobinPicker::onReset() {
  current_.assign(table_ ? table_->backends.size() : 0, 0);
  TriedBackends none;
  if (table_)
    for (uint32_t i = 0; i < offset_; ++i) choose(0, none, true);
}

const BackendEntry* RoundRobinPicker::choose(uint64_t, const TriedBackends& tried, bool avoidTried) {
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

}  // namespace lb4
