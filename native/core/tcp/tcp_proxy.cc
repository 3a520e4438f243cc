// The life of a TCP flow on a worker: accept, connect (with timeout and retries), forwarding
// with splice(2), half-close, reset propagation and close. See DESIGN.md section 3.

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include "balance/hash.h"
#include "io/epoll_tag.h"
#include "worker.h"

namespace lb4 {

namespace {

// Edge-triggered for both directions at once: a flow's sockets are registered once and never
// modified, so forwarding costs no epoll_ctl calls.
constexpr uint32_t kFlowEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;

// A direction moves at most this much per wake-up before letting other flows run; the rest
// continues right after the current epoll pass.
constexpr uint64_t kPumpBudget = 1 << 20;

void setNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int socketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

}  // namespace

void FlowSocket::closeAbortively() {
  if (!fd) return;
  linger lg{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  fd.reset();
}

void Worker::startFlow(UniqueFd fd, const SocketAddress& client, uint32_t listener) {
  Flow& f = flows_.open();
  f.listener = listener;
  f.client.fd = std::move(fd);
  f.clientAddress = client;
  f.flowHash = clientFlowHash(client);
  f.startMs = f.lastActiveMs = now_;
  CounterBlock& lc = listenerCounters(listener);
  lc.add(Counter::flows_total, 1);
  lc.add(Counter::flows_active, 1);
  // TCP_NODELAY comes from the listening socket: accepted sockets inherit it.
  // Only a shortage of kernel memory or epoll watches comes back: the flow cannot be served.
  if (!loop_.watch(f.client.get(), kFlowEvents, makeTag(TagKind::TcpClient, f.slot)).ok()) {
    closeFlow(f, CloseReason::Error, false);
    return;
  }
  if (!connectNext(f)) closeFlow(f, CloseReason::NoBackend, false);
}

bool Worker::connectNext(Flow& f) {
  Picker* picker = pickers_[f.listener].get();
  CounterBlock& lc = listenerCounters(f.listener);
  while (f.attempts <= options_.retries) {
    const BackendEntry* b = picker ? picker->pick(f.flowHash, f.tried) : nullptr;
    if (!b) return false;
    if (f.attempts > 0) lc.add(Counter::retries, 1);
    f.attempts++;
    f.tried.add(b->key);
    CounterBlock& bc = b->counters->worker(index_);

    UniqueFd fd(socket(b->address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return false;  // out of descriptors or memory: nothing another backend would fix
    setNoDelay(fd.get());
    if (connect(fd.get(), b->address.get(), b->address.length()) == 0 || errno == EINPROGRESS) {
      if (!loop_.watch(fd.get(), kFlowEvents, makeTag(TagKind::TcpBackend, f.slot)).ok()) return false;
      f.backend = FlowSocket{};
      f.backend.fd = std::move(fd);
      f.backendKey = b->key;
      f.backendAddress = b->address;
      f.backendCounters = b->counters;
      // A connect in progress counts as active, so least-connections sees it at once.
      bc.add(Counter::flows_active, 1);
      f.connectDeadlineMs = now_ + options_.connectTimeoutMs;
      linkConnecting(f);
      return true;
    }
    // Refused at once (unreachable network, no ephemeral port): try the next backend. The
    // socket closes as `fd` goes out of scope.
    bc.add(Counter::connect_failures, 1);
    lc.add(Counter::connect_failures, 1);
    tallyConnect(b->key, false, false);
  }
  return false;
}

void Worker::onConnectFailed(Flow& f, bool timedOut) {
  unlinkConnecting(f);
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
  if (!connectNext(f)) closeFlow(f, CloseReason::NoBackend, false);
}

void Worker::onConnected(Flow& f) {
  unlinkConnecting(f);
  f.state = FlowState::Established;
  f.lastActiveMs = now_;
  f.backendCounters->worker(index_).add(Counter::flows_total, 1);
  tallyConnect(f.backendKey, true, false);
  pumpFlow(f);
}

void Worker::onFlowEvent(Flow& f, bool backendSide, uint32_t events) {
  if (f.state == FlowState::Closed) return;  // closed earlier in this pass
  FlowSocket& s = backendSide ? f.backend : f.client;

  if (f.state == FlowState::Connecting) {
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

void Worker::pumpFlow(Flow& f) {
  PumpResult up = pump(f, f.up, f.client, f.backend, true);
  if (up == PumpResult::SourceReset || up == PumpResult::DestinationReset) {
    resetFlow(f, up == PumpResult::DestinationReset);
    return;
  }
  PumpResult down = pump(f, f.down, f.backend, f.client, false);
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

// Moves bytes from `src` to `dst` until neither side can go on.
//
// Small messages take the copy path: recv into the worker's scratch buffer, send straight on
// (whatever the destination does not take waits in a per-flow heap buffer). Two syscalls per
// message, where splice would need three (in, out, and the read that says EAGAIN). A read that
// fills the scratch buffer marks the direction bulk, and bulk bytes go socket -> pipe -> socket
// with splice(2); a small read on an empty pipe turns it back.
//
// The kernel's answers that need care (HAProxy's raw_sock.c documents the same ones):
// - splice() from a socket into a pipe says EAGAIN both when the socket has nothing to read and
//   when the pipe is full. Only with an empty pipe does it certainly mean "nothing to read";
//   with bytes in the pipe the bytes go out first and the read is tried again.
// - A short recv() means the socket was emptied: edge-triggered epoll reports any byte that
//   arrives later, so no second read is needed to hear EAGAIN. Unless the peer's FIN was already
//   reported: then the end of stream still waits to be read.
// - splice() returns 0 at a TCP urgent mark too, not only at the end of stream.
// - A read of 0 is the peer's FIN. It is passed on (shutdown(SHUT_WR)) only once every byte
//   before it has been delivered, which is what makes half-close exact.
Worker::PumpResult Worker::pump(Flow& f, Direction& d, FlowSocket& src, FlowSocket& dst, bool toBackend) {
  uint64_t budget = kPumpBudget;
  CounterBlock& lc = listenerCounters(f.listener);
  CounterBlock& bc = f.backendCounters->worker(index_);
  const Counter bytesCounter = toBackend ? Counter::bytes_to_backend : Counter::bytes_to_client;
  auto delivered = [&](int64_t n, bool viaPipe) {
    d.bytes += n;
    const Counter how = viaPipe ? Counter::spliced_bytes : Counter::copied_bytes;
    lc.add(bytesCounter, n);
    lc.add(how, n);
    bc.add(bytesCounter, n);
    bc.add(how, n);
    f.lastActiveMs = now_;
  };

  for (;;) {
    bool progress = false;

    if (dst.writable && d.holdsBytes()) {
      const bool viaPipe = d.pipeBytes > 0;
      SysResult w = viaPipe ? sysResult(splice(d.pipe.readFd(), nullptr, dst.get(), nullptr, d.pipeBytes,
                                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK))
                            : sysResult(send(dst.get(), d.buffer.get() + d.bufferStart, d.bufferEnd - d.bufferStart,
                                             MSG_NOSIGNAL | MSG_DONTWAIT));
      if (w.ok()) {
        if (viaPipe) {
          d.pipeBytes -= static_cast<uint32_t>(w.value);
        } else {
          d.bufferStart += static_cast<uint32_t>(w.value);
        }
        delivered(w.value, viaPipe);
        progress = true;
      } else if (w.error == EAGAIN) {
        dst.writable = false;
      } else if (w.error != EINTR) {
        return PumpResult::DestinationReset;
      }
    }
    // Pipes and buffers are held only while they hold bytes.
    if (d.pipe.valid() && d.pipeBytes == 0) pipes_.put(d.pipe);
    if (d.buffer && d.bufferStart == d.bufferEnd) {
      d.buffer.reset();
      d.bufferStart = d.bufferEnd = 0;
    }

    if (src.readable && !d.eof && budget > 0 && d.bufferStart == d.bufferEnd) {
      bool useSplice = d.bulk || d.pipeBytes > 0;
      // Past an urgent mark only recv() goes on; bytes already in the pipe go out first, so
      // nothing overtakes them.
      const bool holdForUrgent = src.urgent && d.pipeBytes > 0;
      if (src.urgent) useSplice = false;
      // No pipe to be had (descriptors or pipe memory ran out): copy instead.
      if (useSplice && !d.pipe.valid() && !pipes_.get(d.pipe)) useSplice = false;
      if (holdForUrgent) {
        // Nothing to read this round: the delivery above makes the progress, or EPOLLOUT does.
      } else if (useSplice) {
        const uint32_t before = d.pipeBytes;
        const uint32_t room = static_cast<uint32_t>(pipes_.capacity()) - std::min<uint32_t>(before, pipes_.capacity());
        if (room > 0) {
          SysResult r = sysResult(splice(src.get(), nullptr, d.pipe.writeFd(), nullptr, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
          if (r.ok() && r.value > 0) {
            d.pipeBytes += static_cast<uint32_t>(r.value);
            budget -= std::min<uint64_t>(budget, r.value);
            f.lastActiveMs = now_;
            progress = true;
            if (before == 0 && r.value < kScratchSize / 4) d.bulk = false;
          } else if (r.ok()) {
            // splice() also returns 0 at a TCP urgent mark, with data still behind it, even
            // when the FIN has arrived too. recv() on the copy path, which steps over the urgent
            // byte and returns 0 only at the real end, decides: one extra syscall per bulk flow.
            // It may read only once the pipe is empty (order); until then only delivery is
            // progress, or this loop would spin on the same 0.
            d.bulk = false;
            if (before == 0) progress = true;
          } else if (r.error == EAGAIN) {
            if (d.pipeBytes == 0) src.readable = false;
          } else if (r.error != EINTR) {
            return PumpResult::SourceReset;
          }
        }
      } else {
        SysResult r = sysResult(recv(src.get(), scratch_.get(), kScratchSize, MSG_DONTWAIT));
        if (r.ok() && r.value > 0) {
          const uint32_t n = static_cast<uint32_t>(r.value);
          budget -= std::min<uint64_t>(budget, n);
          f.lastActiveMs = now_;
          progress = true;
          if (n == kScratchSize) {
            d.bulk = true;
          } else if (!src.peerClosed && !src.urgent) {
            // (recv() also stops short just before an urgent mark.)
            src.readable = false;
          }
          uint32_t sent = 0;
          if (dst.writable) {
            SysResult w = sysResult(send(dst.get(), scratch_.get(), n, MSG_NOSIGNAL | MSG_DONTWAIT));
            if (w.ok()) {
              sent = static_cast<uint32_t>(w.value);
              delivered(w.value, false);
            } else if (w.error == EAGAIN) {
              dst.writable = false;
            } else if (w.error != EINTR) {
              return PumpResult::DestinationReset;
            }
          }
          if (sent < n) {
            d.buffer.reset(new char[kScratchSize]);
            std::memcpy(d.buffer.get(), scratch_.get() + sent, n - sent);
            d.bufferStart = 0;
            d.bufferEnd = n - sent;
          }
        } else if (r.ok()) {
          d.eof = true;
          src.urgent = false;
          progress = true;
        } else if (r.error == EAGAIN) {
          src.readable = false;
          src.urgent = false;  // past the mark: nothing more to read for now
        } else if (r.error != EINTR) {
          return PumpResult::SourceReset;
        }
      }
    }

    if (!progress) break;
  }
  // An empty pipe goes back even when the last read found nothing (a stale edge), so an idle
  // flow holds no pipe.
  if (d.pipe.valid() && d.pipeBytes == 0) pipes_.put(d.pipe);

  if (d.eof && !d.holdsBytes() && !d.shutdownSent) {
    // When the other direction is finished too, the flow closes right away and close() sends
    // this FIN: the shutdown() call would be one syscall for nothing.
    const Direction& other = &d == &f.up ? f.down : f.up;
    if (!other.shutdownSent) shutdown(dst.get(), SHUT_WR);
    d.shutdownSent = true;
  }
  bool moreToRead = src.readable && !d.eof && d.bufferStart == d.bufferEnd;
  return budget == 0 && moreToRead ? PumpResult::Yielded : PumpResult::Idle;
}

void Worker::resetFlow(Flow& f, bool backendReset) {
  closeFlow(f, backendReset ? CloseReason::BackendReset : CloseReason::ClientReset, true);
}

void Worker::closeFlow(Flow& f, CloseReason reason, bool abortive) {
  if (f.state == FlowState::Closed) return;
  unlinkConnecting(f);

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
  if (bc) bc->add(Counter::flows_active, -1);
  lc.add(Counter::flows_active, -1);

  for (FlowSocket* s : {&f.client, &f.backend}) {
    if (abortive) {
      s->closeAbortively();
    } else {
      s->close();
    }
  }
  for (Direction* d : {&f.up, &f.down}) {
    if (d->pipeBytes > 0) {
      pipes_.kill(d->pipe);
    } else {
      pipes_.put(d->pipe);
    }
    d->pipeBytes = 0;
  }
  f.closeReason = reason;
  logClosedFlow(f);
  flows_.retire(f);
}

void Worker::linkConnecting(Flow& f) {
  // Every flow gets the same connect timeout, so appending keeps the list in deadline order.
  f.connectPrev = connectTail_;
  f.connectNext = nullptr;
  if (connectTail_) {
    connectTail_->connectNext = &f;
  } else {
    connectHead_ = &f;
  }
  connectTail_ = &f;
  f.onConnectList = true;
}

void Worker::unlinkConnecting(Flow& f) {
  if (!f.onConnectList) return;
  if (f.connectPrev) {
    f.connectPrev->connectNext = f.connectNext;
  } else {
    connectHead_ = f.connectNext;
  }
  if (f.connectNext) {
    f.connectNext->connectPrev = f.connectPrev;
  } else {
    connectTail_ = f.connectPrev;
  }
  f.connectPrev = f.connectNext = nullptr;
  f.onConnectList = false;
}

}  // namespace lb4
