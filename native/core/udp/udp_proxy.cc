// The life of a UDP session on a worker: a client's first datagram opens it, replies go back
// through the listener socket, and idle expiry, responses, the cap, backend changes or a refusal
// end it. See DESIGN.md section 4.

#include "udp/udp_proxy.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "balance/hash.h"
#include "io/epoll_tag.h"

namespace lb4 {

namespace {

// Datagrams per recvmmsg (and per sendmmsg of replies), and batches per readable socket per
// pass: level-triggered sockets are read again next pass, so one busy client cannot starve the
// rest of the worker.
constexpr int kBatchSize = 16;
constexpr int kBatchesPerPass = 4;
// Room for one IP_PKTINFO and one IPV6_PKTINFO control message (a dual-stack socket with both
// options on gets both for an IPv4 datagram), and the SO_RXQ_OVFL drop count.
constexpr size_t kControlSpace =
    CMSG_SPACE(sizeof(in_pktinfo)) + CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(uint32_t)) + 16;

bool isShortage(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

// The local address a datagram was sent to, from its control messages (wildcard listeners
// only). An IPv4 datagram on a dual-stack socket may come with both messages, the IPv6 one
// holding the IPv4-mapped address: both become the same IPv4 address, so the session key does
// not depend on which message came last.
LocalAddress localAddressOf(msghdr& h) {
  LocalAddress local;
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
      local.family = AF_INET;
      local.v4 = pi.ipi_addr;  // the header's destination: what the client sent to
      local.ifindex = pi.ipi_ifindex;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
      local.ifindex = static_cast<int>(pi.ipi6_ifindex);
      if (IN6_IS_ADDR_V4MAPPED(&pi.ipi6_addr)) {
        local.family = AF_INET;
        std::memcpy(&local.v4, &pi.ipi6_addr.s6_addr[12], 4);
      } else {
        local.family = AF_INET6;
        local.v6 = pi.ipi6_addr;
      }
    }
  }
  return local;
}

// Writes the control message that makes a reply leave from `local`; returns its length (0 when
// the listener is bound to one address and the kernel picks the right source by itself).
size_t replyControl(const LocalAddress& local, char* buffer) {
  if (local.family == 0) return 0;
  msghdr h{};
  h.msg_control = buffer;
  h.msg_controllen = kControlSpace;
  cmsghdr* c = CMSG_FIRSTHDR(&h);
  if (local.family == AF_INET) {
    // ipi_spec_dst is the source address to use; ifindex 0 lets routing choose the interface.
    // Linux takes this IPv4 message on an IPv6 socket too, for an IPv4-mapped destination.
    in_pktinfo pi{};
    pi.ipi_spec_dst = local.v4;
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(pi));
    std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    return CMSG_SPACE(sizeof(pi));
  }
  // The interface goes along for IPv6: a link-local source address means nothing without it.
  in6_pktinfo pi{};
  pi.ipi6_addr = local.v6;
  pi.ipi6_ifindex = static_cast<unsigned>(local.ifindex);
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof(pi));
  std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
  return CMSG_SPACE(sizeof(pi));
}

// The socket's drop count carried by a datagram (SO_RXQ_OVFL); false when it has none (the
// kernel leaves the message out while the count is 0).
bool dropCountOf(msghdr& h, uint32_t& out) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
      std::memcpy(&out, CMSG_DATA(c), sizeof(out));
      return true;
    }
  }
  return false;
}

bool sameAddress(const SocketAddress& a, const SocketAddress& b) {
  return a.length() == b.length() && std::memcmp(a.get(), b.get(), a.length()) == 0;
}

int socketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

}  // namespace

struct UdpProxy::Batch {
  explicit Batch(size_t datagramSize) : size(datagramSize), data(new char[datagramSize * kBatchSize]) {}
  const size_t size;
  std::unique_ptr<char[]> data;
  mmsghdr in[kBatchSize];
  iovec inIov[kBatchSize];
  SocketAddress names[kBatchSize];
  alignas(cmsghdr) char control[kBatchSize][kControlSpace];
  mmsghdr out[kBatchSize];
  iovec outIov[kBatchSize];
  alignas(cmsghdr) char outControl[kBatchSize][kControlSpace];

