#pragma once
// Rare events from the workers to the control plane (listener errors, connect-failure counts).
// Bounded and non-blocking for the workers: past `capacity` an event is dropped and counted,
// so a slow control thread can never stall the data plane. The consumer is told through
// `notify`, at most once per batch.

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "enums.h"
#include "io/socket_address.h"

namespace lb4 {

enum class EventType : uint8_t {
  // Connect outcomes for one backend since the last report: `count` failures (refused or
  // otherwise), `timeouts` of them by the connect timeout, `successes` connects that worked.
  BackendConnects = 0,
  // accept() failed on a listener with an error other than running out of descriptors.
  ListenerError = 1,
  // A flow or UDP session ended (only when the flow log is on, and only one in N): the access log.
  FlowClosed = 2,
};

struct Event {
  explicit Event(EventType t) : type(t) {}
  EventType type;
  uint32_t worker = 0;
  uint32_t listener = 0;
  uint32_t backendKey = 0;
  uint32_t count = 0;
  uint32_t timeouts = 0;
  uint32_t successes = 0;
  uint32_t trailingFailures = 0;  // BackendConnects: failures since the last success
  int error = 0;  // errno for ListenerError
  // FlowClosed:
  Protocol protocol = Protocol::Tcp;
  uint64_t flowId = 0;
  uint64_t datagramsToBackend = 0;  // UDP sessions only
  uint64_t datagramsToClient = 0;
  bool hasBackend = false;
  CloseReason reason = CloseReason::Done;
  SocketAddress client;
  uint64_t bytesToBackend = 0;
  uint64_t bytesToClient = 0;
  int64_t startWallMs = 0;
  int64_t durationMs = 0;
};

class EventQueue {
 public:
  explicit EventQueue(size_t capacity) : capacity_(capacity) {}
  // Control thread, before any worker runs.
  void setNotify(std::function<void()> notify) { notify_ = std::move(notify); }

  // Any worker.
  void push(const Event& e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (items_.size() >= capacity_) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      items_.push_back(e);
    }
    if (!scheduled_.exchange(true, std::memory_order_acq_rel) && notify_) notify_();
  }

  // Control thread.
  std::vector<Event> take() {
    scheduled_.store(false, std::memory_order_release);
    std::vector<Event> out;
    std::lock_guard<std::mutex> lock(mutex_);
    out.swap(items_);
    return out;
  }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  size_t capacity_;
  std::function<void()> notify_;
  std::atomic<bool> scheduled_{false};
  std::atomic<uint64_t> dropped_{0};
  std::mutex mutex_;
  std::vector<Event> items_;
};

}  // namespace lb4
