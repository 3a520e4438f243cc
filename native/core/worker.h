#pragma once
// A data-plane worker: one thread, one epoll loop, its own reuseport listening sockets, flow
// table, pipe pool, balancers and counter blocks. Nothing here is shared with another worker
// except read-only backend tables and the counters other threads only read.
//
// Thread affinity: the constructor, init(), start(), post() and join() run on the control thread;
// everything else runs on the worker's own thread.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "balance/backend_table.h"
#include "balance/picker.h"
#include "counters.h"
#include "engine_options.h"
#include "io/epoll_loop.h"
#include "io/event_queue.h"
#include "tcp/flow_table.h"
#include "tcp/pipe_pool.h"
#include "io/wake_queue.h"

namespace lb4 {

// The small-message buffer; a read that fills it switches a direction to splice.
constexpr uint32_t kScratchSize = 16 * 1024;

// Defaults and ranges: engine_options.h.
struct WorkerOptions {
  int64_t connectTimeoutMs = optionDefault(EngineOption::connectTimeoutMs);
  int64_t idleTimeoutMs = optionDefault(EngineOption::idleTimeoutMs);
  uint32_t retries = static_cast<uint32_t>(optionDefault(EngineOption::retries));
  int pipeSize = static_cast<int>(optionDefault(EngineOption::pipeSize));  // 0: the kernel's default
  size_t maxIdlePipes = static_cast<size_t>(optionDefault(EngineOption::maxIdlePipes));
};

// One batch from the control plane: a table for every listener.
struct BackendTables {
  uint64_t generation = 0;
  std::vector<std::shared_ptr<const BackendTable>> perListener;
};

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
};

// Which flows a snapshot or a forced close concerns.
struct FlowFilter {
  int64_t listener = -1;    // -1: any
  int64_t backendKey = -1;  // -1: any
  size_t limit = SIZE_MAX;  // per worker; the caller trims the merged list
};

struct SnapshotRequest {
  FlowFilter filter;
  std::mutex mutex;
  std::vector<FlowInfo> flows;
};

struct WorkerCommand {
  enum class Kind { ApplyBackends, Snapshot, Stop, AddListener, RemoveListener, CloseFlows };
  explicit WorkerCommand(Kind k) : kind(k) {}
  Kind kind;
  std::shared_ptr<const BackendTables> tables;  // ApplyBackends
  std::shared_ptr<SnapshotRequest> snapshot;    // Snapshot
  int64_t drainMs = 0;                          // Stop, RemoveListener
  std::shared_ptr<Completion> completion;
  // AddListener / RemoveListener: the listener's slot. AddListener hands the worker its socket
  // (the worker owns it from then on), the listener's counters and its first backend table.
  uint32_t slot = 0;
  int fd = -1;
  CounterSet* counters = nullptr;
  std::shared_ptr<const BackendTable> table;
  // CloseFlows: which flows; the number closed is added to `closed`.
  FlowFilter filter;
  std::shared_ptr<std::atomic<uint64_t>> closed;
};

class Worker {
 public:
  // `flowLogEvery` is shared with the engine: 0 logs no flow, N logs one closed flow in N.
  Worker(uint32_t index, const WorkerOptions& options, std::vector<UniqueFd> listenerFds,
         std::vector<CounterSet*> listenerCounters, EventQueue& events, const std::atomic<uint32_t>& flowLogEvery);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  SysResult init();
  void start(std::shared_ptr<const BackendTables> tables);
  void post(WorkerCommand command) { commands_.post(std::move(command)); }
  void join();

 private:
  enum class PumpResult { Idle, Yielded, SourceReset, DestinationReset };

  // worker.cc: the loop, commands, accepting, timers.
  void run();
  void runCommands();
  void adoptTables(std::shared_ptr<const BackendTables> tables);
  void adoptTable(uint32_t slot, std::shared_ptr<const BackendTable> table);
  void snapshotInto(SnapshotRequest& request);
  void beginStop(int64_t drainMs, std::shared_ptr<Completion> completion);
  void addListener(WorkerCommand& c);
  void removeListener(uint32_t slot, int64_t drainMs);
  uint64_t closeFlows(const FlowFilter& filter, CloseReason reason);
  void closeListeners();
  void acceptOn(uint32_t listener);
  void shedLoad(uint32_t listener);
  void onTick();
  void expireConnects();
  void expireIdle();
  void flushConnectTallies();
  void tallyConnect(uint32_t backendKey, bool ok, bool timeout);
  void logClosedFlow(const Flow& f);
  void runYielded();

  // tcp_flow.cc: the life of a flow.
  void startFlow(UniqueFd fd, const SocketAddress& client, uint32_t listener);
  bool connectNext(Flow& f);
  void onConnectFailed(Flow& f, bool timedOut);
  void onConnected(Flow& f);
  void onFlowEvent(Flow& f, bool backendSide, uint32_t events);
  void pumpFlow(Flow& f);
  PumpResult pump(Flow& f, Direction& d, FlowSocket& src, FlowSocket& dst, bool toBackend);
  void resetFlow(Flow& f, bool backendReset);
  void closeFlow(Flow& f, CloseReason reason, bool abortive);
  void linkConnecting(Flow& f);
  void unlinkConnecting(Flow& f);

  CounterBlock& listenerCounters(uint32_t listener) { return listenerCounters_[listener]->worker(index_); }
  void ensureSlot(uint32_t slot);

  const uint32_t index_;
  const WorkerOptions options_;
  std::vector<UniqueFd> listenerFds_;
  std::vector<bool> listenerPaused_;
  std::vector<CounterSet*> listenerCounters_;
  EventQueue& events_;

  EpollLoop loop_;
  WakeQueue<WorkerCommand> commands_;
  UniqueFd reserveFd_;  // spare descriptor, given up to shed connections when descriptors run out
  PipePool pipes_;
  // Small messages pass through here on their way from one socket to the other.
  std::unique_ptr<char[]> scratch_;
  FlowTable flows_;
  // Per listener slot: its current backend table and this worker's picker over it. A slot
  // whose listener was removed keeps its table until its flows are gone.
  std::vector<std::shared_ptr<const BackendTable>> tables_;
  std::vector<std::unique_ptr<Picker>> pickers_;
  std::vector<int64_t> listenerDrainDeadlineMs_;  // 0: none; else close the slot's flows then
  const std::atomic<uint32_t>& flowLogEvery_;
  uint64_t flowsClosed_ = 0;

  Flow* connectHead_ = nullptr;  // connecting flows, oldest (earliest deadline) first
  Flow* connectTail_ = nullptr;
  std::vector<uint32_t> yielded_;

  struct ConnectTally {
    uint32_t backendKey, failures, timeouts, successes;
    uint32_t trailingFailures;  // failures since the last success in this tally
  };
  std::vector<ConnectTally> tallies_;
  // Backends whose last report from this worker had failures: their next successes are news.
  std::vector<uint32_t> failingKeys_;

  int64_t now_ = 0;
  int64_t nextTickMs_ = 0;
  int64_t nextIdleSweepMs_ = 0;
  bool stopping_ = false;
  int64_t drainDeadlineMs_ = 0;
  std::vector<std::shared_ptr<Completion>> stopCompletions_;
  std::thread thread_;
};

}  // namespace lb4
