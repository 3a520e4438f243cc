#pragma once
// Smooth weighted round robin (nginx's algorithm): each backend's running score gains its
// weight on every pick, the highest score wins and gives back the total. Weights 5:1:1 come
// out as a,a,b,a,c,a,a rather than a,a,a,a,a,b,c.

#include <cstdint>
#include <vector>

#include "balance/picker.h"

namespace lb4 {

class RoundRobinPicker final : public Picker {
 public:
  // Worker `index` starts its rotation `index` picks further, so that workers taking turns
  // with new connections do not all send their first flow to the same backend.
  explicit RoundRobinPicker(uint32_t workerIndex) : Picker(Algorithm::RoundRobin), offset_(workerIndex) {}

 private:
  const BackendEntry* choose(uint64_t flowHash, const TriedBackends& tried, bool avoidTried) override;
  void onReset() override;

  std::vector<int64_t> current_;  // running score per backend, by table position
  const uint32_t offset_;
};

}  // namespace lb4
