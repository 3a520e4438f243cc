// The life of a TCP flow on a worker: accept, connect (with timeout and retries), forwarding
// with splice(2), half-close, reset propagation and close. See DESIGN.md section 3.

#include "tcp/tcp_proxy.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "balance/hash.h"
#include "io/epoll_tag.h"
#include "io/sys_result.h"
#include "proxy_protocol/header_reader.h"
#include "proxy_protocol/header_writer.h"
#include "sni/hello_reader.h"

namespace lb4 {

namespace {

// Edge-triggered for both directions at once: a flow's sockets are registered once and never
// modified, so forwarding costs no epoll_ctl calls.
constexpr uint32_t kFlowEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;

// Accepts per readable listener per pass (level-triggered: the rest waits for the next pass),
// and connections shed at most at once when descriptors ran out.
constexpr int kAcceptBatch = 64;
constexpr int kShedBatch = 1024;

void setNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// A refused client gets a reset: it learns at once that nothing will be served, and no lb4
// socket lingers in TIME_WAIT for a connection that carried nothing.
void armReset(int fd) {
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

int socketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

}  // namespace

TcpProxy::TcpProxy(uint32_t workerIndex, const WorkerOptions& options, const LoopClock& clock, EpollLoop& loop,
                   std::vector<ListenerSlot>& listeners, EventQueue& events, const std::atomic<uint32_t>& flowLogEvery)
    : index_(workerIndex),
      options_(options),
      clock_(clock),
      loop_(loop),
      listeners_(listeners),
      events_(events),
      flowLogEvery_(flowLogEvery),
      reserveFd_(open("/dev/null", O_RDONLY | O_CLOEXEC)),
      pump_(options.maxIdlePipes, options.pipeSize, options.maxLargePipes),
      flows_(workerIndex) {}

// --- listeners --------------------------------------------------------------------------------

bool TcpProxy::acceptOn(uint32_t listener) {
  int lfd = listeners_[listener].socket.get();
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
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINVAL) return true;
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
      shedLoad(listener);
      // Not even the reserve could be had back: the worker stops watching this listener until
      // the next tick instead of spinning on it.
      return static_cast<bool>(reserveFd_);
    }
    listenerCounters(listener).add(Counter::accept_errors, 1);
    Event e{EventType::ListenerError};
    e.worker = index_;
    e.listener = listener;
    e.error = err;
    events_.push(e);
    return true;
  }
  return true;
}

