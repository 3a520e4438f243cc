#include "engine.h"

#include <sys/socket.h>

#include <algorithm>

namespace lb4 {

namespace {

// Session changes waiting for the control thread (drained every few ms), and the peer's sessions
// kept as hints (about 100 bytes each: some 6.5 MB at most).
constexpr size_t kReplicationChangeCapacity = 65536;
constexpr size_t kAffinityCapacity = 65536;

}  // namespace

// The peer's sessions live 1.5 idle timeouts from their last report, and a session with traffic
// is reported again every half idle timeout: the copy outlives the session it stands for, by at
// most one idle timeout.
Engine::Engine(EngineConfig config)
    : config_(std::move(config)),
      events_(config_.eventCapacity),
      replication_(kReplicationChangeCapacity, kAffinityCapacity, config_.worker.udpIdleTimeoutMs * 3 / 2,
                   std::max<int64_t>(1, config_.worker.udpIdleTimeoutMs / 2)) {
  if (config_.workers == 0) config_.workers = 1;
  for (size_t i = 0; i < config_.listeners.size(); ++i)
    listenerCounters_.push_back(std::make_unique<CounterSet>(config_.workers));
}

Engine::~Engine() {
  // Whatever drain was asked for, the engine is going away now.
  if (started_) stop(0, nullptr);
  join();
}

CounterSet* Engine::countersFor(uint32_t key) {
  if (key >= backendCounters_.size()) backendCounters_.resize(key + 1);
  if (!backendCounters_[key]) backendCounters_[key] = std::make_unique<CounterSet>(config_.workers);
  return backendCounters_[key].get();
}

std::shared_ptr<const BackendTable> Engine::buildTable(Algorithm algorithm, std::vector<BackendSpec> specs) {
  std::vector<BackendEntry> entries;
  entries.reserve(specs.size());
  for (BackendSpec& s : specs) {
    BackendEntry e;
    e.key = s.key;
    e.id = std::move(s.id);
    e.address = s.address;
    e.weight = s.weight;
    e.state = s.state;
    e.maxConnections = s.maxConnections;
    e.proxy = s.proxy;
    e.pool = std::move(s.pool);
    e.counters = countersFor(s.key);
    entries.push_back(std::move(e));
  }
  return buildBackendTable(algorithm, ++generation_, std::move(entries));
}

std::vector<std::shared_ptr<const BackendTable>> Engine::buildTables(std::vector<std::vector<BackendSpec>>& specs) {
  std::vector<std::shared_ptr<const BackendTable>> tables;
  for (size_t i = 0; i < config_.listeners.size(); ++i)
    tables.push_back(
        buildTable(config_.listeners[i].algorithm, i < specs.size() ? std::move(specs[i]) : std::vector<BackendSpec>()));
  return tables;
}

bool Engine::start(std::vector<std::vector<BackendSpec>> tables, SocketError& err, uint32_t& failedListener) {
  const size_t workerCount = config_.workers;
  // groups[l][w]: listener l's socket for worker w.
  std::vector<std::vector<UniqueFd>> groups(config_.listeners.size());
  bound_.assign(config_.listeners.size(), SocketAddress());
  for (uint32_t l = 0; l < config_.listeners.size(); ++l) {
    if (!openListenerGroup(config_.listeners[l], workerCount, groups[l], bound_[l], err)) {
      failedListener = l;
      bound_.clear();
      return false;  // every socket opened so far closes with `groups`
    }
  }
  std::vector<std::shared_ptr<const BackendTable>> initial = buildTables(tables);
  config_.worker.workerCount = static_cast<uint32_t>(workerCount);
  config_.worker.maxLargePipes = PipePool::largePipesPerWorker(config_.worker.workerCount);
  for (uint32_t w = 0; w < workerCount; ++w) {
    std::vector<ListenerSlot> mine(config_.listeners.size());
    for (uint32_t l = 0; l < config_.listeners.size(); ++l) {
      if (w == 0) {
        listenerFds_.emplace_back();
      }
      listenerFds_[l].push_back(groups[l][w].get());
      mine[l].protocol = config_.listeners[l].protocol;
      mine[l].proxy = config_.listeners[l].proxy;
      mine[l].policy = config_.listeners[l].policy;
      mine[l].socket = std::move(groups[l][w]);
      mine[l].counters = listenerCounters_[l].get();
    }
    auto worker = std::make_unique<Worker>(w, config_.worker, std::move(mine), events_, flowLogEvery_, replication_);
    SysResult r = worker->init();
    if (!r.ok()) {
      err.error = r.error;
      err.syscall = "epoll_create1";
      failedListener = 0;
      workers_.clear();
      bound_.clear();
      listenerFds_.clear();
      return false;
    }
    workers_.push_back(std::move(worker));
  }
  for (auto& w : workers_) w->start(initial);
  started_ = true;
  return true;
}

void Engine::reportSessions() {
  if (!started_ || stopRequested_) return;
  broadcast(command::ReportSessions{}, nullptr);
}

std::shared_ptr<Completion> Engine::completionForAll(std::function<void()> done) const {
  return std::make_shared<Completion>(static_cast<int>(workers_.size()), std::move(done));
}

bool Engine::addListener(ListenerConfig config, std::vector<BackendSpec> specs, uint32_t& slot, SocketError& err,
                         std::function<void()> done) {
  if (!started_ || stopRequested_) {
    err.error = EINVAL;
    err.syscall = "listen";
    return false;
  }
  std::vector<UniqueFd> group;
  SocketAddress bound;
  if (!openListenerGroup(config, workers_.size(), group, bound, err)) return false;
  slot = static_cast<uint32_t>(config_.listeners.size());
  std::shared_ptr<const BackendTable> table = buildTable(config.algorithm, std::move(specs));
  config_.listeners.push_back(std::move(config));
  listenerCounters_.push_back(std::make_unique<CounterSet>(config_.workers));
  bound_.push_back(bound);
  listenerFds_.emplace_back();
  auto completion = completionForAll(std::move(done));
  for (size_t w = 0; w < workers_.size(); ++w) {
    listenerFds_[slot].push_back(group[w].get());
    command::AddListener add;
    add.slot = slot;
    add.protocol = config_.listeners[slot].protocol;
    add.proxy = config_.listeners[slot].proxy;
    add.policy = config_.listeners[slot].policy;
    add.socket = std::move(group[w]);
    add.counters = listenerCounters_[slot].get();
    add.table = table;
    workers_[w]->post(WorkerCommand{std::move(add), completion});
  }
  return true;
}

void Engine::removeListener(uint32_t slot, int64_t drainMs, std::function<void()> done) {
  if (!started_ || stopRequested_ || slot >= listenerFds_.size() || listenerFds_[slot].empty()) {
    if (done) done();
    return;
  }
  // As in stop(): refuse new connections now (TCP only, see there); the workers close the sockets.
  if (config_.listeners[slot].protocol == Protocol::Tcp)
    for (int fd : listenerFds_[slot]) ::shutdown(fd, SHUT_RD);
  listenerFds_[slot].clear();
  broadcast(command::RemoveListener{slot, drainMs}, completionForAll(std::move(done)));
}

void Engine::setListenerProxy(uint32_t slot, ProxySettings proxy, std::function<void()> done) {
  if (!started_ || stopRequested_ || slot >= config_.listeners.size()) {
    if (done) done();
    return;
  }
  config_.listeners[slot].proxy = proxy;
  broadcast(command::SetListenerProxy{slot, std::move(proxy)}, completionForAll(std::move(done)));
}

void Engine::setListenerPolicy(uint32_t slot, ListenerPolicy policy, std::function<void()> done) {
  if (!started_ || stopRequested_ || slot >= config_.listeners.size()) {
    if (done) done();
    return;
  }
  config_.listeners[slot].policy = policy;
  broadcast(command::SetListenerPolicy{slot, std::move(policy)}, completionForAll(std::move(done)));
}

void Engine::closeFlows(FlowFilter filter, std::function<void(uint64_t)> done) {
  if (!started_ || stopRequested_) {
    done(0);
    return;
  }
  auto closed = std::make_shared<std::atomic<uint64_t>>(0);
  broadcast(command::CloseFlows{filter, closed}, completionForAll([closed, done] { done(closed->load()); }));
}

void Engine::applyBackends(uint32_t slot, std::vector<BackendSpec> specs, std::optional<Algorithm> algorithm,
                           std::function<void()> done) {
  if (slot >= config_.listeners.size()) {
    if (done) done();
    return;
  }
  if (algorithm) config_.listeners[slot].algorithm = *algorithm;
  std::shared_ptr<const BackendTable> table = buildTable(config_.listeners[slot].algorithm, std::move(specs));
  if (!started_ || stopRequested_) {
    if (done) done();
    return;
  }
  broadcast(command::ApplyBackends{slot, std::move(table)}, completionForAll(std::move(done)));
}

void Engine::snapshot(FlowFilter filter, std::function<void(std::vector<FlowInfo>)> done) {
  if (!started_ || stopRequested_) {
    done({});
    return;
  }
  auto request = std::make_shared<SnapshotRequest>();
  request->filter = filter;
  auto completion = completionForAll([request, done] {
    std::vector<FlowInfo> flows;
    {
      std::lock_guard<std::mutex> lock(request->mutex);
      flows.swap(request->flows);
    }
    done(std::move(flows));
  });
  broadcast(command::Snapshot{request}, completion);
}

void Engine::stop(int64_t drainMs, std::function<void()> done) {
  if (!started_) {
    if (done) done();
    return;
  }
  bool alreadyStopped = false;
  {
    std::lock_guard<std::mutex> lock(stopMutex_);
    if (stopped_) {
      alreadyStopped = true;
    } else if (done) {
      stopWaiters_.push_back(std::move(done));
    }
  }
  if (alreadyStopped) {
    if (done) done();
    return;
  }
  // The first stop's completion fires when every worker has left its loop; a later stop only
  // shortens the drain, and its caller waits with the first one's waiters.
  std::shared_ptr<Completion> completion;
  if (!stopRequested_) {
    completion = std::make_shared<Completion>(static_cast<int>(workers_.size()), [this] {
      std::vector<std::function<void()>> waiters;
      {
        std::lock_guard<std::mutex> lock(stopMutex_);
        stopped_ = true;
        waiters.swap(stopWaiters_);
      }
      for (auto& w : waiters) w();
    });
  }
  // The kernel refuses new connections from this moment: shutdown() on a listening socket stops
  // it listening while the descriptor stays open, so the workers, which own the descriptors and
  // close them, never see one closed under them.
  //
  // Not for a UDP listener: shutdown() does not stop the kernel from queueing datagrams to an
  // unconnected socket, and leaves it readable (EPOLLRDHUP) for good, which would spin its
  // level-triggered worker. A UDP listener stops when its worker closes it, at once.
  if (!stopRequested_) {
    for (size_t slot = 0; slot < listenerFds_.size(); ++slot) {
      if (config_.listeners[slot].protocol != Protocol::Tcp) continue;
      for (int fd : listenerFds_[slot]) ::shutdown(fd, SHUT_RD);
    }
    listenerFds_.clear();
  }
  stopRequested_ = true;
  broadcast(command::Stop{drainMs}, completion);
}

void Engine::releaseWorkers() {
  join();
  workers_.clear();
}

void Engine::join() {
  for (auto& w : workers_) w->join();
}

size_t Engine::readStats(double* out, size_t capacity) const {
  size_t needed = (listenerCounters_.size() + backendCounters_.size()) * kCounterCount;
  if (capacity < needed) return needed;
  size_t offset = 0;
  for (const auto& set : listenerCounters_) {
    set->sumInto(out + offset);
    offset += kCounterCount;
  }
  for (const auto& set : backendCounters_) {
    if (set) {
      set->sumInto(out + offset);
    } else {
      for (size_t c = 0; c < kCounterCount; ++c) out[offset + c] = 0;
    }
    offset += kCounterCount;
  }
  return needed;
}

size_t Engine::readLatency(double* out, size_t capacity) const {
  size_t needed = backendCounters_.size() * kHistogramSlots;
  if (capacity < needed) return needed;
  for (size_t key = 0; key < backendCounters_.size(); ++key) {
    double* block = out + key * kHistogramSlots;
    if (backendCounters_[key]) {
      backendCounters_[key]->sumLatencyInto(block);
    } else {
      std::fill(block, block + kHistogramSlots, 0.0);
    }
  }
  return needed;
}

}  // namespace lb4
