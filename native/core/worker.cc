#include "worker.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>

#include "io/clock.h"
#include "io/epoll_tag.h"

namespace lb4 {

namespace {

// Timers are coarse: connect deadlines are checked every tick, idle flows every sweep.
constexpr int64_t kTickMs = 25;
constexpr int kAcceptBatch = 64;
constexpr int kShedBatch = 1024;

int64_t idleSweepMs(int64_t idleTimeoutMs) { return std::clamp<int64_t>(idleTimeoutMs / 8, kTickMs, 1000); }

}  // namespace

Worker::Worker(uint32_t index, const WorkerOptions& options, std::vector<UniqueFd> listenerFds,
               std::vector<CounterSet*> listenerCounters, EventQueue& events,
               const std::atomic<uint32_t>& flowLogEvery)
    : index_(index),
      options_(options),
      listenerFds_(std::move(listenerFds)),
      listenerPaused_(listenerFds_.size(), false),
      listenerCounters_(std::move(listenerCounters)),
      events_(events),
      pipes_(options.maxIdlePipes, options.pipeSize),
      scratch_(new char[kScratchSize]),
      flows_(index),
      tables_(listenerFds_.size()),
      pickers_(listenerFds_.size()),
      listenerDrainDeadlineMs_(listenerFds_.size(), 0),
      flowLogEvery_(flowLogEvery) {}

Worker::~Worker() {
  join();
  // A worker stopped before its thread ran still owns flows only if run() never started; the
  // loop closes every flow before it returns, so nothing else is left here.
}

SysResult Worker::init() {
  SysResult r = loop_.init();
  if (!r.ok()) return r;
  r = commands_.init();
  if (!r.ok()) return r;
  r = loop_.add(commands_.fd(), EPOLLIN, makeTag(TagKind::Wake, 0));
  if (!r.ok()) return r;
  for (uint32_t i = 0; i < listenerFds_.size(); ++i) {
    // Level-triggered: the accept loop takes a bounded batch per pass and comes back for more.
    r = loop_.add(listenerFds_[i].get(), EPOLLIN, makeTag(TagKind::Listener, i));
    if (!r.ok()) return r;
  }
  reserveFd_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
  return SysResult{0, 0};
}

void Worker::start(std::shared_ptr<const BackendTables> tables) {
  adoptTables(std::move(tables));
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::run() {
  // Signals belong to the Node.js main thread; a worker never takes one.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);

  now_ = monotonicMs();
  nextTickMs_ = now_ + kTickMs;
  nextIdleSweepMs_ = now_ + idleSweepMs(options_.idleTimeoutMs);
  for (;;) {
    int timeout = yielded_.empty() ? static_cast<int>(std::max<int64_t>(0, nextTickMs_ - now_)) : 0;
    int n = loop_.wait(timeout);
    now_ = monotonicMs();
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = loop_.event(i);
      const uint64_t index = tagIndex(ev.data.u64);
      switch (tagKind(ev.data.u64)) {
        case TagKind::Wake:
          runCommands();
          break;
        case TagKind::Listener:
          if (index < listenerFds_.size() && listenerFds_[index]) acceptOn(static_cast<uint32_t>(index));
          break;
        case TagKind::TcpClient:
        case TagKind::TcpBackend:
          if (Flow* f = flows_.at(static_cast<uint32_t>(index)))
            onFlowEvent(*f, tagKind(ev.data.u64) == TagKind::TcpBackend, ev.events);
          break;
      }
    }
    runYielded();
    flows_.releaseClosed();
    if (now_ >= nextTickMs_) onTick();
    if (stopping_ && (flows_.live() == 0 || now_ >= drainDeadlineMs_)) break;
  }

  // Drain ran out (or nothing was left): close what remains, abortively, so both peers learn at
  // once that the flow is gone.
  flows_.forEach([this](Flow& f) { closeFlow(f, CloseReason::Drained, true); });
  flows_.releaseClosed();
  flushConnectTallies();
  closeListeners();
  for (auto& c : stopCompletions_) c->arrive();
}

void Worker::runCommands() {
  for (WorkerCommand& c : commands_.take()) {
    switch (c.kind) {
      case WorkerCommand::Kind::ApplyBackends:
        adoptTables(std::move(c.tables));
        if (c.completion) c.completion->arrive();
        break;
      case WorkerCommand::Kind::Snapshot:
        snapshotInto(*c.snapshot);
        if (c.completion) c.completion->arrive();
        break;
      case WorkerCommand::Kind::Stop:
        beginStop(c.drainMs, std::move(c.completion));
        break;
      case WorkerCommand::Kind::AddListener:
        addListener(c);
        if (c.completion) c.completion->arrive();
        break;
      case WorkerCommand::Kind::RemoveListener:
        removeListener(c.slot, c.drainMs);
        if (c.completion) c.completion->arrive();
        break;
      case WorkerCommand::Kind::CloseFlows:
        c.closed->fetch_add(closeFlows(c.filter, CloseReason::Drained), std::memory_order_relaxed);
        if (c.completion) c.completion->arrive();
        break;
    }
  }
}

void Worker::ensureSlot(uint32_t slot) {
  if (slot < tables_.size()) return;
  listenerFds_.resize(slot + 1);
  listenerPaused_.resize(slot + 1, false);
  listenerCounters_.resize(slot + 1, nullptr);
  tables_.resize(slot + 1);
  pickers_.resize(slot + 1);
  listenerDrainDeadlineMs_.resize(slot + 1, 0);
}

void Worker::adoptTables(std::shared_ptr<const BackendTables> tables) {
  if (!tables) return;
  for (uint32_t i = 0; i < tables->perListener.size() && i < tables_.size(); ++i) adoptTable(i, tables->perListener[i]);
}

void Worker::adoptTable(uint32_t slot, std::shared_ptr<const BackendTable> table) {
  tables_[slot] = std::move(table);
  const BackendTable* t = tables_[slot].get();
  // A picker keeps what outlives a table (least connections' random state); a new algorithm
  // needs a new picker.
  if (t && (!pickers_[slot] || pickers_[slot]->algorithm() != t->algorithm)) pickers_[slot] = makePicker(t->algorithm, index_);
  if (pickers_[slot]) pickers_[slot]->reset(t);
}

void Worker::addListener(WorkerCommand& c) {
  ensureSlot(c.slot);
  UniqueFd fd(c.fd);
  listenerCounters_[c.slot] = c.counters;
  adoptTable(c.slot, c.table);
  if (stopping_) return;  // the engine is going away: the socket just closes
  // The worker owns the socket from here on, even if epoll refuses it for now (the tick tries
  // again): the engine still knows its number and may shut it down.
  listenerPaused_[c.slot] = !loop_.watch(fd.get(), EPOLLIN, makeTag(TagKind::Listener, c.slot)).ok();
  listenerFds_[c.slot] = std::move(fd);
}

void Worker::removeListener(uint32_t slot, int64_t drainMs) {
  if (slot >= listenerFds_.size()) return;
  listenerFds_[slot].reset();
  listenerPaused_[slot] = false;
  // Its flows run on until they end or the drain deadline; the tick closes what is left then.
  listenerDrainDeadlineMs_[slot] = now_ + std::max<int64_t>(0, drainMs);
}

uint64_t Worker::closeFlows(const FlowFilter& filter, CloseReason reason) {
  uint64_t closed = 0;
  flows_.forEach([&](Flow& f) {
    if (filter.listener >= 0 && f.listener != static_cast<uint32_t>(filter.listener)) return;
    if (filter.backendKey >= 0 && (!f.backendCounters || f.backendKey != static_cast<uint32_t>(filter.backendKey))) return;
    closeFlow(f, reason, true);
    ++closed;
  });
  return closed;
}

void Worker::snapshotInto(SnapshotRequest& request) {
  const FlowFilter& filter = request.filter;
  std::vector<FlowInfo> mine;
  int64_t wallOffset = wallClockMs() - monotonicMs();
  flows_.forEach([&](Flow& f) {
    if (mine.size() >= filter.limit) return;
    if (filter.listener >= 0 && f.listener != static_cast<uint32_t>(filter.listener)) return;
    bool hasBackend = f.backendCounters != nullptr;
    if (filter.backendKey >= 0 && (!hasBackend || f.backendKey != static_cast<uint32_t>(filter.backendKey))) return;
    mine.push_back(FlowInfo{f.id, f.listener, index_, f.state, f.clientAddress.toString(), hasBackend, f.backendKey,
                            hasBackend ? f.backendAddress.toString() : std::string(), f.startMs + wallOffset,
                            f.up.bytes, f.down.bytes});
  });
  std::lock_guard<std::mutex> lock(request.mutex);
  for (auto& info : mine) request.flows.push_back(std::move(info));
}

void Worker::beginStop(int64_t drainMs, std::shared_ptr<Completion> completion) {
  if (completion) stopCompletions_.push_back(std::move(completion));
  int64_t deadline = now_ + std::max<int64_t>(0, drainMs);
  // A second stop can only shorten the drain.
  drainDeadlineMs_ = stopping_ ? std::min(drainDeadlineMs_, deadline) : deadline;
  stopping_ = true;
  closeListeners();
}

void Worker::closeListeners() {
  for (auto& fd : listenerFds_) fd.reset();
}

void Worker::acceptOn(uint32_t listener) {
  if (stopping_) return;
  int lfd = listenerFds_[listener].get();
  for (int i = 0; i < kAcceptBatch; ++i) {
    SocketAddress client;
    client.prepareForKernel();
    UniqueFd fd(accept4(lfd, client.get(), client.lengthPtr(), SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd) {
      startFlow(std::move(fd), client, listener);
      continue;
    }
    int err = errno;
    // EINVAL: the listener was shut down by stop() and the Stop command is on its way.
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINVAL) return;
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
      shedLoad(listener);
      return;
    }
    listenerCounters(listener).add(Counter::accept_errors, 1);
    Event e{EventType::ListenerError};
    e.worker = index_;
    e.listener = listener;
    e.error = err;
    events_.push(e);
    return;
  }
}

