#include "worker.h"

#include <signal.h>

#include <algorithm>
#include <type_traits>
#include <variant>

#include "io/epoll_tag.h"

namespace lb4 {

namespace {

// Timers are coarse: connect deadlines are checked every tick, idle flows every sweep.
constexpr int64_t kTickMs = 25;

int64_t idleSweepMs(int64_t idleTimeoutMs) { return std::clamp<int64_t>(idleTimeoutMs / 8, kTickMs, 1000); }

}  // namespace

Worker::Worker(uint32_t index, const WorkerOptions& options, std::vector<ListenerSlot> listeners, EventQueue& events,
               const std::atomic<uint32_t>& flowLogEvery, SessionReplication& replication)
    : index_(index),
      options_(options),
      events_(events),
      listeners_(std::move(listeners)),
      tcp_(index, options_, clock_, loop_, listeners_, events, flowLogEvery),
      udp_(index, options_, clock_, loop_, listeners_, events, flowLogEvery, replication) {}

Worker::~Worker() {
  join();
  // The loop closes every flow before it returns; a worker whose thread never ran has none.
}

SysResult Worker::init() {
  SysResult r = loop_.init();
  if (!r.ok()) return r;
  r = commands_.init();
  if (!r.ok()) return r;
  r = loop_.add(commands_.fd(), EPOLLIN, makeTag(TagKind::Wake, 0));
  if (!r.ok()) return r;
  for (uint32_t i = 0; i < listeners_.size(); ++i) {
    // Level-triggered: the accept loop takes a bounded batch per pass and comes back for more.
    r = loop_.add(listeners_[i].socket.get(), EPOLLIN, makeTag(TagKind::Listener, i));
    if (!r.ok()) return r;
  }
  return SysResult{0, 0};
}

void Worker::start(std::vector<std::shared_ptr<const BackendTable>> tables) {
  for (uint32_t i = 0; i < tables.size() && i < listeners_.size(); ++i) listeners_[i].adoptTable(std::move(tables[i]), index_);
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

bool Worker::hasYielded() const { return tcp_.hasYielded(); }

void Worker::run() {
  // Signals belong to the Node.js main thread; a worker never takes one.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);

  clock_.update();
  nextTickMs_ = clock_.now() + kTickMs;
  nextIdleSweepMs_ = clock_.now() + idleSweepMs(options_.idleTimeoutMs);
  nextUdpSweepMs_ = clock_.now() + udp_.sweepIntervalMs();
  for (;;) {
    int timeout = hasYielded() ? 0 : static_cast<int>(std::max<int64_t>(0, nextTickMs_ - clock_.now()));
    int n = loop_.wait(timeout);
    clock_.update();
    // Listeners last: every socket that was readable when the wait returned has been read before
    // any new client datagram is. A UDP client's warm upstream socket (udp_proxy.h) has then had
    // whatever its backend sent late read and dropped before the client's next datagram reuses
    // it, without a read per reuse to make sure.
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = loop_.event(i);
      const uint64_t index = tagIndex(ev.data.u64);
      switch (tagKind(ev.data.u64)) {
        case TagKind::Wake:
          runCommands();
          break;
        case TagKind::Listener:
          break;  // in the loop below
        case TagKind::TcpClient:
        case TagKind::TcpBackend:
          tcp_.onFlowEvent(index, tagKind(ev.data.u64) == TagKind::TcpBackend, ev.events);
          break;
        case TagKind::UdpUpstream:
          udp_.onUpstreamEvent(index, ev.events);
          break;
      }
    }
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = loop_.event(i);
      if (tagKind(ev.data.u64) == TagKind::Listener) onListenerReadable(static_cast<uint32_t>(tagIndex(ev.data.u64)));
    }
    tcp_.runYielded();
    tcp_.releaseClosed();
    udp_.releaseClosed();
    if (clock_.now() >= nextTickMs_) onTick();
    if (stopping_ && (tcp_.liveFlows() == 0 || clock_.now() >= drainDeadlineMs_)) break;
  }

  // Drain ran out (or nothing was left): close what remains, abortively, so both peers learn at
  // once that the flow is gone.
  tcp_.closeAll(CloseReason::Drained);
  tcp_.releaseClosed();
  tcp_.flushConnectTallies();
  udp_.closeAll(CloseReason::Drained);
  udp_.releaseClosed();
  udp_.flushTallies();
  closeListeners();
  for (auto& c : stopCompletions_) c->arrive();
}

void Worker::runCommands() {
  for (WorkerCommand& c : commands_.take()) {
    std::visit(
        [&](auto& body) {
          using Body = std::decay_t<decltype(body)>;
          if constexpr (std::is_same_v<Body, command::Stop>) {
            apply(body, c.completion);
          } else {
            apply(body);
            if (c.completion) c.completion->arrive();
          }
        },
        c.body);
  }
}

void Worker::ensureSlot(uint32_t slot) {
  if (slot >= listeners_.size()) listeners_.resize(slot + 1);
}

void Worker::apply(command::ApplyBackends& c) {
  if (c.slot >= listeners_.size()) return;  // a slot this worker never had: nothing routes to it
  listeners_[c.slot].adoptTable(std::move(c.table), index_);
  if (listeners_[c.slot].protocol == Protocol::Udp) udp_.onTableChanged(c.slot);
}

void Worker::apply(command::Snapshot& c) {
  std::vector<FlowInfo> mine;
  tcp_.snapshot(c.request->filter, mine);
  udp_.snapshot(c.request->filter, mine);
  std::lock_guard<std::mutex> lock(c.request->mutex);
  for (auto& info : mine) c.request->flows.push_back(std::move(info));
}

