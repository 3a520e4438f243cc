#pragma once
// Backends as the data plane sees them: an immutable table per listener, built on the control
// thread and swapped in by each worker between two epoll passes, so picking a backend takes no
// lock. A change to one listener's backends builds and sends only that listener's table.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "counters.h"
#include "enums.h"
#include "io/socket_address.h"

namespace lb4 {

struct BackendEntry {
  // The process-local counter slot the control plane chose: it indexes readStats and events.
  // Nothing about balancing derives from it.
  uint32_t key = 0;
  // The backend's stable identity, the same on every node for the same config:
  // "<listener name>/<backend id>". idHash is its 64-bit FNV-1a (balance/hash.h), filled in by
  // buildBackendTable, for algorithms that must agree across nodes (consistent hashing).
  std::string id;
  uint64_t idHash = 0;
  SocketAddress address;
  uint32_t weight = 1;
  BackendState state = BackendState::Up;
  // Concurrent flows the backend takes from this listener, over every worker; 0: no limit. A
  // full backend is passed over, and when every one is full new flows wait in the listener's
  // queue (tcp/tcp_proxy.cc).
  uint32_t maxConnections = 0;
  // The PROXY protocol version this backend takes, when it differs from its listener's setting
  // (a backend object's `proxyProtocol`); empty: the listener's.
  std::optional<ProxyVersion> proxy;
  // The pool this backend belongs to on a listener that routes by TLS server name; empty: none.
  std::string pool;
  CounterSet* counters = nullptr;  // owned by the engine, outlives every table and flow

  // Only an `up` backend with a non-zero weight takes new flows; `down`, `draining` and
  // `maintenance` keep the flows they have.
  bool takesNewFlows() const { return state == BackendState::Up && weight > 0; }
};

struct BackendTable {
  Algorithm algorithm = Algorithm::RoundRobin;
  // Which build this is (the engine counts them): tells two tables of one listener apart.
  uint64_t generation = 0;
  std::vector<BackendEntry> backends;
  // Data an algorithm derives from the whole backend set goes here, next to the set it was
  // derived from, built once per table by buildBackendTable on the control thread and then
  // only read by every worker (a Maglev lookup table, for one). Round robin and least
  // connections keep only per-worker state, in their pickers.
  //
  // Maglev: the lookup table, each entry an index into `backends` (balance/maglev.h); empty
  // when no backend takes new flows or the algorithm is another.
  std::vector<uint32_t> maglev;
  // Maglev: the keys of the backends that own at least one entry of `maglev`, so that a retry
  // can tell at once whether the table holds a backend it has not tried yet.
  std::vector<uint32_t> maglevOwners;
  // A listener with backend pools (SNI routing): one table per pool, each holding that pool's
  // entries and built like this one, so a pool balances on its own; poolNames[i] names pools[i].
  // Empty when no backend names a pool.
  std::vector<std::string> poolNames;
  std::vector<std::shared_ptr<const BackendTable>> pools;

  // The pool called `name`'s index, or -1. A listener has a handful of pools: a scan is enough.
  int32_t poolIndex(const std::string& name) const {
    for (size_t i = 0; i < poolNames.size(); ++i)
      if (poolNames[i] == name) return static_cast<int32_t>(i);
    return -1;
  }
};

// Builds a listener's table on the control thread: hashes every backend's id and computes
// what `algorithm` needs from the set.
std::shared_ptr<const BackendTable> buildBackendTable(Algorithm algorithm, uint64_t generation,
                                                      std::vector<BackendEntry> backends);

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

}  // namespace lb4
