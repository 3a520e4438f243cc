#pragma once
// One listener as one worker sees it: its listening socket, counters, current backend table and
// this worker's picker over that table. Slots are numbered by the engine and never reused; a
// slot whose listener was removed keeps its table (and its flows) until its drain ends.
// Worker thread only.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "balance/backend_table.h"
#include "balance/picker.h"
#include "counters.h"
#include "enums.h"
#include "io/unique_fd.h"
#include "policy/listener_policy.h"
#include "policy/source_tracker.h"
#include "proxy_protocol/proxy_settings.h"

namespace lb4 {

struct ListenerSlot {
  Protocol protocol = Protocol::Tcp;
  // A copy per worker: read on every accept and connect, never shared between threads.
  ProxySettings proxy;
  // A copy per worker, like `proxy`; `sources` outlives a policy change, so flows admitted
  // before a reload are still released from it.
  ListenerPolicy policy;
  SourceTracker sources;
  // This worker's socket of the listener's reuseport group; empty once the listener is
  // removed or the engine stops.
  UniqueFd socket;
  // Not in the epoll set for now (descriptors ran out, or epoll had no room): the tick tries
  // to register it again.
  bool paused = false;
  CounterSet* counters = nullptr;  // the listener's, owned by the engine
  std::shared_ptr<const BackendTable> table;
  std::unique_ptr<Picker> picker;
  // One picker per backend pool (SNI routing), over table->pools[i]; empty without pools.
  std::vector<std::unique_ptr<Picker>> poolPickers;
  int64_t drainDeadlineMs = 0;  // 0: none; else the slot's flows are closed then
  // A removed UDP listener whose sessions drain: its socket stays open, because their replies
  // leave through it, and is read for their datagrams, but it opens no new session. The socket
  // closes when this worker's last session of it ends, or at the drain deadline.
  bool udpDraining = false;
  // UDP: the socket's receive-queue drop count as the last datagram read reported it
  // (SO_RXQ_OVFL); slots are never reused, so it starts at 0 with the socket.
  uint32_t socketDrops = 0;

  CounterBlock& countersOf(uint32_t workerIndex) { return counters->worker(workerIndex); }

  // Swaps in `next` as this listener's table. Only this slot's picker changes: it starts over
  // on the new table, and is made anew when the algorithm changed (a picker keeps what outlives
  // a table, such as least connections' random state).
  void adoptTable(std::shared_ptr<const BackendTable> next, uint32_t workerIndex) {
    table = std::move(next);
    if (table && (!picker || picker->algorithm() != table->algorithm)) picker = makePicker(table->algorithm, workerIndex);
    if (picker) picker->reset(table.get());
    const size_t pools = table ? table->pools.size() : 0;
    poolPickers.resize(pools);
    for (size_t i = 0; i < pools; ++i) {
      auto& p = poolPickers[i];
      if (!p || p->algorithm() != table->algorithm) p = makePicker(table->algorithm, workerIndex);
      p->reset(table->pools[i].get());
    }
  }

  // The picker for a flow routed to the pool called `pool` (empty: not routed, the whole
  // table); null when the current table has no such pool.
  Picker* pickerFor(const std::string& pool) {
    if (pool.empty()) return picker.get();
    const int32_t at = table ? table->poolIndex(pool) : -1;
    return at < 0 ? nullptr : poolPickers[static_cast<size_t>(at)].get();
  }
};

}  // namespace lb4