  char* buffer(int i) { return data.get() + static_cast<size_t>(i) * size; }
  // Resets the headers for a recvmmsg: the kernel writes lengths and flags back into them.
  void prepareIn(bool fromListener) {
    for (int i = 0; i < kBatchSize; ++i) {
      inIov[i] = iovec{buffer(i), size};
      msghdr& h = in[i].msg_hdr;
      h = msghdr{};
      h.msg_iov = &inIov[i];
      h.msg_iovlen = 1;
      if (fromListener) {
        names[i].prepareForKernel();
        h.msg_name = names[i].get();
        h.msg_namelen = *names[i].lengthPtr();
        h.msg_control = control[i];
        h.msg_controllen = kControlSpace;
      }
      in[i].msg_len = 0;
    }
  }
};

UdpProxy::UdpProxy(uint32_t workerIndex, const WorkerOptions& options, const LoopClock& clock, EpollLoop& loop,
                   std::vector<ListenerSlot>& listeners, EventQueue& events, const std::atomic<uint32_t>& flowLogEvery,
                   SessionReplication& replication)
    : index_(workerIndex),
      options_(options),
      clock_(clock),
      loop_(loop),
      listeners_(listeners),
      events_(events),
      flowLogEvery_(flowLogEvery),
      replication_(replication),
      sessions_(workerIndex) {}

UdpProxy::~UdpProxy() = default;

void UdpProxy::ensureBatch() {
  if (!batch_) batch_ = std::make_unique<Batch>(options_.udpMaxDatagram);
}

int64_t UdpProxy::sweepIntervalMs() const { return std::clamp<int64_t>(options_.udpIdleTimeoutMs / 8, 25, 1000); }

// --- client -> backend ------------------------------------------------------------------------

void UdpProxy::readListener(uint32_t slot) {
  ensureBatch();
  const int fd = listeners_[slot].socket.get();
  for (int round = 0; round < kBatchesPerPass; ++round) {
    batch_->prepareIn(true);
    // One recvmmsg takes up to kBatchSize datagrams in one syscall. MSG_DONTWAIT with no timeout
    // returns what is queued now. A quirk to know: if an error happens after some datagrams were
    // read, recvmmsg returns the count and the error is left for the next call, which we make
    // anyway when the batch came back full.
    int n = recvmmsg(fd, batch_->in, kBatchSize, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      const int err = errno;
      // EAGAIN: drained. An unconnected socket gets no ICMP errors (without IP_RECVERR), so any
      // other error is unusual: counted and reported, and the level-triggered listener brings us
      // back next pass.
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return;
      listenerCounters(slot).add(Counter::accept_errors, 1);
      Event e{EventType::ListenerError};
      e.worker = index_;
      e.listener = slot;
      e.error = err;
      events_.push(e);
      return;
    }
    countSocketDrops(slot, n);
    for (int i = 0; i < n; ++i) {
      onClientDatagram(slot, i);
      if (!listeners_[slot].socket) return;  // cannot happen today; guards a future close-on-error
    }
    if (n < kBatchSize) return;
  }
}

void UdpProxy::countSocketDrops(uint32_t slot, int n) {
  // The count is the socket's running total when the datagram was queued, so the batch's last
  // datagram has the newest; the difference from the last one seen is what the kernel dropped
  // since. Unsigned arithmetic carries the difference across the counter's wrap.
  uint32_t drops = 0;
  if (n <= 0 || !dropCountOf(batch_->in[n - 1].msg_hdr, drops)) return;
  ListenerSlot& l = listeners_[slot];
  const uint32_t delta = drops - l.socketDrops;
  l.socketDrops = drops;
  if (delta != 0) l.countersOf(index_).add(Counter::dropped_overflow, delta);
}

