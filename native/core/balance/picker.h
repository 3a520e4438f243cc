#pragma once
// The one interface every balancing algorithm implements. A Picker is one worker's selection
// state for one listener over that listener's current BackendTable; the worker makes one per
// listener with makePicker and resets it whenever it adopts a new table for that listener.
// Adding an algorithm is one more module beside round_robin and least_conn, one more value in
// enums.h's LB4_ALGORITHMS, and one more case in makePicker (and in buildBackendTable, if it
// derives shared data from the set). Single-threaded: owned by one worker.

#include <cstdint>
#include <memory>

#include "balance/backend_table.h"
#include "enums.h"

namespace lb4 {

class Picker {
 public:
  virtual ~Picker() = default;
  Picker(const Picker&) = delete;
  Picker& operator=(const Picker&) = delete;

  Algorithm algorithm() const { return algorithm_; }
  const BackendTable* table() const { return table_; }

  // The worker adopted `table` (null: none) for this listener: selection state starts over.
  void reset(const BackendTable* table) {
    table_ = table;
    onReset();
  }

  // Picks a backend for a new flow, avoiding those in `tried` unless nothing else can take it.
  // Returns null when no backend takes new flows. `flowHash` is the hash of the client's
  // address (balance/hash.h): a hashing algorithm keeps a client on one backend with it; round
  // robin and least connections ignore it.
  const BackendEntry* pick(uint64_t flowHash, const TriedBackends& tried) {
    if (!table_ || table_->backends.empty()) return nullptr;
    const BackendEntry* chosen = choose(flowHash, tried, true);
    // Every candidate failed once already: trying one of them again beats refusing the client.
    if (!chosen && tried.count > 0) chosen = choose(flowHash, tried, false);
    return chosen;
  }

 protected:
  explicit Picker(Algorithm algorithm) : algorithm_(algorithm) {}
  // The algorithm proper, over a table with at least one backend: the backend for this flow
  // among those that take new flows, leaving out the tried ones when `avoidTried`; null if none.
  virtual const BackendEntry* choose(uint64_t flowHash, const TriedBackends& tried, bool avoidTried) = 0;
  // After table_ changed.
  virtual void onReset() = 0;

  const BackendTable* table_ = nullptr;

 private:
  const Algorithm algorithm_;
};

// A picker for `algorithm`, on worker `workerIndex` (algorithms that rotate start each worker
// at a different place), with no table yet.
std::unique_ptr<Picker> makePicker(Algorithm algorithm, uint32_t workerIndex);

}  // namespace lb4