void Worker::shedLoad(uint32_t listener) {
  // Out of descriptors, the connection waits in the backlog and the level-triggered listener
  // would wake us forever. Give up the reserve descriptor, accept and close what is waiting (the
  // clients see a prompt close rather than a hang), then take the reserve back.
  int lfd = listenerFds_[listener].get();
  if (reserveFd_) {
    reserveFd_.reset();
    for (int i = 0; i < kShedBatch; ++i) {
      UniqueFd shed(accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!shed) break;  // closed as it goes out of scope
      listenerCounters(listener).add(Counter::accept_shed, 1);
    }
    reserveFd_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
  if (!reserveFd_) {
    // Not even the reserve could be had back: stop watching this listener until the next tick
    // instead of spinning on it.
    loop_.remove(lfd);
    listenerPaused_[listener] = true;
  }
}

void Worker::onTick() {
  nextTickMs_ = now_ + kTickMs;
  expireConnects();
  if (now_ >= nextIdleSweepMs_) {
    nextIdleSweepMs_ = now_ + idleSweepMs(options_.idleTimeoutMs);
    expireIdle();
  }
  flushConnectTallies();
  for (uint32_t slot = 0; slot < listenerDrainDeadlineMs_.size(); ++slot) {
    if (listenerDrainDeadlineMs_[slot] == 0 || now_ < listenerDrainDeadlineMs_[slot]) continue;
    listenerDrainDeadlineMs_[slot] = 0;
    FlowFilter filter;
    filter.listener = slot;
    closeFlows(filter, CloseReason::Drained);
  }
  for (uint32_t i = 0; i < listenerPaused_.size(); ++i) {
    if (!listenerPaused_[i] || !listenerFds_[i]) continue;
    if (!reserveFd_) reserveFd_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (loop_.watch(listenerFds_[i].get(), EPOLLIN, makeTag(TagKind::Listener, i)).ok()) listenerPaused_[i] = false;
  }
  flows_.releaseClosed();
}

void Worker::expireConnects() {
  while (connectHead_ && connectHead_->connectDeadlineMs <= now_) onConnectFailed(*connectHead_, true);
}

void Worker::expireIdle() {
  flows_.forEach([this](Flow& f) {
    if (f.state != FlowState::Established || now_ - f.lastActiveMs < options_.idleTimeoutMs) return;
    // A flow idle with bytes still on their way (a receiver that stopped reading) is cut with a
    // reset: a FIN would tell the client a truncated stream had ended normally.
    bool stalled = f.up.holdsBytes() || f.down.holdsBytes() || (f.client.readable && !f.up.eof) ||
                   (f.backend.readable && !f.down.eof);
    closeFlow(f, CloseReason::IdleTimeout, stalled);
  });
}

void Worker::tallyConnect(uint32_t backendKey, bool ok, bool timeout) {
  auto it = std::find_if(tallies_.begin(), tallies_.end(), [&](const ConnectTally& t) { return t.backendKey == backendKey; });
  if (it == tallies_.end()) it = tallies_.insert(tallies_.end(), ConnectTally{backendKey, 0, 0, 0, 0});
  if (ok) {
    it->successes++;
    it->trailingFailures = 0;
  } else {
    it->failures++;
    it->trailingFailures++;
    if (timeout) it->timeouts++;
  }
}

void Worker::flushConnectTallies() {
  // Connect outcomes go up once per tick per backend, when something failed, or when a backend
  // that was failing succeeds again (so the control plane can count consecutive failures). A
  // healthy backend's successes alone are not news.
  for (const ConnectTally& t : tallies_) {
    auto failing = std::find(failingKeys_.begin(), failingKeys_.end(), t.backendKey);
    bool wasFailing = failing != failingKeys_.end();
    if (t.failures == 0 && !wasFailing) continue;
    if (t.trailingFailures == 0 && wasFailing) {
      failingKeys_.erase(failing);
    } else if (t.trailingFailures > 0 && !wasFailing) {
      failingKeys_.push_back(t.backendKey);
    }
    Event e{EventType::BackendConnects};
    e.worker = index_;
    e.backendKey = t.backendKey;
    e.count = t.failures;
    e.timeouts = t.timeouts;
    e.successes = t.successes;
    e.trailingFailures = t.trailingFailures;
    events_.push(e);
  }
  tallies_.clear();
}

void Worker::logClosedFlow(const Flow& f) {
  uint32_t every = flowLogEvery_.load(std::memory_order_relaxed);
  if (every == 0 || ++flowsClosed_ % every != 0) return;
  Event e{EventType::FlowClosed};
  e.worker = index_;
  e.listener = f.listener;
  e.flowId = f.id;
  e.hasBackend = f.backendCounters != nullptr;
  e.backendKey = f.backendKey;
  e.reason = f.closeReason;
  e.client = f.clientAddress;
  e.bytesToBackend = f.up.bytes;
  e.bytesToClient = f.down.bytes;
  e.startWallMs = f.startMs + (wallClockMs() - monotonicMs());
  e.durationMs = now_ - f.startMs;
  events_.push(e);
}

void Worker::runYielded() {
  if (yielded_.empty()) return;
  std::vector<uint32_t> slots;
  slots.swap(yielded_);
  for (uint32_t slot : slots) {
    Flow* f = flows_.at(slot);
    if (!f || !f->onYieldList) continue;
    f->onYieldList = false;
    if (f->state == FlowState::Established) pumpFlow(*f);
  }
}

}  // namespace lb4
