#pragma once
// A data-plane worker: one thread, one epoll loop, its own reuseport listening sockets, and one
// handler per protocol (tcp/TcpProxy, udp/UdpProxy) that owns that protocol's flows or sessions.
// The worker owns the loop, the clock, the timers, the listener slots and the command queue; it
// dispatches each epoll event by its tag's kind, and the listener's protocol, to a handler.
// Nothing here is shared with another worker except read-only backend tables and the counters
// other threads only read.
//
// Thread affinity: the constructor, init(), start(), post() and join() run on the control thread;
// everything else runs on the worker's own thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "balance/backend_table.h"
#include "counters.h"
#include "engine_options.h"
#include "io/clock.h"
#include "io/epoll_loop.h"
#include "io/event_queue.h"
#include "io/wake_queue.h"
#include "listener_slot.h"
#include "tcp/tcp_proxy.h"
#include "udp/udp_proxy.h"
#include "worker_command.h"

namespace lb4 {

class Worker {
 public:
  // `listeners` are the worker's first slots, each with its socket, protocol and counters; their
  // tables come with start(). `flowLogEvery` is shared with the engine: 0 logs no flow, N logs
  // one closed flow in N.
  // `replication` is the engine's: UDP sessions reported to, and hinted by, the HA peer.
  Worker(uint32_t index, const WorkerOptions& options, std::vector<ListenerSlot> listeners, EventQueue& events,
         const std::atomic<uint32_t>& flowLogEvery, SessionReplication& replication);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  SysResult init();
  // Adopts one table per listener slot, then starts the thread.
  void start(std::vector<std::shared_ptr<const BackendTable>> tables);
  void post(WorkerCommand command) { commands_.post(std::move(command)); }
  void join();

 private:
  void run();
  void runCommands();
  // One per command (worker_command.h). `completion` arrives after the command ran, except for
  // Stop, whose completion waits for the end of the loop.
  void apply(command::ApplyBackends& c);
  void apply(command::Snapshot& c);
  void apply(command::Stop& c, std::shared_ptr<Completion>& completion);
  void apply(command::AddListener& c);
  void apply(command::RemoveListener& c);
  void apply(command::CloseFlows& c);
  void apply(command::ReportSessions& c);
  void apply(command::SetListenerProxy& c);
  void apply(command::SetListenerPolicy& c);

  void ensureSlot(uint32_t slot);
  void onListenerReadable(uint32_t slot);
  void pauseListener(uint32_t slot);
  void closeListeners();
  // Closes a draining UDP listener's socket (its sessions have ended).
  void endUdpDrain(ListenerSlot& l);
  void onTick();
  bool hasYielded() const;

  const uint32_t index_;
  const WorkerOptions options_;
  EventQueue& events_;

  LoopClock clock_;
  EpollLoop loop_;
  WakeQueue<WorkerCommand> commands_;
  std::vector<ListenerSlot> listeners_;
  TcpProxy tcp_;
  UdpProxy udp_;

  int64_t nextTickMs_ = 0;
  int64_t nextIdleSweepMs_ = 0;
  int64_t nextUdpSweepMs_ = 0;
  bool stopping_ = false;
  int64_t drainDeadlineMs_ = 0;
  std::vector<std::shared_ptr<Completion>> stopCompletions_;
  std::thread thread_;
};

}  // namespace lb4
