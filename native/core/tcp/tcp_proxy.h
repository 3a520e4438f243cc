#pragma once
// The TCP side of one worker: it owns the worker's TCP flows from accept to close (DESIGN.md
// section 3). It accepts on a listener's socket when the worker says it is readable, picks a
// backend through the listener's picker, connects with a timeout and retries, moves bytes with
// the splice pump, passes half-closes and resets on, closes idle flows, and reports connect
// outcomes and closed flows as events. The worker owns the loop, the clock, the listener slots
// and the timers, and calls in here; nothing here touches another protocol.
//
// Single-threaded: everything runs on the worker's thread.

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "connect_tally.h"
#include "io/clock.h"
#include "io/epoll_loop.h"
#include "io/event_queue.h"
#include "io/unique_fd.h"
#include "listener_slot.h"
#include "tcp/deadline_list.h"
#include "tcp/flow_table.h"
#include "tcp/splice_pump.h"
#include "worker_command.h"
#include "engine_options.h"

namespace lb4 {

class TcpProxy {
 public:
  // `listeners` is the worker's slot list (it may grow; flows refer to slots by number).
  // `flowLogEvery` is shared with the engine: 0 logs no flow, N logs one closed flow in N.
  TcpProxy(uint32_t workerIndex, const WorkerOptions& options, const LoopClock& clock, EpollLoop& loop,
           std::vector<ListenerSlot>& listeners, EventQueue& events, const std::atomic<uint32_t>& flowLogEvery);
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  // --- listeners ---
  // The listener in `slot` is readable: accepts a batch of clients and starts their flows.
  // Returns false when the listener must leave the epoll set for now (descriptors ran out and
  // not even the reserve came back); the worker pauses it and the tick brings it back.
  bool acceptOn(uint32_t slot);
  // Takes the reserve descriptor back if shedding gave it up and could not (tick).
  void retakeReserve();

  // --- flows ---
  // An epoll event for the flow in table slot `flowSlot`, on its client or backend socket.
  void onFlowEvent(uint64_t flowSlot, bool backendSide, uint32_t events);
  // Flows that used their byte budget and have more to move.
  bool hasYielded() const { return !yielded_.empty(); }
  void runYielded();
  // Between two epoll passes: slots of flows closed in this pass become free.
  void releaseClosed() { flows_.releaseClosed(); }
  // Connects past their deadline fail over to the next backend (tick).
  void expireConnects();
  // Clients still without a whole PROXY protocol header at the header timeout are refused (tick).
  void expireHeaders();
  // Clients still without a whole TLS ClientHello at the SNI timeout are closed (tick).
  void expireHellos();
  // Queued flows past the queue timeout close; queues with a backend that has room again (a
  // flow ended on another worker) move on (tick).
  void serviceQueues();
  // Established flows idle past the idle timeout close, and per-source tables forget idle
  // sources (idle sweep).
  void expireIdle();
  // Sends this tick's connect outcomes up as events (tick, and once more at the end).
  void flushConnectTallies();
  // Closes the matching flows at once (abortively); returns how many.
  uint64_t closeFlows(const FlowFilter& filter, CloseReason reason);
  // Closes every flow (the end of a drain).
  void closeAll(CloseReason reason);
  void snapshot(const FlowFilter& filter, std::vector<FlowInfo>& out);
  size_t liveFlows() const { return flows_.live(); }

 private:
  // What a connect attempt came to: started, no backend takes new flows, or every one that
  // would is at its maxConnections.
  enum class ConnectStart { Started, NoBackend, Full };

  void startFlow(UniqueFd fd, const SocketAddress& client, uint32_t listener);
  void shedLoad(uint32_t listener);
  // The access lists and per-source limits for `client`: the counter of the refusal, or none
  // (the flow is then counted against its source).
  std::optional<Counter> judgeClient(ListenerSlot& l, const SocketAddress& client);
  void refuseFlow(Flow& f, Counter reason);
  ConnectStart connectNext(Flow& f);
  // connectNext, then whatever its outcome calls for: close (no backend) or queue (all full).
  void connectOrQueue(Flow& f);
  void queueFlow(Flow& f);
  void dispatchQueued(uint32_t listener);
  // Whether a backend a flow for `pool` may go to (empty: any of the listener's) takes new
  // flows and has room under its maxConnections.
  bool backendHasRoom(uint32_t listener, const std::string& pool) const;
  void onConnectFailed(Flow& f, bool timedOut);
  void onConnected(Flow& f);
  void onFlowEvent(Flow& f, bool backendSide, uint32_t events);
  void pumpFlow(Flow& f);
  void resetFlow(Flow& f, bool backendReset);
  void closeFlow(Flow& f, CloseReason reason, bool abortive);
  void awaitHeader(Flow& f);
  void readHeader(Flow& f);
  void refuseHeader(Flow& f, Counter reason);
  bool sendHeader(Flow& f);
  void connectOrRoute(Flow& f);
  void awaitHello(Flow& f);
  void readHello(Flow& f);
  void refuseHello(Flow& f, Counter reason);
  void tallyConnect(uint32_t backendKey, bool ok, bool timeout);
  void logClosedFlow(const Flow& f);
  CounterBlock& listenerCounters(uint32_t listener) { return listeners_[listener].countersOf(index_); }
  int64_t now() const { return clock_.now(); }

  const uint32_t index_;
  const WorkerOptions& options_;
  const LoopClock& clock_;
  EpollLoop& loop_;
  std::vector<ListenerSlot>& listeners_;
  EventQueue& events_;
  const std::atomic<uint32_t>& flowLogEvery_;

  UniqueFd reserveFd_;  // spare descriptor, given up to shed connections when descriptors run out
  SplicePump pump_;
  FlowTable flows_;
  uint64_t flowsClosed_ = 0;

  FlowDeadlineList connecting_;      // backend connects in progress
  FlowDeadlineList awaitingHeader_;  // clients yet to send their PROXY protocol header
  FlowDeadlineList awaitingHello_;   // clients yet to send their TLS ClientHello (SNI routing)
  // Per listener slot, flows waiting for a backend with room, oldest first. A deque: growing it
  // keeps the lists where they are, and flows point at theirs.
  std::deque<FlowDeadlineList> queues_;
  bool dispatching_ = false;  // dispatchQueued is running (closing a flow there must not recurse)
  std::vector<uint32_t> yielded_;

  ConnectTallies tallies_;
};

}  // namespace lb4