void TcpProxy::shedLoad(uint32_t listener) {
  // Out of descriptors, the connection waits in the backlog and the level-triggered listener
  // would wake us forever. Give up the reserve descriptor, accept and close what is waiting (the
  // clients see a prompt close rather than a hang), then take the reserve back.
  int lfd = listeners_[listener].socket.get();
  if (reserveFd_) {
    reserveFd_.reset();
    for (int i = 0; i < kShedBatch; ++i) {
      UniqueFd shed(accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!shed) break;  // closed as it goes out of scope
      listenerCounters(listener).add(Counter::accept_shed, 1);
    }
    reserveFd_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
}

void TcpProxy::retakeReserve() {
  if (!reserveFd_) reserveFd_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
}

// --- flows ------------------------------------------------------------------------------------

void TcpProxy::startFlow(UniqueFd fd, const SocketAddress& client, uint32_t listener) {
  ListenerSlot& l = listeners_[listener];
  // The listener's cap, over every worker (relaxed reads of the others' gauges: a race may let
  // a few flows past it, never hold one back wrongly for long). The access lists and source
  // limits run here on the peer, unless a PROXY protocol header will name the client.
  std::optional<Counter> refusal;
  if (l.policy.maxConnections != 0 && l.counters->sum(Counter::flows_active) >= l.policy.maxConnections) {
    refusal = Counter::listener_limit;
  } else if (l.proxy.accept.empty()) {
    refusal = judgeClient(l, client);
  }
  if (refusal) {
    listenerCounters(listener).add(*refusal, 1);
    armReset(fd.get());
    return;  // closed as `fd` goes out of scope, before any flow or backend
  }
  Flow& f = flows_.open();
  f.sourceCounted = l.proxy.accept.empty() && l.policy.limitsSources();
  f.listener = listener;
  f.client.fd = std::move(fd);
  f.clientAddress = client;
  f.flowHash = clientFlowHash(client, options_.hashKey);
  f.startMs = f.lastActiveMs = now();
  f.startUs = monotonicUs();
  CounterBlock& lc = listenerCounters(listener);
  lc.add(Counter::flows_total, 1);
  lc.add(Counter::flows_active, 1);
  // TCP_NODELAY comes from the listening socket: accepted sockets inherit it. Registering can
  // fail only for want of kernel memory or epoll watches (anything else is fatal in watch()):
  // then this flow cannot be served.
  if (!loop_.watch(f.client.get(), kFlowEvents, makeTag(TagKind::TcpClient, f.slot)).ok()) {
    closeFlow(f, CloseReason::Error, false);
    return;
  }
  if (!l.proxy.accept.empty()) {
    awaitHeader(f);
    return;
  }
  connectOrRoute(f);
}

// A flow with its client known (and judged): a listener that routes by server name reads the
// ClientHello first, for the pool to pick from; any other goes to a backend at once.
void TcpProxy::connectOrRoute(Flow& f) {
  if (listeners_[f.listener].proxy.sni.enabled()) {
    awaitHello(f);
    return;
  }
  f.state = FlowState::Connecting;
  connectOrQueue(f);
}

// --- traffic policy ---------------------------------------------------------------------------

std::optional<Counter> TcpProxy::judgeClient(ListenerSlot& l, const SocketAddress& client) {
  if (!l.policy.admits(client)) return Counter::denied;
  if (!l.policy.limitsSources()) return std::nullopt;
  switch (l.sources.admit(client, l.policy.sourceMaxConnections, l.policy.sourceRatePerSecond, now())) {
    case SourceVerdict::TooMany:
      return Counter::source_limit;
    case SourceVerdict::TooFast:
      return Counter::source_rate;
    case SourceVerdict::Admitted:
      break;
  }
  return std::nullopt;
}

void TcpProxy::refuseFlow(Flow& f, Counter reason) {
  listenerCounters(f.listener).add(reason, 1);
  closeFlow(f, CloseReason::Policy, true);
}

void TcpProxy::connectOrQueue(Flow& f) {
  switch (connectNext(f)) {
    case ConnectStart::Started:
      return;
    case ConnectStart::NoBackend:
      closeFlow(f, CloseReason::NoBackend, false);
      return;
    case ConnectStart::Full:
      queueFlow(f);
      return;
  }
}

void TcpProxy::queueFlow(Flow& f) {
  ListenerSlot& l = listeners_[f.listener];
  if (l.policy.queueSize == 0) {
    refuseFlow(f, Counter::backend_limit);
    return;
  }
  // The queue's bound holds over every worker, as the listener's cap does.
  if (l.counters->sum(Counter::flows_queued) >= l.policy.queueSize) {
    refuseFlow(f, Counter::queue_full);
    return;
  }
  if (f.listener >= queues_.size()) queues_.resize(f.listener + 1);
  f.state = FlowState::Queued;
  queues_[f.listener].append(f, now() + l.policy.queueTimeoutMs);
  listenerCounters(f.listener).add(Counter::flows_queued, 1);
}

bool TcpProxy::backendHasRoom(uint32_t listener, const std::string& pool) const {
  const BackendTable* table = listeners_[listener].table.get();
  if (table && !pool.empty()) {
    const int32_t at = table->poolIndex(pool);
    table = at < 0 ? nullptr : table->pools[static_cast<size_t>(at)].get();
  }
  if (!table) return false;
  for (const BackendEntry& b : table->backends)
    if (b.takesNewFlows() && (b.maxConnections == 0 || b.counters->sum(Counter::flows_active) < b.maxConnections)) return true;
  return false;
}

void TcpProxy::dispatchQueued(uint32_t listener) {
  if (dispatching_ || listener >= queues_.size()) return;
  dispatching_ = true;
  FlowDeadlineList& queue = queues_[listener];
  // First come, first served: a flow takes the room there is; when none is left it keeps its
  // place and the rest wait behind it. On a listener with backend pools (SNI routing) that
  // holds within each pool: a flow whose pool is full lets one bound for another pool past.
  const BackendTable* table = listeners_[listener].table.get();
  const bool pooled = table && !table->pools.empty();
  Flow* f = queue.head();
  while (f) {
    Flow* next = f->deadlineNext;
    if (!backendHasRoom(listener, f->pool)) {
      if (!pooled) break;
      f = next;
      continue;
    }
    FlowDeadlineList::unlink(*f);
    listenerCounters(listener).add(Counter::flows_queued, -1);
    f->state = FlowState::Connecting;
    f->tried = TriedBackends{};  // the full backends it passed over may have room now
    const ConnectStart started = connectNext(*f);
    if (started == ConnectStart::Full) {
      // Another worker took the room first.
      f->state = FlowState::Queued;
      queue.insertBefore(*f, next);
      listenerCounters(listener).add(Counter::flows_queued, 1);
      if (!pooled) break;
    }
    if (started == ConnectStart::NoBackend) closeFlow(*f, CloseReason::NoBackend, false);
    f = next;
  }
  dispatching_ = false;
}

void TcpProxy::serviceQueues() {
  for (uint32_t listener = 0; listener < queues_.size(); ++listener) {
    FlowDeadlineList& queue = queues_[listener];
    while (queue.head() && queue.head()->deadlineMs <= now()) refuseFlow(*queue.head(), Counter::queue_timeout);
    // A flow that ended on another worker freed room this worker's queue cannot hear of.
    if (queue.head()) dispatchQueued(listener);
  }
}

// --- TLS SNI routing --------------------------------------------------------------------------

void TcpProxy::awaitHello(Flow& f) {
  f.state = FlowState::AwaitingHello;
  awaitingHello_.append(f, now() + options_.sniTimeoutMs);
  // As with a PROXY protocol header: the hello may have come with the connection (or behind
  // the header), past the socket's first readiness edge, so look now.
  f.client.readable = true;
  readHello(f);
}

void TcpProxy::readHello(Flow& f) {
  HelloRead r = readClientHello(f.client.get(), f.client.peerClosed, f.hello);
  switch (r.status) {
    case HelloReadStatus::Waiting:
      f.client.readable = false;
      return;
    case HelloReadStatus::Failed:
      closeFlow(f, CloseReason::ClientReset, true);
      return;
    case HelloReadStatus::Rejected:
      refuseHello(f, r.hello.error == HelloError::Oversized ? Counter::sni_hello_oversized : Counter::sni_hello_malformed);
      return;
    case HelloReadStatus::Done:
      break;
  }
  FlowDeadlineList::unlink(f);
  SniRoutes::Choice choice = listeners_[f.listener].proxy.sni.route(r.hello.serverName);
  if (!choice.pool) {
    refuseHello(f, Counter::sni_unrouted);
    return;
  }
  listenerCounters(f.listener).add(choice.matched ? Counter::sni_routed : Counter::sni_defaulted, 1);
  f.pool = *choice.pool;
  f.state = FlowState::Connecting;
  // The hello (and whatever came after it) waits in the direction's buffer: the pump sends it
  // to the backend before it reads another byte of the client's, and passes on a FIN read with
  // it once it is delivered. The socket was read until EAGAIN, unless the buffer filled first.
  HelloBuffer& hello = f.hello;
  f.up.buffer = std::move(hello.bytes);
  f.up.bufferStart = 0;
  f.up.bufferEnd = hello.size;
  f.up.eof = hello.endOfStream;
  f.client.readable = !hello.endOfStream && hello.size >= kClientHelloMaxBytes;
  hello = HelloBuffer{};
  connectOrQueue(f);
}

void TcpProxy::refuseHello(Flow& f, Counter reason) {
  listenerCounters(f.listener).add(reason, 1);
  // A reset, as for a refused PROXY protocol header: the client learns at once that nothing
  // will answer, and no socket of lb4's waits in TIME_WAIT for a flow that carried nothing.
  closeFlow(f, CloseReason::Sni, true);
}

void TcpProxy::expireHellos() {
  while (awaitingHello_.head() && awaitingHello_.head()->deadlineMs <= now())
    refuseHello(*awaitingHello_.head(), Counter::sni_hello_timeouts);
}

// --- PROXY protocol from clients --------------------------------------------------------------

void TcpProxy::awaitHeader(Flow& f) {
  // Only a trusted network may say who the client is; anyone else could claim any address.
  if (!listeners_[f.listener].proxy.accept.contains(f.clientAddress)) {
    refuseHeader(f, Counter::proxy_header_untrusted);
    return;
  }
  f.state = FlowState::AwaitingHeader;
  awaitingHeader_.append(f, now() + options_.proxyHeaderTimeoutMs);
  // The header may have come with the connection (a client that writes at once): the socket's
  // first readiness edge may already be past, so look now rather than wait for the next one.
  f.client.readable = true;
  readHeader(f);
}

void TcpProxy::readHeader(Flow& f) {
  HeaderRead r = readProxyHeader(f.client.get(), f.client.peerClosed);
  switch (r.status) {
    case HeaderReadStatus::Waiting:
      f.client.readable = false;
      return;
    case HeaderReadStatus::Failed:
      closeFlow(f, CloseReason::ClientReset, true);
      return;
    case HeaderReadStatus::Rejected:
      refuseHeader(f, r.header.error == ProxyHeaderError::Oversized ? Counter::proxy_header_oversized
                                                                    : Counter::proxy_header_malformed);
      return;
    case HeaderReadStatus::Accepted:
      break;
  }
  FlowDeadlineList::unlink(f);
  listenerCounters(f.listener).add(Counter::proxy_headers_accepted, 1);
  // The header's client is the flow's client from here on: in snapshots, the access log and
  // the flow hash that keeps a client on its backend. A LOCAL header (a proxy's own health
  // check) names no one, and the connection's own addresses stay.
  if (!r.header.local) {
    f.clientAddress = r.header.source;
    f.flowHash = clientFlowHash(f.clientAddress, options_.hashKey);
    f.destinationAddress = r.header.destination;
    f.hasDestination = true;
  }
  // The header's client is the one the access lists and source limits judge: the peer is the
  // proxy, trusted already.
  ListenerSlot& l = listeners_[f.listener];
  if (std::optional<Counter> refusal = judgeClient(l, f.clientAddress)) {
    refuseFlow(f, *refusal);
    return;
  }
  f.sourceCounted = l.policy.limitsSources();
  // Whatever the client sent behind the header is still in its socket, maybe with no new edge
  // to come: the pump (or the ClientHello reader) reads it next.
  f.client.readable = true;
  connectOrRoute(f);
}

void TcpProxy::refuseHeader(Flow& f, Counter reason) {
  listenerCounters(f.listener).add(reason, 1);
  // A reset: the client (a proxy) learns at once that nothing was served, and no lb4 socket
  // lingers in TIME_WAIT for a connection that carried nothing.
  closeFlow(f, CloseReason::ProxyHeader, true);
}

void TcpProxy::expireHeaders() {
  while (awaitingHeader_.head() && awaitingHeader_.head()->deadlineMs <= now())
    refuseHeader(*awaitingHeader_.head(), Counter::proxy_header_timeouts);
}

// --- backends ---------------------------------------------------------------------------------

TcpProxy::ConnectStart TcpProxy::connectNext(Flow& f) {
  Picker* picker = listeners_[f.listener].pickerFor(f.pool);
  CounterBlock& lc = listenerCounters(f.listener);
  // Full backends are passed over without using an attempt. The picker offers tried backends
  // again once every other one is tried, so a budget of one pick per backend (and one per
  // attempt) ends the search when all are full.
  const BackendTable* table = picker ? picker->table() : nullptr;
  size_t picks = (table ? table->backends.size() : 0) + options_.retries + 1;
  bool sawFull = false;
  while (f.attempts <= options_.retries && picks-- > 0) {
    const BackendEntry* b = picker ? picker->pick(f.flowHash, f.tried) : nullptr;
    if (!b) break;
    if (b->maxConnections != 0 && b->counters->sum(Counter::flows_active) >= b->maxConnections) {
      sawFull = true;
      f.tried.add(b->key);
      continue;
    }
    if (f.attempts > 0) lc.add(Counter::retries, 1);
    f.attempts++;
    f.tried.add(b->key);
    CounterBlock& bc = b->counters->worker(index_);

    UniqueFd fd(socket(b->address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
      // Out of descriptors or socket memory: nothing another backend would fix, so the flow
      // closes as no-backend. Counted for the listener: there is no backend socket to blame.
      const int err = errno;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) lc.add(Counter::connect_no_descriptors, 1);
      return ConnectStart::NoBackend;
    }
    setNoDelay(fd.get());
    f.connectStartUs = monotonicUs();
    if (connect(fd.get(), b->address.get(), b->address.length()) == 0 || errno == EINPROGRESS) {
      if (!loop_.watch(fd.get(), kFlowEvents, makeTag(TagKind::TcpBackend, f.slot)).ok()) return ConnectStart::NoBackend;
      f.backend = FlowSocket{};
      f.backend.fd = std::move(fd);
      f.backendKey = b->key;
      f.backendProxy = b->proxy;
      f.backendAddress = b->address;
      f.backendCounters = b->counters;
      // A connect in progress counts as active, so least-connections sees it at once.
      bc.add(Counter::flows_active, 1);
      connecting_.append(f, now() + options_.connectTimeoutMs);
      return ConnectStart::Started;
    }
    // Refused at once (unreachable network, no ephemeral port): try the next backend. The
    // socket closes as `fd` goes out of scope.
    bc.add(Counter::connect_failures, 1);
    lc.add(Counter::connect_failures, 1);
    tallyConnect(b->key, false, false);
  }
  // Every backend that would take the flow is full (and none failed it): it may wait for room.
  return sawFull && f.attempts <= options_.retries ? ConnectStart::Full : ConnectStart::NoBackend;
}

void TcpProxy::onConnectFailed(Flow& f, bool timedOut) {
  FlowDeadlineList::unlink(f);
  f.backend = FlowSocket{};  // closes the failed socket
  CounterBlock& bc = f.backendCounters->worker(index_);
  CounterBlock& lc = listenerCounters(f.listener);
  bc.add(Counter::flows_active, -1);
  bc.add(Counter::connect_failures, 1);
  lc.add(Counter::connect_failures, 1);
  if (timedOut) {
    bc.add(Counter::connect_timeouts, 1);
    lc.add(Counter::connect_timeouts, 1);
  }
  tallyConnect(f.backendKey, false, timedOut);
  f.backendCounters = nullptr;
  connectOrQueue(f);
}

void TcpProxy::onConnected(Flow& f) {
  FlowDeadlineList::unlink(f);
  f.state = FlowState::Established;
  f.lastActiveMs = now();
  CounterBlock& bc = f.backendCounters->worker(index_);
  bc.add(Counter::flows_total, 1);
  bc.observe(Histogram::connect_duration, monotonicUs() - f.connectStartUs);
  tallyConnect(f.backendKey, true, false);
  if (!sendHeader(f)) {
    resetFlow(f, true);
    return;
  }
  pumpFlow(f);
}

bool TcpProxy::sendHeader(Flow& f) {
  const ProxyVersion version = f.backendProxy.value_or(listeners_[f.listener].proxy.send);
  if (version == ProxyVersion::None) return true;
  if (!f.hasDestination) {
    // The address this client connected to: the listener's, or the very address of a listener
    // on every interface. Only the flow's socket knows which.
    f.destinationAddress.prepareForKernel();
    if (getsockname(f.client.get(), f.destinationAddress.get(), f.destinationAddress.lengthPtr()) != 0) return false;
    f.hasDestination = true;
  }
  uint8_t header[kProxyHeaderWriteMax];
  const size_t length = writeProxyHeader(version, f.clientAddress, f.destinationAddress, header, false, f.id);
  // The header goes out before the pump reads a byte of the client's. On a socket that has just
  // connected the send buffer is empty, so the whole header fits; should the kernel take only
  // part, the rest waits in the direction's buffer, which the pump empties before it reads more.
  SysResult w = sysResult(send(f.backend.get(), header, length, MSG_NOSIGNAL | MSG_DONTWAIT));
  if (!w.ok() && w.error != EAGAIN && w.error != EINTR) return false;
  const size_t sent = w.ok() ? static_cast<size_t>(w.value) : 0;
  if (sent < length) {
    // Ahead of what already waits there (a ClientHello read off the client's socket).
    const uint32_t rest = static_cast<uint32_t>(length - sent);
    const uint32_t waiting = f.up.bufferEnd - f.up.bufferStart;
    std::unique_ptr<char[]> buffer(new char[std::max<uint32_t>(rest + waiting, kScratchSize)]);
    std::memcpy(buffer.get(), header + sent, rest);
    if (waiting > 0) std::memcpy(buffer.get() + rest, f.up.buffer.get() + f.up.bufferStart, waiting);
    f.up.buffer = std::move(buffer);
    f.up.bufferStart = 0;
    f.up.bufferEnd = rest + waiting;
  }
  return true;
}

void TcpProxy::onFlowEvent(uint64_t flowSlot, bool backendSide, uint32_t events) {
  if (flowSlot > UINT32_MAX) return;
  if (Flow* f = flows_.at(static_cast<uint32_t>(flowSlot))) onFlowEvent(*f, backendSide, events);
}

void TcpProxy::onFlowEvent(Flow& f, bool backendSide, uint32_t events) {
  if (f.state == FlowState::Closed) return;  // closed earlier in this pass
  FlowSocket& s = backendSide ? f.backend : f.client;

  if (f.state == FlowState::AwaitingHeader || f.state == FlowState::AwaitingHello) {
    if (backendSide) return;  // none yet
    if ((events & EPOLLERR) && socketError(s.get()) != 0) {
      closeFlow(f, CloseReason::ClientReset, false);
      return;
    }
    if (events & (EPOLLRDHUP | EPOLLHUP)) s.peerClosed = true;
    if (events & EPOLLPRI) s.urgent = true;
    if (events & EPOLLOUT) s.writable = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLPRI)) {
      if (f.state == FlowState::AwaitingHeader) {
        readHeader(f);
      } else {
        readHello(f);
      }
    }
    return;
  }

  if (f.state == FlowState::Connecting || f.state == FlowState::Queued) {
    if (backendSide) {
      // A failed connect reports EPOLLERR (with EPOLLHUP when refused); a finished one reports
      // EPOLLOUT alone, so success needs no getsockopt(SO_ERROR).
      if (events & (EPOLLERR | EPOLLHUP)) {
        onConnectFailed(f, false);
        return;
      }
      if (events & EPOLLOUT) {
        s.writable = true;
        s.readable = (events & (EPOLLIN | EPOLLRDHUP)) != 0;
        s.peerClosed = (events & EPOLLRDHUP) != 0;
        s.urgent = (events & EPOLLPRI) != 0;
        onConnected(f);
      }
      return;
    }
    // The client reset before a backend answered: nothing to tell the backend but goodbye.
    if ((events & EPOLLERR) && socketError(s.get()) != 0) {
      closeFlow(f, CloseReason::ClientReset, false);
      return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLPRI)) s.readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP)) s.peerClosed = true;
    if (events & EPOLLPRI) s.urgent = true;
    if (events & EPOLLOUT) s.writable = true;
    // A queued client that closed before sending a byte has nothing for a backend to answer: it
    // leaves the queue now, rather than holding a place (and later a backend connection) for a
    // client already gone; connecting and hanging up would otherwise keep the queue full. One
    // that sent its request and then half-closed keeps waiting (its bytes are still unread, or
    // buffered: a ClientHello read for SNI routing).
    if (f.state == FlowState::Queued && s.peerClosed && !f.up.holdsBytes()) {
      char byte;
      if (recv(s.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0) closeFlow(f, CloseReason::Done, false);
    }
    return;
  }

  if ((events & EPOLLERR) && socketError(s.get()) != 0) {
    resetFlow(f, backendSide);
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLPRI)) s.readable = true;
  if (events & (EPOLLRDHUP | EPOLLHUP)) s.peerClosed = true;
  if (events & EPOLLPRI) s.urgent = true;
  if (events & (EPOLLOUT | EPOLLHUP)) s.writable = true;
  pumpFlow(f);
}

