#pragma once
// Least connections, weighted: the backend with the fewest active flows per unit of weight,
// counting every worker's flows (a relaxed read of each backend's counters). Up to 16 backends
// it scans them all (exact); past that it takes the lighter of two random candidates (the power
// of two choices), which keeps the maximum load within a small factor of the optimum without
// reading every backend's counters on each pick.

#include <cstdint>

#include "balance/picker.h"

namespace lb4 {

class LeastConnPicker final : public Picker {
 public:
  explicit LeastConnPicker(uint32_t workerIndex)
      : Picker(Algorithm::LeastConn), offset_(workerIndex), random_(0x9e3779b97f4a7c15ULL + workerIndex) {}

  static constexpr size_t kExactScanLimit = 16;

 private:
  const BackendEntry* choose(uint64_t flowHash, const TriedBackends& tried, bool avoidTried) override;
  void onReset() override { rotation_ = offset_; }
  uint64_t nextRandom();

  const uint32_t offset_;
  uint64_t rotation_ = 0;  // where the exact scan starts, so ties take turns
  uint64_t random_;        // xorshift64 state; carries on across tables
};

}  // namespace lb4