void Worker::apply(command::Stop& c, std::shared_ptr<Completion>& completion) {
  if (completion) stopCompletions_.push_back(std::move(completion));
  int64_t deadline = clock_.now() + std::max<int64_t>(0, c.drainMs);
  // A second stop can only shorten the drain.
  drainDeadlineMs_ = stopping_ ? std::min(drainDeadlineMs_, deadline) : deadline;
  stopping_ = true;
  // A UDP session's replies leave through the listener socket, which closes now: its sessions
  // cannot be served any more, so they end at once instead of draining.
  udp_.closeAll(CloseReason::Drained);
  closeListeners();
}

void Worker::apply(command::AddListener& c) {
  ensureSlot(c.slot);
  ListenerSlot& l = listeners_[c.slot];
  l.protocol = c.protocol;
  l.proxy = std::move(c.proxy);
  l.policy = std::move(c.policy);
  l.counters = c.counters;
  l.adoptTable(std::move(c.table), index_);
  if (stopping_) return;  // the engine is going away: the socket just closes with the command
  // The worker owns the socket from here on, even if epoll has no room for it now (the tick
  // tries again): the engine still knows its number and may shut it down.
  l.paused = !loop_.watch(c.socket.get(), EPOLLIN, makeTag(TagKind::Listener, c.slot)).ok();
  l.socket = std::move(c.socket);
}

void Worker::apply(command::RemoveListener& c) {
  if (c.slot >= listeners_.size()) return;
  ListenerSlot& l = listeners_[c.slot];
  // Its flows run on until they end or the drain deadline; the tick closes what is left then.
  l.drainDeadlineMs = clock_.now() + std::max<int64_t>(0, c.drainMs);
  if (l.protocol == Protocol::Udp) {
    FlowFilter filter;
    filter.listener = c.slot;
    // UDP sessions answer through the listener socket: while there are sessions to drain it
    // stays open (and keeps its place in the reuseport group, so the port stays taken until the
    // drain ends), read only for their datagrams. No session will start: warm sockets go now.
    if (c.drainMs > 0 && udp_.liveOn(c.slot) > 0 && l.socket) {
      l.udpDraining = true;
      udp_.closeWarm(filter);
      return;
    }
    udp_.closeSessions(filter, CloseReason::Drained);
  }
  l.socket.reset();
  l.paused = false;
}

void Worker::apply(command::CloseFlows& c) {
  c.closed->fetch_add(tcp_.closeFlows(c.filter, CloseReason::Drained) + udp_.closeSessions(c.filter, CloseReason::Drained),
                      std::memory_order_relaxed);
}

void Worker::apply(command::ReportSessions&) { udp_.reportAll(); }

void Worker::apply(command::SetListenerProxy& c) {
  if (c.slot < listeners_.size()) listeners_[c.slot].proxy = std::move(c.proxy);
}

void Worker::apply(command::SetListenerPolicy& c) {
  if (c.slot < listeners_.size()) listeners_[c.slot].policy = std::move(c.policy);
}

void Worker::endUdpDrain(ListenerSlot& l) {
  if (!l.udpDraining) return;
  l.udpDraining = false;
  l.socket.reset();
  l.paused = false;
}

void Worker::closeListeners() {
  for (auto& l : listeners_) l.socket.reset();
}

void Worker::onListenerReadable(uint32_t slot) {
  // An event already returned for a listener closed earlier in this pass finds no socket.
  if (stopping_ || slot >= listeners_.size() || !listeners_[slot].socket) return;
  bool keepWatching = true;
  switch (listeners_[slot].protocol) {
    case Protocol::Tcp:
      keepWatching = tcp_.acceptOn(slot);
      break;
    case Protocol::Udp:
      udp_.readListener(slot);
      break;
  }
  if (!keepWatching) pauseListener(slot);
}

void Worker::pauseListener(uint32_t slot) {
  loop_.remove(listeners_[slot].socket.get());
  listeners_[slot].paused = true;
}

void Worker::onTick() {
  const int64_t now = clock_.now();
  nextTickMs_ = now + kTickMs;
  tcp_.expireConnects();
  tcp_.expireHeaders();
  tcp_.expireHellos();
  tcp_.serviceQueues();
  if (now >= nextIdleSweepMs_) {
    nextIdleSweepMs_ = now + idleSweepMs(options_.idleTimeoutMs);
    tcp_.expireIdle();
  }
  if (now >= nextUdpSweepMs_) {
    nextUdpSweepMs_ = now + udp_.sweepIntervalMs();
    udp_.expireIdle();
  }
  tcp_.flushConnectTallies();
  udp_.flushTallies();
  for (uint32_t slot = 0; slot < listeners_.size(); ++slot) {
    ListenerSlot& l = listeners_[slot];
    if (l.drainDeadlineMs == 0 || now < l.drainDeadlineMs) continue;
    l.drainDeadlineMs = 0;
    FlowFilter filter;
    filter.listener = slot;
    tcp_.closeFlows(filter, CloseReason::Drained);
    udp_.closeSessions(filter, CloseReason::Drained);
    endUdpDrain(l);
  }
  // A draining UDP listener whose sessions all ended (idle, answered) lets its socket go.
  for (uint32_t slot = 0; slot < listeners_.size(); ++slot) {
    ListenerSlot& l = listeners_[slot];
    if (l.udpDraining && udp_.liveOn(slot) == 0) endUdpDrain(l);
  }
  for (uint32_t slot = 0; slot < listeners_.size(); ++slot) {
    ListenerSlot& l = listeners_[slot];
    if (!l.paused || !l.socket) continue;
    tcp_.retakeReserve();
    if (loop_.watch(l.socket.get(), EPOLLIN, makeTag(TagKind::Listener, slot)).ok()) l.paused = false;
  }
  tcp_.releaseClosed();
  udp_.releaseClosed();
}

}  // namespace lb4