void TcpProxy::pumpFlow(Flow& f) {
  CounterBlock& lc = listenerCounters(f.listener);
  CounterBlock& bc = f.backendCounters->worker(index_);
  PumpResult up = pump_.pump(f, f.up, f.client, f.backend, true, lc, bc, now());
  if (up == PumpResult::SourceReset || up == PumpResult::DestinationReset) {
    resetFlow(f, up == PumpResult::DestinationReset);
    return;
  }
  PumpResult down = pump_.pump(f, f.down, f.backend, f.client, false, lc, bc, now());
  if (down == PumpResult::SourceReset || down == PumpResult::DestinationReset) {
    resetFlow(f, down == PumpResult::SourceReset);
    return;
  }
  if (f.up.shutdownSent && f.down.shutdownSent) {
    closeFlow(f, CloseReason::Done, false);
    return;
  }
  if ((up == PumpResult::Yielded || down == PumpResult::Yielded) && !f.onYieldList) {
    f.onYieldList = true;
    yielded_.push_back(f.slot);
  }
}

void TcpProxy::resetFlow(Flow& f, bool backendReset) {
  closeFlow(f, backendReset ? CloseReason::BackendReset : CloseReason::ClientReset, true);
}

void TcpProxy::closeFlow(Flow& f, CloseReason reason, bool abortive) {
  if (f.state == FlowState::Closed) return;
  FlowDeadlineList::unlink(f);

  // Counters first and flows_active last: whoever sees the close (a peer, or a reader waiting
  // for no open flows) then sees final counters.
  CounterBlock& lc = listenerCounters(f.listener);
  CounterBlock* bc = f.backendCounters ? &f.backendCounters->worker(index_) : nullptr;
  switch (reason) {
    case CloseReason::ClientReset:
    case CloseReason::BackendReset:
      lc.add(Counter::resets, 1);
      if (bc) bc->add(Counter::resets, 1);
      break;
    case CloseReason::IdleTimeout:
      lc.add(Counter::idle_timeouts, 1);
      if (bc) bc->add(Counter::idle_timeouts, 1);
      break;
    case CloseReason::NoBackend:
      lc.add(Counter::no_backend, 1);  // a listener's count: no backend took the flow
      break;
    case CloseReason::Drained:
      lc.add(Counter::drain_closed, 1);
      if (bc) bc->add(Counter::drain_closed, 1);
      break;
    default:
      break;
  }
  // Only flows the backend accepted have a duration there: one observation per flows_total.
  if (bc && f.state == FlowState::Established) bc->observe(Histogram::flow_duration, monotonicUs() - f.startUs);
  if (f.state == FlowState::Queued) lc.add(Counter::flows_queued, -1);
  if (f.sourceCounted) listeners_[f.listener].sources.release(f.clientAddress);
  if (bc) bc->add(Counter::flows_active, -1);
  lc.add(Counter::flows_active, -1);

  for (FlowSocket* s : {&f.client, &f.backend}) {
    if (abortive) {
      s->closeAbortively();
    } else {
      s->close();
    }
  }
  for (Direction* d : {&f.up, &f.down}) pump_.release(*d);
  f.closeReason = reason;
  logClosedFlow(f);
  flows_.retire(f);
  // The flow held a place at a backend: the listener's queue may move.
  if (bc) dispatchQueued(f.listener);
}

