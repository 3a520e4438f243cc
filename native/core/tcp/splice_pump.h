#pragma once
// Moves a TCP flow's bytes, one direction at a time: small messages through a user-space
// scratch buffer with recv/send, bulk bytes socket -> pipe -> socket with splice(2), so they
// never enter user space. Owns the worker's pipe pool and scratch buffer. Single-threaded:
// owned by one worker's TCP proxy.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "counters.h"
#include "tcp/flow.h"
#include "tcp/pipe_pool.h"

namespace lb4 {

// The small-message buffer; a read that fills it switches a direction to splice.
constexpr uint32_t kScratchSize = 16 * 1024;

enum class PumpResult {
  Idle,              // neither side can go on until epoll says so
  Yielded,           // the direction used its budget with more to read: continue after this pass
  SourceReset,       // reading failed: the source reset (or erred)
  DestinationReset,  // writing failed: the destination did
};

class SplicePump {
 public:
  SplicePump(size_t maxIdlePipes, int pipeSize, size_t maxLargePipes = PipePool::kMaxLargePipes);
  SplicePump(const SplicePump&) = delete;
  SplicePump& operator=(const SplicePump&) = delete;

  // Moves bytes of `d` from `src` to `dst` until neither side can go on, counting delivered
  // bytes into the listener's and the backend's blocks and stamping the flow active at `now`.
  // Passes the source's FIN on (shutdown) once every byte before it is delivered.
  PumpResult pump(Flow& f, Direction& d, FlowSocket& src, FlowSocket& dst, bool toBackend, CounterBlock& listener,
                  CounterBlock& backend, int64_t now);
  // The flow is closing: its pipe goes back to the pool if empty, and is killed otherwise.
  void release(Direction& d);

  const PipePool& pipes() const { return pipes_; }

 private:
  PipePool pipes_;
  // Small messages pass through here on their way from one socket to the other.
  std::unique_ptr<char[]> scratch_;
};

}  // namespace lb4
