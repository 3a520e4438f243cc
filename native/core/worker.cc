#include "worker.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>

#include "clock.h"

namespace lb4 {

namespace {

// Epoll tags: the low 2 bits say what the descriptor is, the rest is a listener index or a slot.
enum TagKind : uint64_t { kTagWake = 0, kTagListener = 1, kTagFlowClient = 2, kTagFlowBackend = 3 };
inline uint64_t makeTag(TagKind kind, uint64_t index) { return (index << 2) | kind; }

// Timers are coarse: connect deadlines are checked every tick, idle flows every sweep.
constexpr int64_t kTickMs = 25;
constexpr int kAcceptBatch = 64;
constexpr int kShedBatch = 1024;

int64_t idleSweepMs(int64_t idleTimeoutMs) { return std::clamp<int64_t>(idleTimeoutMs / 8, kTickMs, 1000); }

}  // namespace

Worker::Worker(uint32_t index, const WorkerOptions& options, std::vector<UniqueFd> listenerFds,
               std::vector<CounterSet*> listenerCounters, EventQueue& events)
    : index_(index),
      options_(options),
      listenerFds_(std::move(listenerFds)),
      listenerPaused_(listenerFds_.size(), false),
      listenerCounters_(std::move(listenerCounters)),
      events_(events),
      pipes_(options.maxIdlePipes, options.pipeSize),
      flows_(index),
      balancers_(listenerFds_.size()) {}

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
  r = loop_.add(commands_.fd(), EPOLLIN, makeTag(kTagWake, 0));
  if (!r.ok()) return r;
  for (uint32_t i = 0; i < listenerFds_.size(); ++i) {
    // Level-triggered: the accept loop takes a bounded batch per pass and comes back for more.
    r = loop_.add(listenerFds_[i].get(), EPOLLIN, makeTag(kTagListener, i));
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
      uint64_t kind = ev.data.u64 & 3;
      uint64_t index = ev.data.u64 >> 2;
      switch (kind) {
        case kTagWake:
          runCommands();
          break;
        case kTagListener:
          if (index < listenerFds_.size() && listenerFds_[index]) acceptOn(static_cast<uint32_t>(index));
          break;
        default:
          if (Flow* f = flows_.at(static_cast<uint32_t>(index))) onFlowEvent(*f, kind == kTagFlowBackend, ev.events);
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
    }
  }
}

void Worker::adoptTables(std::shared_ptr<const BackendTables> tables) {
  tables_ = std::move(tables);
  for (size_t i = 0; i < balancers_.size(); ++i) {
    const BackendTable* t = tables_ && i < tables_->perListener.size() ? tables_->perListener[i].get() : nullptr;
    balancers_[i].reset(t);
  }
}

void Worker::snapshotInto(SnapshotRequest& request) {
  const SnapshotFilter& filter = request.filter;
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

void Worker::shutdownListeners() {
  for (auto& fd : listenerFds_)
    if (fd) ::shutdown(fd.get(), SHUT_RD);
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
    int fd = accept4(lfd, client.get(), client.lengthPtr(), SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      startFlow(fd, client, listener);
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
      int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      ::close(fd);
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
  for (uint32_t i = 0; i < listenerPaused_.size(); ++i) {
    if (!listenerPaused_[i] || !listenerFds_[i]) continue;
    if (!reserveFd_) reserveFd_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (loop_.add(listenerFds_[i].get(), EPOLLIN, makeTag(kTagListener, i)).ok()) listenerPaused_[i] = false;
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
  if (it == tallies_.end()) it = tallies_.insert(tallies_.end(), ConnectTally{backendKey, 0, 0, 0});
  if (ok) {
    it->successes++;
  } else {
    it->failures++;
    if (timeout) it->timeouts++;
  }
}

void Worker::flushConnectTallies() {
  // Connect outcomes go up once per tick per backend that had any, and only when something
  // failed: a healthy backend's successes alone are not news.
  for (const ConnectTally& t : tallies_) {
    if (t.failures == 0) continue;
    Event e{EventType::BackendConnects};
    e.worker = index_;
    e.backendKey = t.backendKey;
    e.count = t.failures;
    e.timeouts = t.timeouts;
    e.successes = t.successes;
    events_.push(e);
  }
  tallies_.clear();
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