// --- timers, reports, commands ----------------------------------------------------------------

void TcpProxy::runYielded() {
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

void TcpProxy::expireConnects() {
  while (connecting_.head() && connecting_.head()->deadlineMs <= now()) onConnectFailed(*connecting_.head(), true);
}

void TcpProxy::expireIdle() {
  for (ListenerSlot& l : listeners_) l.sources.sweep(now(), l.policy.sourceRatePerSecond);
  flows_.forEach([this](Flow& f) {
    if (f.state != FlowState::Established || now() - f.lastActiveMs < options_.idleTimeoutMs) return;
    // A flow idle with bytes still on their way (a receiver that stopped reading) is cut with a
    // reset: a FIN would tell the client a truncated stream had ended normally.
    bool stalled = f.up.holdsBytes() || f.down.holdsBytes() || (f.client.readable && !f.up.eof) ||
                   (f.backend.readable && !f.down.eof);
    closeFlow(f, CloseReason::IdleTimeout, stalled);
  });
}

uint64_t TcpProxy::closeFlows(const FlowFilter& filter, CloseReason reason) {
  uint64_t closed = 0;
  flows_.forEach([&](Flow& f) {
    if (filter.listener >= 0 && f.listener != static_cast<uint32_t>(filter.listener)) return;
    if (filter.backendKey >= 0 && (!f.backendCounters || f.backendKey != static_cast<uint32_t>(filter.backendKey))) return;
    closeFlow(f, reason, true);
    ++closed;
  });
  return closed;
}

void TcpProxy::closeAll(CloseReason reason) {
  flows_.forEach([&](Flow& f) { closeFlow(f, reason, true); });
}

void TcpProxy::snapshot(const FlowFilter& filter, std::vector<FlowInfo>& out) {
  int64_t wallOffset = wallClockMs() - monotonicMs();
  size_t taken = 0;
  flows_.forEach([&](Flow& f) {
    if (taken >= filter.limit) return;
    if (filter.listener >= 0 && f.listener != static_cast<uint32_t>(filter.listener)) return;
    bool hasBackend = f.backendCounters != nullptr;
    if (filter.backendKey >= 0 && (!hasBackend || f.backendKey != static_cast<uint32_t>(filter.backendKey))) return;
    out.push_back(FlowInfo{f.id, f.listener, index_, f.state, f.clientAddress.toString(), hasBackend, f.backendKey,
                           hasBackend ? f.backendAddress.toString() : std::string(), f.startMs + wallOffset,
                           f.up.bytes, f.down.bytes});
    ++taken;
  });
}

void TcpProxy::tallyConnect(uint32_t backendKey, bool ok, bool timeout) { tallies_.add(backendKey, ok, timeout); }

void TcpProxy::flushConnectTallies() { tallies_.flush(events_, index_); }

void TcpProxy::logClosedFlow(const Flow& f) {
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
  e.protocol = Protocol::Tcp;
  e.startWallMs = f.startMs + (wallClockMs() - monotonicMs());
  e.durationMs = now() - f.startMs;
  events_.push(e);
}

}  // namespace lb4
