#pragma once
// The UDP side of one worker: it owns the worker's UDP sessions (DESIGN.md section 4). It reads a
// listener's reuseport socket in recvmmsg batches, finds or opens the client's session (picking a
// backend through the listener's picker and connecting an upstream socket to it), forwards the
// datagram, and sends the backend's replies back to the client through the listener socket, from
// the address the client sent to. Sessions end on the UDP idle timeout, when their expected
// responses are back, under the session cap (oldest first), when their backend is removed, down
// or in maintenance, when the backend refuses (passive health), or on a drain. The worker owns
// the loop, the clock, the listener slots and the timers, and calls in here.
//
// Single-threaded: everything runs on the worker's thread.

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "connect_tally.h"
#include "engine_options.h"
#include "io/clock.h"
#include "io/epoll_loop.h"
#include "io/event_queue.h"
#include "listener_slot.h"
#include "udp/session_replication.h"
#include "udp/session_table.h"
#include "worker_command.h"

namespace lb4 {

class UdpProxy {
 public:
  UdpProxy(uint32_t workerIndex, const WorkerOptions& options, const LoopClock& clock, EpollLoop& loop,
           std::vector<ListenerSlot>& listeners, EventQueue& events, const std::atomic<uint32_t>& flowLogEvery,
           SessionReplication& replication);
  ~UdpProxy();
  UdpProxy(const UdpProxy&) = delete;
  UdpProxy& operator=(const UdpProxy&) = delete;

  // The UDP listener in `slot` is readable: reads a bounded number of batches (the listener is
  // level-triggered, so what is left waits for the next pass, behind the other sockets' events).
  void readListener(uint32_t slot);
  // An epoll event on the upstream socket of the session in table slot `sessionSlot`.
  void onUpstreamEvent(uint64_t sessionSlot, uint32_t events);
  // Between two epoll passes.
  void releaseClosed() { sessions_.releaseClosed(); }
  // Sessions idle past the UDP idle timeout close (sweep, every sweepIntervalMs()).
  void expireIdle();
  int64_t sweepIntervalMs() const;
  // Listener `slot` has a new table: sessions of backends no longer in it, down or in maintenance
  // close; those of a draining backend run on until idle.
  void onTableChanged(uint32_t slot);
  // Sends this tick's refusals and first replies up as events (tick, and once more at the end).
  void flushTallies() { tallies_.flush(events_, index_); }
  // Closes the matching sessions at once; returns how many.
  uint64_t closeSessions(const FlowFilter& filter, CloseReason reason);
  void closeAll(CloseReason reason);
  void snapshot(const FlowFilter& filter, std::vector<FlowInfo>& out);
  size_t liveSessions() const { return sessions_.live(); }
  size_t liveOn(uint32_t slot) const { return sessions_.liveOn(slot); }
  // Closes the warm sockets of the matching listener and backend (a removed listener's).
  void closeWarm(const FlowFilter& filter);
  // Reports every live session for the HA peer (when replication is on).
  void reportAll();

 private:
  struct Batch;
  void ensureBatch();
  void onClientDatagram(uint32_t slot, int i);
  // Counts the datagrams the kernel dropped on the listener's full socket since the last batch.
  void countSocketDrops(uint32_t slot, int n);
  UdpSession* openSession(uint32_t slot, const SessionKey& key, const SocketAddress& client, const LocalAddress& local);
  bool makeRoom(uint32_t slot);
  void countOpened(UdpSession& s, const BackendEntry& b, bool fromHint);
  // The client's warm socket as its new session, when it is connected to `b`; null otherwise.
  UdpSession* openWarm(const BackendEntry& b, const SessionKey& key);
  // Reads and drops what a warm socket holds; false when the socket has failed.
  bool drainWarm(UdpSession& w);
  // Returns false when the session ended (refused) and the datagram was not sent.
  bool forwardUp(UdpSession& s, const char* data, size_t length);
  void readUpstream(UdpSession& s);
  void sendReplies(UdpSession& s, int count);
  void onBackendFailed(UdpSession& s, int error);
  void closeSession(UdpSession& s, CloseReason reason);
  void logClosedSession(const UdpSession& s);
  void avoidRecentlyRefused(TriedBackends& tried);
  // The backend the HA peer's session for `key` used (session_replication.h), when this
  // listener's table has it and it takes new flows; null otherwise.
  const BackendEntry* hintedBackend(uint32_t slot, const SessionKey& key, const TriedBackends& tried);
  // A datagram moved: while replication is on, a session is reported again every refreshMs.
  void refreshReport(UdpSession& s);
  // Whether sessions are reported to the HA peer: replication is on, and sessions are not
  // per-exchange (--udp-responses): such a session ends with its answers, and even on this node
  // the client's next request picks a backend anew, so there is nothing to keep across a
  // failover, and a DNS load would only fill the queue.
  bool replicates() const { return options_.udpResponses == 0 && replication_.enabled(); }
  CounterBlock& listenerCounters(uint32_t listener) { return listeners_[listener].countersOf(index_); }
  int64_t now() const { return clock_.now(); }

  const uint32_t index_;
  const WorkerOptions& options_;
  const LoopClock& clock_;
  EpollLoop& loop_;
  std::vector<ListenerSlot>& listeners_;
  EventQueue& events_;
  const std::atomic<uint32_t>& flowLogEvery_;
  SessionReplication& replication_;

  SessionTable sessions_;
  ConnectTallies tallies_;
  uint64_t sessionsClosed_ = 0;
  // The datagram buffers and message headers of one recvmmsg/sendmmsg batch, made on first use
  // so that a worker with no UDP listener never holds them.
  std::unique_ptr<Batch> batch_;
  // Backends that refused a datagram lately (key, until when): new sessions avoid them while
  // another backend can take the client, so a client's retry lands elsewhere at once.
  struct Refusal {
    uint32_t backendKey;
    int64_t untilMs;
  };
  std::vector<Refusal> refused_;
};

}  // namespace lb4
