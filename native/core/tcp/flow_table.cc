#include "tcp/flow_table.h"

namespace lb4 {

Flow& FlowTable::open() {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
    *slots_[slot] = Flow{};
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(std::make_unique<Flow>());
  }
  Flow& f = *slots_[slot];
  f.slot = slot;
  // Ids are unique across workers and stay below 2^53 so they cross into JavaScript as numbers.
  f.id = nextSerial_++ * 256 + workerIndex_;
  f.state = FlowState::Connecting;
  ++live_;
  return f;
}

void FlowTable::retire(Flow& flow) {
  flow.state = FlowState::Closed;
  --live_;
  retired_.push_back(flow.slot);
}

void FlowTable::releaseClosed() {
  for (uint32_t slot : retired_) {
    // Give back the direction buffers now rather than when the slot is reused.
    slots_[slot]->up.buffer.reset();
    slots_[slot]->down.buffer.reset();
    free_.push_back(slot);
  }
  retired_.clear();
}

}  // namespace lb4
