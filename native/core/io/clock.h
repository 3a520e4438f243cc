#pragma once
// Millisecond clocks. The data plane keeps flow timestamps from the coarse monotonic clock, read
// once per loop pass: a few milliseconds of error is nothing next to second-scale timeouts, and
// the coarse clock costs no more than a memory read.

#include <time.h>

#include <cstdint>

namespace lb4 {

inline int64_t monotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The precise monotonic clock, for latency histograms: a connect of 0.2 ms must not read as 0 or
// 4 ms, which the coarse clock's jiffy resolution would give. Read a few times per flow only.
inline int64_t monotonicUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

inline int64_t wallClockMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// A worker's "now": read once per loop pass by the worker, and shared (read-only) with its
// protocol handlers, so every timestamp of one pass agrees.
class LoopClock {
 public:
  int64_t now() const { return now_; }
  void update() { now_ = monotonicMs(); }

 private:
  int64_t now_ = 0;
};

}  // namespace lb4
