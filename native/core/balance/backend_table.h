#pragma once
// Backends as the data plane sees them: an immutable table per listener, built on the control
// thread and swapped in by each worker between two epoll passes, so picking a backend takes no
// lock. A Balancer is one worker's per-listener selection state over the current table.

#include <cstdint>
#include <memory>
#include <vector>

#include "counters.h"
#include "enums.h"
#include "io/socket_address.h"

namespace lb4 {

struct BackendEntry {
  uint32_t key = 0;  // stable for the backend's life, chosen by the control plane
  SocketAddress address;
  uint32_t weight = 1;
  BackendState state = BackendState::Up;
  CounterSet* counters = nullptr;  // owned by the engine, outlives every table and flow

  // Only an `up` backend with a non-zero weight takes new flows; `down`, `draining` and
  // `maintenance` keep the flows they have.
  bool takesNewFlows() const { return state == BackendState::Up && weight > 0; }
};

struct BackendTable {
  Algorithm algorithm = Algorithm::RoundRobin;
  std::vector<BackendEntry> backends;
};

// One batch from the control plane: a table for every listener, under one generation number.
struct BackendTables {
  uint64_t generation = 0;
  std::vector<std::shared_ptr<const BackendTable>> perListener;
};

// The keys a flow has already tried, so a retry goes to another backend while there is one.
struct TriedBackends {
  static constexpr int kMax = 8;
  uint32_t keys[kMax];
  int count = 0;
  void add(uint32_t key) {
    if (count < kMax) keys[count++] = key;
  }
  bool contains(uint32_t key) const {
    for (int i = 0; i < count; ++i)
      if (keys[i] == key) return true;
    return false;
  }
};

class Balancer {
 public:
  // Worker `index` of a balancer starts its rotation `index` places further, so that workers
  // taking turns with new connections do not all send their first flow to the same backend.
  explicit Balancer(uint32_t index = 0) : offset_(index), random_(0x9e3779b97f4a7c15ULL + index) {}
  // Called when the worker adopts a new table: selection state starts over.
  void reset(const BackendTable* table);
  // Picks a backend for a new flow, avoiding those in `tried` unless nothing else can take it.
  // Returns null when no backend takes new flows.
  const BackendEntry* pick(const TriedBackends& tried);

 private:
  const BackendEntry* pickRoundRobin(const TriedBackends& tried, bool avoidTried);
  const BackendEntry* pickLeastConn(const TriedBackends& tried, bool avoidTried);
  uint64_t nextRandom();

  const BackendTable* table_ = nullptr;
  // Smooth weighted round robin: each backend's running score (the nginx algorithm: add every
  // weight, take the highest, subtract the total from it) spreads a 5:1:1 split as a,a,b,a,c,a,a
  // rather than a,a,a,a,a,b,c.
  std::vector<int64_t> current_;
  uint32_t offset_;
  uint64_t rotation_ = 0;
  uint64_t random_;
};

}  // namespace lb4
