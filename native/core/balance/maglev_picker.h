#pragma once
// Maglev consistent hashing of the client's address: every worker, and every node that builds
// the table from the same backends, sends a client to the same backend, and a change to the
// backend set moves only the clients of the backend that changed (balance/maglev.h). The
// lookup table lives on the BackendTable, built once per generation on the control thread; the
// picker itself keeps no state.

#include "balance/picker.h"

namespace lb4 {

class MaglevPicker final : public Picker {
 public:
  MaglevPicker() : Picker(Algorithm::Maglev) {}

 private:
  const BackendEntry* choose(uint64_t flowHash, const TriedBackends& tried, bool avoidTried) override;
  void onReset() override {}
};

}  // namespace lb4
