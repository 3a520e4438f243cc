#pragma once
// What the control thread asks of a worker, one struct per command, carried in a typed variant
// through the worker's wake queue. A command is posted to every worker; each arrives at the
// command's Completion once it has run it.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "balance/backend_table.h"
#include "proxy_protocol/proxy_settings.h"
#include "counters.h"
#include "enums.h"
#include "io/unique_fd.h"

namespace lb4 {

// Runs `done` when the last of `remaining` workers arrives. Any thread.
struct Completion {
  Completion(int workers, std::function<void()> fn) : remaining(workers), done(std::move(fn)) {}
  std::atomic<int> remaining;
  std::function<void()> done;
  void arrive() {
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1 && done) done();
  }
};

struct FlowInfo {
  uint64_t id;
  uint32_t listener;
  uint32_t worker;
  FlowState state;
  std::string client;
  bool hasBackend;
  uint32_t backendKey;
  std::string backend;
  int64_t startWallMs;
  uint64_t bytesToBackend;
  uint64_t bytesToClient;
  Protocol protocol = Protocol::Tcp;
  uint64_t datagramsToBackend = 0;  // UDP sessions only
  uint64_t datagramsToClient = 0;
};

// Which flows a snapshot or a forced close concerns.
struct FlowFilter {
  int64_t listener = -1;    // -1: any
  int64_t backendKey = -1;  // -1: any
  size_t limit = SIZE_MAX;  // per worker; the caller trims the merged list
};

// Filled by every worker in turn.
struct SnapshotRequest {
  FlowFilter filter;
  std::mutex mutex;
  std::vector<FlowInfo> flows;
};

namespace command {

// Swap in `table` as listener `slot`'s backends; the other listeners keep theirs.
struct ApplyBackends {
  uint32_t slot = 0;
  std::shared_ptr<const BackendTable> table;
};

// Add this worker's matching flows to `request`.
struct Snapshot {
  std::shared_ptr<SnapshotRequest> request;
};

// Stop accepting; let flows run up to `drainMs`, then close them and leave the loop. The
// completion arrives when the worker has left its loop. A later Stop can only shorten the drain.
struct Stop {
  int64_t drainMs = 0;
};

// A new listener in `slot`: the worker owns `socket` from here on, even if the command is
// never run (the queue closes it then).
struct AddListener {
  uint32_t slot = 0;
  Protocol protocol = Protocol::Tcp;
  ProxySettings proxy;
  ListenerPolicy policy;
  UniqueFd socket;
  CounterSet* counters = nullptr;
  std::shared_ptr<const BackendTable> table;
};

// Close the listener's socket now; its flows run on for up to `drainMs`.
struct RemoveListener {
  uint32_t slot = 0;
  int64_t drainMs = 0;
};

// The listener's PROXY protocol settings change: flows accepted from now on use `proxy`; flows
// already past their header keep what they have.
struct SetListenerProxy {
  uint32_t slot = 0;
  ProxySettings proxy;
};

// The listener's traffic policy changes: flows admitted from now on are judged by `policy`;
// admitted flows stay, and still count against their source until they end.
struct SetListenerPolicy {
  uint32_t slot = 0;
  ListenerPolicy policy;
};

// Close the matching flows at once (as drained); add how many to `closed`.
struct CloseFlows {
  FlowFilter filter;
  std::shared_ptr<std::atomic<uint64_t>> closed;
};

// Report every live UDP session for the HA peer again (session replication): the peer just
// appeared or restarted and knows none of them.
struct ReportSessions {};

}  // namespace command

struct WorkerCommand {
  std::variant<command::ApplyBackends, command::Snapshot, command::Stop, command::AddListener,
               command::RemoveListener, command::CloseFlows, command::ReportSessions, command::SetListenerProxy,
               command::SetListenerPolicy>
      body;
  std::shared_ptr<Completion> completion;
};

}  // namespace lb4