void UdpProxy::onClientDatagram(uint32_t slot, int i) {
  msghdr& h = batch_->in[i].msg_hdr;
  CounterBlock& lc = listenerCounters(slot);
  // A datagram larger than the buffer arrives cut, with MSG_TRUNC set: forwarding the part would
  // hand the backend a corrupt message, so it is dropped and counted instead.
  if (h.msg_flags & MSG_TRUNC) {
    lc.add(Counter::dropped_truncated, 1);
    return;
  }
  SocketAddress& client = batch_->names[i];
  *client.lengthPtr() = h.msg_namelen;
  const LocalAddress local = localAddressOf(h);
  const SessionKey key = SessionKey::make(slot, client, local);
  const char* data = batch_->buffer(i);
  const size_t length = batch_->in[i].msg_len;

  UdpSession* s = sessions_.find(key);
  if (s && forwardUp(*s, data, length)) return;
  // A removed listener draining its sessions starts none: as for a listener with no backend
  // left, the datagram is dropped and counted.
  if (listeners_[slot].udpDraining) {
    lc.add(Counter::dropped_no_backend, 1);
    return;
  }
  // No session yet, or its backend just refused (the session ended): a new one, on a backend
  // that did not refuse. The access lists judge only new sessions: a datagram of a session
  // opened before a reload changed them is still forwarded until the session ends.
  if (!listeners_[slot].policy.admits(client)) {
    listeners_[slot].countersOf(index_).add(Counter::denied, 1);
    return;
  }
  s = openSession(slot, key, client, local);
  if (s) forwardUp(*s, data, length);
}

bool UdpProxy::makeRoom(uint32_t slot) {
  // The cap is the listener's, over every worker: each worker's count is a relaxed read, so a
  // burst on several workers at once may pass it by a few sessions, never by more.
  ListenerSlot& l = listeners_[slot];
  if (static_cast<uint64_t>(l.counters->sum(Counter::sessions_active)) < options_.udpMaxSessions) return true;
  UdpSession* victim = sessions_.oldest(slot);
  if (!victim) {
    // The other workers hold the listener's sessions: this one has none to give up.
    l.countersOf(index_).add(Counter::dropped_cap, 1);
    return false;
  }
  closeSession(*victim, CloseReason::Evicted);
  return true;
}

void UdpProxy::avoidRecentlyRefused(TriedBackends& tried) {
  const int64_t t = now();
  refused_.erase(std::remove_if(refused_.begin(), refused_.end(), [t](const Refusal& r) { return r.untilMs <= t; }),
                 refused_.end());
  for (const Refusal& r : refused_) tried.add(r.backendKey);
}

const BackendEntry* UdpProxy::hintedBackend(uint32_t slot, const SessionKey& key, const TriedBackends& tried) {
  uint64_t idHash = 0;
  if (!replication_.hint(key, now(), idHash)) return nullptr;
  const BackendTable* table = listeners_[slot].table.get();
  if (!table) return nullptr;
  for (const BackendEntry& b : table->backends) {
    if (b.idHash == idHash) return b.takesNewFlows() && !tried.contains(b.key) ? &b : nullptr;
  }
  return nullptr;
}

void UdpProxy::refreshReport(UdpSession& s) {
  if (!replicates() || now() - s.reportedMs < replication_.refreshMs()) return;
  s.reportedMs = now();
  replication_.report(s, true);
}

void UdpProxy::reportAll() {
  if (!replicates()) return;
  sessions_.forEach([&](UdpSession& s) {
    s.reportedMs = now();
    replication_.report(s, true);
  });
}

