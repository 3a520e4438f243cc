#pragma once
// The data plane as a whole: opens the listeners, runs the workers, and takes the control
// plane's commands. Thread affinity: every public function runs on the control thread (the
// Node.js main thread); completion callbacks run on whichever worker finishes last and must
// only hand off to the control thread.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "balance/backend_table.h"
#include "counters.h"
#include "engine_options.h"
#include "io/event_queue.h"
#include "listener_config.h"
#include "tcp/listener_socket.h"
#include "udp/session_replication.h"
#include "worker.h"
#include "worker_command.h"

namespace lb4 {

struct EngineConfig {
  uint32_t workers = static_cast<uint32_t>(optionDefault(EngineOption::workers));
  std::vector<ListenerConfig> listeners;
  WorkerOptions worker;
  size_t eventCapacity = 4096;
};

// A backend as the control plane describes it; the engine attaches the counters.
struct BackendSpec {
  uint32_t key;
  std::string id;  // stable identity: "<listener name>/<backend id>"
  SocketAddress address;
  uint32_t weight;
  BackendState state;
  uint32_t maxConnections = 0;  // 0: no limit
  // The PROXY protocol header this backend is sent; none given: the listener's.
  std::optional<ProxyVersion> proxy{};
  std::string pool{};  // the backend's pool (SNI routing); empty: none
};

class Engine {
 public:
  explicit Engine(EngineConfig config);
  ~Engine();  // stops at once (no drain) if still running, and joins
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Opens every listener for every worker, then starts the workers with the given tables. On
  // failure nothing is left open, `err` says which call failed and `failedListener` where.
  bool start(std::vector<std::vector<BackendSpec>> tables, SocketError& err, uint32_t& failedListener);
  // Bound addresses by listener slot (a removed listener keeps its entry).
  const std::vector<SocketAddress>& boundAddresses() const { return bound_; }
  size_t workerCount() const { return workers_.size(); }
  // Listener slots ever opened, removed ones included: slots are never reused.
  size_t listenerCount() const { return config_.listeners.size(); }
  bool stopping() const { return stopRequested_; }

  // Opens a listener on every worker while the engine runs, in a new slot (returned through
  // `slot`), with `table` as its backends. `done` runs once every worker accepts on it.
  bool addListener(ListenerConfig config, std::vector<BackendSpec> table, uint32_t& slot, SocketError& err,
                   std::function<void()> done);
  // Stops accepting on a listener at once; its flows run on for up to `drainMs`, then are closed.
  // `done` runs once every worker has closed the listening socket.
  void removeListener(uint32_t slot, int64_t drainMs, std::function<void()> done);

  // Replaces one listener slot's backend table, with its algorithm changed first when one is
  // given; every other slot keeps its table and its pickers. Builds the table here, on the
  // control thread, and posts it to every worker; `done` runs once every worker uses it. Before
  // start (or after stop) only the algorithm is kept. An unknown slot changes nothing.
  void applyBackends(uint32_t slot, std::vector<BackendSpec> specs, std::optional<Algorithm> algorithm,
                     std::function<void()> done);
  // Replaces a TCP listener's PROXY protocol settings on every worker; new flows use them.
  // `done` runs once every worker has them. An unknown slot changes nothing.
  void setListenerProxy(uint32_t slot, ProxySettings proxy, std::function<void()> done);
  // Replaces a listener's access lists and limits on every worker; `done` runs once all have it.
  void setListenerPolicy(uint32_t slot, ListenerPolicy policy, std::function<void()> done);
  // Collects flows from every worker; `done` gets them once all have answered.
  void snapshot(FlowFilter filter, std::function<void(std::vector<FlowInfo>)> done);
  // Closes matching flows at once, with a reset, counted as drain_closed. `done` gets how many.
  void closeFlows(FlowFilter filter, std::function<void(uint64_t)> done);
  // Emits a FlowClosed event for one closed flow in `every` (0: none). Any thread.
  void setFlowLog(uint32_t every) { flowLogEvery_.store(every, std::memory_order_relaxed); }
  // Stops accepting at once; open flows run until they end or `drainMs` passes, then are closed.
  // `done` runs after every worker has exited its loop. Idempotent: a later call may shorten the
  // drain and its `done` runs with the first one's.
  void stop(int64_t drainMs, std::function<void()> done);
  // Waits for the worker threads; call after stop's `done`, or to force an end (with stop(0)).
  void join();
  // After stop's `done`: joins the workers and frees what they hold (epoll, eventfd, pipes).
  // Counters stay readable.
  void releaseWorkers();

  // Counters: every listener in order, then backend keys 0..backendKeyLimit()-1, kCounterCount
  // values each. Returns the number of doubles needed; writes only if `capacity` suffices.
  size_t readStats(double* out, size_t capacity) const;
  // Sums every backend key's latency histograms (latency.h) into `out`, kHistogramSlots per key in
  // key order, when `capacity` allows; returns the length needed. Any thread, like readStats.
  size_t readLatency(double* out, size_t capacity) const;
  uint32_t backendKeyLimit() const { return static_cast<uint32_t>(backendCounters_.size()); }
  EventQueue& events() { return events_; }
  // UDP sessions for the HA peer, and the peer's as affinity hints (udp/session_replication.h).
  SessionReplication& replication() { return replication_; }
  // Every worker reports its live UDP sessions again (the peer appeared). Returns at once.
  void reportSessions();

 private:
  // One table per listener slot, from the control plane's specs (missing ones: empty).
  std::vector<std::shared_ptr<const BackendTable>> buildTables(std::vector<std::vector<BackendSpec>>& specs);
  std::shared_ptr<const BackendTable> buildTable(Algorithm algorithm, std::vector<BackendSpec> specs);
  CounterSet* countersFor(uint32_t key);

  std::shared_ptr<Completion> completionForAll(std::function<void()> done) const;
  // Posts a copy of `body` to every worker, all arriving at `completion`.
  template <typename Body>
  void broadcast(const Body& body, const std::shared_ptr<Completion>& completion) {
    for (auto& w : workers_) w->post(WorkerCommand{body, completion});
  }

  EngineConfig config_;
  // listenerFds_[slot][worker]: descriptor numbers, for shutdown() from this thread only until
  // the slot is removed or the engine stopped; the workers own the descriptors.
  std::vector<std::vector<int>> listenerFds_;
  std::atomic<uint32_t> flowLogEvery_{0};
  std::vector<std::unique_ptr<CounterSet>> listenerCounters_;
  // Indexed by backend key. Kept for the engine's life: flows and old tables point at them, and
  // a removed backend's totals stay readable.
  std::vector<std::unique_ptr<CounterSet>> backendCounters_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<SocketAddress> bound_;
  EventQueue events_;
  SessionReplication replication_;
  uint64_t generation_ = 0;
  bool started_ = false;
  bool stopRequested_ = false;

  std::mutex stopMutex_;
  bool stopped_ = false;
  std::vector<std::function<void()>> stopWaiters_;
};

}  // namespace lb4
