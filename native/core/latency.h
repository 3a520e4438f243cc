#pragma once
// Latency histograms the data plane keeps per backend, declared once: how long a TCP connect to
// the backend took, and how long its TCP flows and UDP sessions lasted. The binding exports the
// names, protocols, help and bucket bounds; the control plane (lib/api/metrics.ts) turns them into
// Prometheus histograms and checks them against its own declaration at load.
//
// Buckets are fixed, so an observation is a short search over at most 16 bounds and two plain
// additions into the worker's own block (see CounterBlock in counters.h): no lock, no allocation.
// A histogram's slots are one count per bucket (the last one above every bound, Prometheus'
// +Inf), then the sum of the observations in microseconds. The count is the sum of the buckets.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>

namespace lb4 {

// X(name, protocol, help, bounds...): bounds are in microseconds, ascending.
#define LB4_HISTOGRAMS(X)                                                                               \
  X(connect_duration, "tcp", "Time from connect() to the backend connection being established",        \
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000) \
  X(flow_duration, "tcp", "Time from accepting a TCP flow to its close, for flows that reached the backend", \
    1000, 5000, 10000, 50000, 100000, 500000, 1000000, 5000000, 10000000, 30000000, 60000000, 300000000,  \
    600000000, 1800000000, 3600000000)                                                                  \
  X(session_duration, "udp", "Time from a UDP session's first datagram to its close",                    \
    1000, 5000, 10000, 50000, 100000, 500000, 1000000, 5000000, 10000000, 30000000, 60000000, 300000000,  \
    600000000, 1800000000, 3600000000)

enum class Histogram : uint32_t {
#define LB4_HISTOGRAM_ENUM(name, protocol, help, ...) name,
  LB4_HISTOGRAMS(LB4_HISTOGRAM_ENUM)
#undef LB4_HISTOGRAM_ENUM
};

namespace histogram_bounds {
#define LB4_HISTOGRAM_BOUNDS(name, protocol, help, ...) inline constexpr int64_t name[] = {__VA_ARGS__};
LB4_HISTOGRAMS(LB4_HISTOGRAM_BOUNDS)
#undef LB4_HISTOGRAM_BOUNDS
}  // namespace histogram_bounds

struct HistogramInfo {
  const char* name;
  const char* protocol;
  const char* help;
  const int64_t* boundsUs;
  size_t boundCount;
};

inline constexpr HistogramInfo kHistogramInfo[] = {
#define LB4_HISTOGRAM_INFO(name, protocol, help, ...) \
  {#name, protocol, help, histogram_bounds::name, std::size(histogram_bounds::name)},
    LB4_HISTOGRAMS(LB4_HISTOGRAM_INFO)
#undef LB4_HISTOGRAM_INFO
};

constexpr size_t kHistogramCount = std::size(kHistogramInfo);

// Where histogram `h` starts among a block's histogram slots: each takes one slot per bound, one
// for +Inf and one for the sum.
constexpr size_t histogramOffset(size_t h) {
  size_t offset = 0;
  for (size_t i = 0; i < h; ++i) offset += kHistogramInfo[i].boundCount + 2;
  return offset;
}

constexpr size_t kHistogramSlots = histogramOffset(kHistogramCount);

// The bucket an observation falls in: the first whose bound is >= it (Prometheus' `le`).
inline size_t histogramBucket(Histogram h, int64_t us) {
  const HistogramInfo& info = kHistogramInfo[static_cast<size_t>(h)];
  return static_cast<size_t>(std::lower_bound(info.boundsUs, info.boundsUs + info.boundCount, us) - info.boundsUs);
}

}  // namespace lb4