UdpSession* UdpProxy::openSession(uint32_t slot, const SessionKey& key, const SocketAddress& client,
                                  const LocalAddress& local) {
  CounterBlock& lc = listenerCounters(slot);
  if (!makeRoom(slot)) return nullptr;
  Picker* picker = listeners_[slot].picker.get();
  const uint64_t flowHash = clientFlowHash(client, options_.hashKey);
  TriedBackends tried;
  avoidRecentlyRefused(tried);
  // A client the HA peer served before a failover goes back to its backend when it can: under
  // round robin or least connections this node's picker would choose another. Only the first
  // attempt: a backend that fails it is tried no more, and the retries pick as always.
  const BackendEntry* hinted = hintedBackend(slot, key, tried);
  for (uint32_t attempt = 0; attempt <= options_.retries; ++attempt) {
    const BackendEntry* b = hinted ? hinted : picker ? picker->pick(flowHash, tried) : nullptr;
    const bool fromHint = hinted != nullptr;
    hinted = nullptr;
    if (!b) break;
    tried.add(b->key);
    if (UdpSession* s = openWarm(*b, key)) {
      s->client = client;
      s->local = local;
      s->backendCounters = b->counters;
      sessions_.linkBackend(*s);
      countOpened(*s, *b, fromHint);
      return s;
    }
    UniqueFd fd(socket(b->address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
      // Out of descriptors or socket memory: another backend would not help.
      if (isShortage(errno)) lc.add(Counter::connect_no_descriptors, 1);
      break;
    }
    // connect() on a datagram socket sends nothing. It binds an ephemeral port (the session's
    // NAT mapping: the backend sees lb4's address and this port), fixes the peer so the kernel
    // delivers only that backend's datagrams to this socket, and makes ICMP errors for it (port
    // unreachable) come back on this socket as ECONNREFUSED. It fails at once only locally: no
    // route (ENETUNREACH), or no ephemeral port left (EAGAIN).
    if (connect(fd.get(), b->address.get(), b->address.length()) != 0) {
      const int err = errno;
      CounterBlock& bc = b->counters->worker(index_);
      bc.add(Counter::connect_failures, 1);
      lc.add(Counter::connect_failures, 1);
      tallies_.add(b->key, false, false);
      if (isShortage(err)) break;
      continue;
    }
    UdpSession& s = sessions_.open(key, now());
    // Level-triggered: replies are read in bounded batches, the rest next pass.
    if (!loop_.watch(fd.get(), EPOLLIN, makeTag(TagKind::UdpUpstream, s.slot)).ok()) {
      sessions_.retire(s);
      lc.add(Counter::connect_no_descriptors, 1);
      return nullptr;
    }
    s.upstream = std::move(fd);
    s.client = client;
    s.local = local;
    s.backendKey = b->key;
    s.backendAddress = b->address;
    s.backendCounters = b->counters;
    s.startUs = monotonicUs();
    sessions_.linkBackend(s);
    countOpened(s, *b, fromHint);
    return &s;
  }
  lc.add(Counter::dropped_no_backend, 1);
  return nullptr;
}

void UdpProxy::countOpened(UdpSession& s, const BackendEntry& b, bool fromHint) {
  CounterBlock& lc = listenerCounters(s.listener);
  CounterBlock& bc = b.counters->worker(index_);
  lc.add(Counter::sessions_total, 1);
  lc.add(Counter::sessions_active, 1);
  bc.add(Counter::sessions_total, 1);
  bc.add(Counter::sessions_active, 1);
  if (fromHint) lc.add(Counter::sessions_replicated, 1);
  if (replicates()) {
    s.reportedMs = now();
    replication_.report(s, true);
  }
}

UdpSession* UdpProxy::openWarm(const BackendEntry& b, const SessionKey& key) {
  UdpSession* w = sessions_.warm(key);
  if (!w) return nullptr;
  // Only this client's own socket, and only to the backend its new session picked (a reload may
  // also have given the backend's key a new address): otherwise the socket goes.
  // Whatever the backend sent late before this pass's wait was read and dropped already (the
  // worker reads upstream sockets before listeners); a datagram arriving since can only be for
  // this same client, which gets it as it would had its session stayed open.
  if (w->backendKey != b.key || !sameAddress(w->backendAddress, b.address)) {
    sessions_.closeWarm(*w);
    return nullptr;
  }
  return &sessions_.reopen(*w, now());
}

bool UdpProxy::drainWarm(UdpSession& w) {
  // Whatever the backend sent after the last response the ended session expected belongs to no
  // request, so it is read and dropped (counted). A one-byte buffer with MSG_TRUNC reads a whole datagram of any size
  // (the rest is discarded) without touching the batch buffers, which may hold datagrams not yet
  // forwarded. An error is the ICMP refusal of an earlier datagram: the socket is not worth keeping.
  char byte;
  for (;;) {
    ssize_t r = recv(w.upstream.get(), &byte, 1, MSG_DONTWAIT | MSG_TRUNC);
    if (r >= 0) {
      if (w.backendCounters) w.backendCounters->worker(index_).add(Counter::dropped_late, 1);
      listenerCounters(w.listener).add(Counter::dropped_late, 1);
      continue;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

bool UdpProxy::forwardUp(UdpSession& s, const char* data, size_t length) {
  CounterBlock& lc = listenerCounters(s.listener);
  CounterBlock& bc = s.backendCounters->worker(index_);
  ssize_t r = send(s.upstream.get(), data, length, MSG_DONTWAIT);
  if (r < 0) {
    const int err = errno;
    // The ICMP error for an earlier datagram of this session is reported by the next call on the
    // socket, which may be this send: the backend refused, and this datagram goes to a new
    // session on another backend.
    if (err == ECONNREFUSED) {
      onBackendFailed(s, err);
      return false;
    }
    // EAGAIN: the socket's send buffer is full. UDP may lose datagrams and the client's protocol
    // retries, so the datagram is dropped (counted) rather than queued in lb4's memory.
    // Anything else (EPERM from a firewall, EMSGSIZE) drops it too.
    lc.add(Counter::dropped_send_error, 1);
    bc.add(Counter::dropped_send_error, 1);
    return true;
  }
  lc.add(Counter::datagrams_to_backend, 1);
  lc.add(Counter::bytes_to_backend, r);
  bc.add(Counter::datagrams_to_backend, 1);
  bc.add(Counter::bytes_to_backend, r);
  s.datagramsUp++;
  s.bytesUp += static_cast<uint64_t>(r);
  if (options_.udpResponses > 0) s.responsesDue += options_.udpResponses;
  sessions_.touch(s, now());
  refreshReport(s);
  return true;
}

// --- backend -> client ------------------------------------------------------------------------

void UdpProxy::onUpstreamEvent(uint64_t sessionSlot, uint32_t events) {
  if (sessionSlot > UINT32_MAX) return;
  UdpSession* s = sessions_.at(static_cast<uint32_t>(sessionSlot));
  if (!s) return;
  if (s->state == SessionState::Warm) {
    // A datagram (or an error) for a warm socket: its session ended and nobody waits for it.
    if (!drainWarm(*s)) sessions_.closeWarm(*s);
    return;
  }
  if (s->state != SessionState::Active) return;  // closed earlier in this pass
  if (events & EPOLLERR) {
    // A pending socket error is an ICMP error the kernel matched to this connected socket:
    // ECONNREFUSED for port unreachable (nothing listens on the backend's port), EHOSTUNREACH or
    // ENETUNREACH for the host. SO_ERROR reads and clears it.
    const int err = socketError(s->upstream.get());
    if (err != 0) {
      onBackendFailed(*s, err);
      return;
    }
  }
  if (events & EPOLLIN) readUpstream(*s);
}

void UdpProxy::readUpstream(UdpSession& s) {
  ensureBatch();
  CounterBlock& lc = listenerCounters(s.listener);
  for (int round = 0; round < kBatchesPerPass; ++round) {
    batch_->prepareIn(false);
    // With a responses-per-request setting, no more than the answers still due: recvmmsg tries
    // for another datagram after each one it took until it has `want`, and for a DNS session
    // that try (one answer due, none more coming) would be wasted work on every query. Anything
    // past them stays queued and is read, and dropped as late, on the next pass.
    const unsigned want = options_.udpResponses > 0
                              ? static_cast<unsigned>(std::clamp<uint64_t>(s.responsesDue, 1, kBatchSize))
                              : static_cast<unsigned>(kBatchSize);
    // A connected socket only ever holds this backend's datagrams: no address to read.
    int n = recvmmsg(s.upstream.get(), batch_->in, want, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return;
      // The refusal may surface here instead of as EPOLLERR, when a reply and the ICMP error
      // arrive in one pass.
      onBackendFailed(s, err);
      return;
    }
    int out = 0;
    // With a responses-per-request setting, only the answers still due go to the client: one
    // more in the same batch belongs to no request, so it is dropped and counted.
    uint64_t due = options_.udpResponses > 0 ? s.responsesDue : UINT64_MAX;
    for (int i = 0; i < n; ++i) {
      if (batch_->in[i].msg_hdr.msg_flags & MSG_TRUNC) {
        lc.add(Counter::dropped_truncated, 1);
        s.backendCounters->worker(index_).add(Counter::dropped_truncated, 1);
        continue;
      }
      if (due == 0) {
        lc.add(Counter::dropped_late, 1);
        s.backendCounters->worker(index_).add(Counter::dropped_late, 1);
        continue;
      }
      --due;
      mmsghdr& m = batch_->out[out];
      batch_->outIov[out] = iovec{batch_->buffer(i), batch_->in[i].msg_len};
      m.msg_hdr = msghdr{};
      m.msg_hdr.msg_name = const_cast<sockaddr*>(s.client.get());
      m.msg_hdr.msg_namelen = s.client.length();
      m.msg_hdr.msg_iov = &batch_->outIov[out];
      m.msg_hdr.msg_iovlen = 1;
      const size_t control = replyControl(s.local, batch_->outControl[out]);
      if (control > 0) {
        m.msg_hdr.msg_control = batch_->outControl[out];
        m.msg_hdr.msg_controllen = control;
      }
      m.msg_len = 0;
      ++out;
    }
    if (n > 0 && !s.answered) {
      // The backend answered: for passive health, as good as a TCP connect that worked.
      s.answered = true;
      tallies_.add(s.backendKey, true, false);
    }
    sendReplies(s, out);
    sessions_.touch(s, now());
    refreshReport(s);
    if (options_.udpResponses > 0) {
      s.responsesDue -= std::min<uint64_t>(s.responsesDue, static_cast<uint64_t>(n));
      if (s.responsesDue == 0) {
        closeSession(s, CloseReason::Responses);
        return;
      }
    }
    if (n < static_cast<int>(want)) return;
  }
}

void UdpProxy::sendReplies(UdpSession& s, int count) {
  CounterBlock& lc = listenerCounters(s.listener);
  CounterBlock& bc = s.backendCounters->worker(index_);
  const int fd = listeners_[s.listener].socket.get();
  int sent = 0;
  while (sent < count) {
    if (fd < 0) {
      lc.add(Counter::dropped_send_error, count - sent);
      bc.add(Counter::dropped_send_error, count - sent);
      return;
    }
    // Replies leave through the listener socket, so their source port is the listener's and,
    // with the IP_PKTINFO / IPV6_PKTINFO message, their source address is the one the client
    // sent to. sendmmsg sends a burst in one syscall; it returns how many went, and an error only
    // when the first one failed.
    int r = sendmmsg(fd, batch_->out + sent, static_cast<unsigned>(count - sent), MSG_DONTWAIT);
    if (r > 0) {
      for (int i = sent; i < sent + r; ++i) {
        const uint64_t bytes = batch_->outIov[i].iov_len;
        lc.add(Counter::datagrams_to_client, 1);
        lc.add(Counter::bytes_to_client, static_cast<int64_t>(bytes));
        bc.add(Counter::datagrams_to_client, 1);
        bc.add(Counter::bytes_to_client, static_cast<int64_t>(bytes));
        s.datagramsDown++;
        s.bytesDown += bytes;
      }
      sent += r;
      continue;
    }
    const int err = r < 0 ? errno : EAGAIN;
    if (err == EINTR) continue;
    // EAGAIN: the listener's send buffer is full; the rest of the burst would fail alike, so it
    // is dropped (counted) rather than held. Any other error (EPERM from a firewall, a client
    // address the kernel rejects) concerns this datagram: drop it and try the others.
    const int dropped = err == EAGAIN || err == EWOULDBLOCK ? count - sent : 1;
    lc.add(Counter::dropped_send_error, dropped);
    bc.add(Counter::dropped_send_error, dropped);
    sent += dropped;
  }
}

void UdpProxy::onBackendFailed(UdpSession& s, int error) {
  // For passive health a refusal is a failed connect: counted, tallied and reported the same way.
  // New sessions on this worker avoid the backend for a connect timeout, so the client's next
  // datagram goes to another backend even under a hashing algorithm.
  CounterBlock& lc = listenerCounters(s.listener);
  CounterBlock& bc = s.backendCounters->worker(index_);
  bc.add(Counter::connect_failures, 1);
  lc.add(Counter::connect_failures, 1);
  tallies_.add(s.backendKey, false, false);
  // One entry per backend, however many of its sessions are refused: a flood of refusals must
  // not grow the list.
  const int64_t until = now() + options_.connectTimeoutMs;
  auto known = std::find_if(refused_.begin(), refused_.end(), [&](const Refusal& r) { return r.backendKey == s.backendKey; });
  if (known != refused_.end()) {
    known->untilMs = until;
  } else {
    refused_.push_back(Refusal{s.backendKey, until});
  }
  closeSession(s, error == ECONNREFUSED ? CloseReason::Refused : CloseReason::Error);
}

// --- session ends -----------------------------------------------------------------------------

void UdpProxy::closeSession(UdpSession& s, CloseReason reason) {
  if (s.state != SessionState::Active) return;
  s.closeReason = reason;
  CounterBlock& lc = listenerCounters(s.listener);
  lc.add(Counter::sessions_active, -1);
  CounterBlock* bc = s.backendCounters ? &s.backendCounters->worker(index_) : nullptr;
  if (bc) {
    bc->observe(Histogram::session_duration, monotonicUs() - s.startUs);
    bc->add(Counter::sessions_active, -1);
  }
  Counter counted = Counter::sessions_total;  // a placeholder: only the reasons below count
  bool count = true;
  switch (reason) {
    case CloseReason::IdleTimeout:
      counted = Counter::sessions_expired;
      break;
    case CloseReason::Evicted:
      counted = Counter::sessions_evicted;
      break;
    case CloseReason::Drained:
      counted = Counter::drain_closed;
      break;
    default:
      count = false;
  }
  if (count) {
    lc.add(counted, 1);
    if (bc) bc->add(counted, 1);
  }
  logClosedSession(s);
  // A session that never got a backend was never reported as opened.
  if (s.backendCounters && replicates()) replication_.report(s, false);
  // A session whose every expected response came back keeps its upstream socket warm for its
  // own client's next request (SessionTable, "Warm sockets, per client"): four syscalls fewer
  // per DNS query. Only for that same client key, never for another client: a late answer on the
  // socket can then only reach the client that asked (a socket handed to the next client
  // delivered the previous client's late answer to it).
  // A draining listener starts no session that could reuse the socket.
  sessions_.retire(s, reason == CloseReason::Responses && !listeners_[s.listener].udpDraining);
}

void UdpProxy::expireIdle() {
  const int64_t t = now();
  // A warm socket is kept at most the idle timeout after its session's last datagram.
  sessions_.expireWarm(t - options_.udpIdleTimeoutMs);
  for (uint32_t slot = 0; slot < listeners_.size(); ++slot) {
    // Least recently active first: the walk stops at the first session still in use.
    while (UdpSession* s = sessions_.oldest(slot)) {
      if (t - s->lastActiveMs < options_.udpIdleTimeoutMs) break;
      closeSession(*s, CloseReason::IdleTimeout);
    }
  }
}

void UdpProxy::onTableChanged(uint32_t slot) {
  // A removed listener's table empties, but its sessions drain on their backends until they end
  // or the drain deadline, as a removed TCP listener's flows do.
  if (listeners_[slot].udpDraining) return;
  const BackendTable* table = listeners_[slot].table.get();
  // Warm sockets serve new sessions only, which only an up backend takes.
  sessions_.forEachWarm([&](UdpSession& w) {
    if (w.listener != slot) return;
    const BackendEntry* entry = nullptr;
    if (table) {
      for (const BackendEntry& b : table->backends)
        if (b.key == w.backendKey) entry = &b;
    }
    if (!entry || entry->state != BackendState::Up || !sameAddress(entry->address, w.backendAddress)) sessions_.closeWarm(w);
  });
  for (uint32_t key : sessions_.backendKeys()) {
    const BackendEntry* entry = nullptr;
    if (table) {
      for (const BackendEntry& b : table->backends)
        if (b.key == key) entry = &b;
    }
    // A draining backend keeps its sessions until they go idle; removed, down and maintenance
    // backends lose them now (a datagram sent to a dead backend is lost anyway, and the client's
    // next one gets a live backend).
    if (entry && (entry->state == BackendState::Up || entry->state == BackendState::Draining)) continue;
    sessions_.forEachOfBackend(key, [&](UdpSession& s) {
      if (s.listener == slot) closeSession(s, CloseReason::BackendGone);
    });
  }
}

uint64_t UdpProxy::closeSessions(const FlowFilter& filter, CloseReason reason) {
  uint64_t closed = 0;
  sessions_.forEach([&](UdpSession& s) {
    if (filter.listener >= 0 && s.listener != static_cast<uint32_t>(filter.listener)) return;
    if (filter.backendKey >= 0 && s.backendKey != static_cast<uint32_t>(filter.backendKey)) return;
    closeSession(s, reason);
    ++closed;
  });
  // And the warm sockets they leave (or had left): no session of theirs is to come.
  closeWarm(filter);
  return closed;
}

void UdpProxy::closeWarm(const FlowFilter& filter) {
  sessions_.forEachWarm([&](UdpSession& w) {
    if (filter.listener >= 0 && w.listener != static_cast<uint32_t>(filter.listener)) return;
    if (filter.backendKey >= 0 && w.backendKey != static_cast<uint32_t>(filter.backendKey)) return;
    sessions_.closeWarm(w);
  });
}

void UdpProxy::closeAll(CloseReason reason) {
  sessions_.forEach([&](UdpSession& s) { closeSession(s, reason); });
  sessions_.closeAllWarm();
}

void UdpProxy::snapshot(const FlowFilter& filter, std::vector<FlowInfo>& out) {
  const int64_t wallOffset = wallClockMs() - monotonicMs();
  size_t taken = 0;
  sessions_.forEach([&](UdpSession& s) {
    if (taken >= filter.limit) return;
    if (filter.listener >= 0 && s.listener != static_cast<uint32_t>(filter.listener)) return;
    if (filter.backendKey >= 0 && s.backendKey != static_cast<uint32_t>(filter.backendKey)) return;
    FlowInfo info{s.id, s.listener, index_, FlowState::Established, s.client.toString(), true, s.backendKey,
                  s.backendAddress.toString(), s.startMs + wallOffset, s.bytesUp, s.bytesDown};
    info.protocol = Protocol::Udp;
    info.datagramsToBackend = s.datagramsUp;
    info.datagramsToClient = s.datagramsDown;
    out.push_back(std::move(info));
    ++taken;
  });
}

void UdpProxy::logClosedSession(const UdpSession& s) {
  uint32_t every = flowLogEvery_.load(std::memory_order_relaxed);
  if (every == 0 || ++sessionsClosed_ % every != 0) return;
  Event e{EventType::FlowClosed};
  e.worker = index_;
  e.listener = s.listener;
  e.protocol = Protocol::Udp;
  e.flowId = s.id;
  e.hasBackend = s.backendCounters != nullptr;
  e.backendKey = s.backendKey;
  e.reason = s.closeReason;
  e.client = s.client;
  e.bytesToBackend = s.bytesUp;
  e.bytesToClient = s.bytesDown;
  e.datagramsToBackend = s.datagramsUp;
  e.datagramsToClient = s.datagramsDown;
  e.startWallMs = s.startMs + (wallClockMs() - monotonicMs());
  e.durationMs = now() - s.startMs;
  events_.push(e);
}

}  // namespace lb4
