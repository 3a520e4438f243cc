#pragma once
// A worker's table of flows (connection tracking). Slots are reused; a flow closed during an
// epoll pass keeps its slot until the pass ends, so events already returned for it still find a
// closed flow and are ignored, never a new flow in the same slot (the hazard libuv guards with
// uv__platform_invalidate_fd).

#include <cstdint>
#include <memory>
#include <vector>

#include "tcp/flow.h"

namespace lb4 {

class FlowTable {
 public:
  explicit FlowTable(uint32_t workerIndex) : workerIndex_(workerIndex) {}

  Flow& open();
  // Marks the flow closed; its slot is released at the next releaseClosed().
  void retire(Flow& flow);
  // Between two epoll passes.
  void releaseClosed();

  Flow* at(uint32_t slot) { return slot < slots_.size() ? slots_[slot].get() : nullptr; }
  size_t live() const { return live_; }
  // Calls fn(Flow&) for each flow not closed.
  template <typename Fn>
  void forEach(Fn&& fn) {
    for (auto& f : slots_)
      if (f->state != FlowState::Closed) fn(*f);
  }

 private:
  uint32_t workerIndex_;
  uint64_t nextSerial_ = 1;
  size_t live_ = 0;
  std::vector<std::unique_ptr<Flow>> slots_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> retired_;
};

}  // namespace lb4
