#pragma once
// Every counter the data plane keeps, declared once. Listeners and backends share the one list
// (a few entries only ever move on one of the two); the binding exports the names and kinds so
// the control plane derives its stats objects and metric names from this table and nowhere else.
// (Which of listener and backend each counter applies to, and to which protocol, is said once in
// lib/api/metrics.ts.)
//
// Counters are per worker and single-writer: the worker that owns a block is the only thread that
// writes it, with relaxed load+store (no locked instruction on the hot path); any thread may read
// it. Sums over workers are taken by the reader.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "latency.h"

namespace lb4 {

// X(name, kind, help): kind is "gauge" (goes up and down) or "counter" (only goes up).
#define LB4_COUNTERS(X)                                                                           \
  X(flows_active, "gauge", "Flows open now (for a backend: including connects in progress)")       \
  X(flows_total, "counter", "Flows accepted (listener) or established (backend)")                  \
  X(bytes_to_backend, "counter", "Bytes forwarded from clients to backends")                       \
  X(bytes_to_client, "counter", "Bytes forwarded from backends to clients")                        \
  X(spliced_bytes, "counter", "Bytes moved by splice(2) without entering user space")               \
  X(copied_bytes, "counter", "Bytes moved through a user-space buffer (no pipe could be had)")      \
  X(connect_failures, "counter", "Backend connects refused or failed")                              \
  X(connect_timeouts, "counter", "Backend connects that did not finish within the connect timeout") \
  X(retries, "counter", "Connect attempts made on another backend after a failure")                 \
  X(no_backend, "counter", "Flows closed because no backend could take them")                       \
  X(resets, "counter", "Flows ended by a reset from either side")                                   \
  X(idle_timeouts, "counter", "Flows closed by the idle timeout")                                   \
  X(drain_closed, "counter", "Flows still open when a drain timeout ran out, then closed")          \
  X(accept_shed, "counter", "Connections accepted and closed at once because descriptors ran out")  \
  X(accept_errors, "counter", "accept() failures other than running out of descriptors")          \
  X(connect_no_descriptors, "counter",                                                             \
    "Backend connects not attempted because lb4 had no descriptor or socket memory left")          \
  X(datagrams_to_backend, "counter", "UDP datagrams forwarded from clients to backends")           \
  X(datagrams_to_client, "counter", "UDP datagrams forwarded from backends to clients")            \
  X(sessions_active, "gauge", "UDP sessions open now")                                             \
  X(sessions_total, "counter", "UDP sessions opened")                                              \
  X(sessions_evicted, "counter", "UDP sessions closed to make room under the session cap")          \
  X(sessions_expired, "counter", "UDP sessions closed by the UDP idle timeout")                     \
  X(dropped_no_backend, "counter", "UDP datagrams dropped because no backend could take them")     \
  X(dropped_truncated, "counter", "UDP datagrams dropped because they were larger than the buffer") \
  X(dropped_send_error, "counter", "UDP datagrams dropped because the kernel would not send them")  \
  X(dropped_cap, "counter", "UDP datagrams dropped because the session cap left no room")          \
  X(dropped_late, "counter", "UDP datagrams from a backend dropped because their session had every response it expected") \
  X(sessions_replicated, "counter",                                                                \
    "UDP sessions opened on the backend the HA peer's session for the same client used")            \
  X(proxy_headers_accepted, "counter", "PROXY protocol headers accepted from clients")              \
  X(proxy_header_untrusted, "counter", "Clients refused for connecting from outside the networks trusted to send PROXY protocol headers") \
  X(proxy_header_malformed, "counter", "Clients refused for a malformed or missing PROXY protocol header") \
  X(proxy_header_oversized, "counter", "Clients refused for a PROXY protocol header longer than the limit") \
  X(proxy_header_timeouts, "counter", "Clients refused for not sending a whole PROXY protocol header within the header timeout") \
  /* Traffic policy (native/core/policy/): every refusal by its reason. */                          \
  X(denied, "counter", "Clients refused by the listener's access lists (TCP connections, UDP sessions)") \
  X(listener_limit, "counter", "Clients refused because the listener had its maxConnections flows")  \
  X(backend_limit, "counter", "Clients refused because every backend had its maxConnections flows and the listener has no queue") \
  X(queue_full, "counter", "Clients refused because every backend was full and the listener's queue was too")  \
  X(queue_timeout, "counter", "Clients closed after waiting the queue timeout for a backend with room")  \
  X(source_limit, "counter", "Clients refused because their source had its maxConnectionsPerSource flows on this worker") \
  X(source_rate, "counter", "Clients refused because their source opened connections faster than connectionRatePerSource") \
  X(flows_queued, "gauge", "Flows waiting in the listener's queue for a backend with room") \
  X(dropped_overflow, "counter", "UDP datagrams the kernel dropped because the listener socket's receive queue was full") \
  /* SNI routing (native/core/sni/): appended after the policy counters. */                         \
  X(sni_routed, "counter", "TLS clients routed to a backend pool by the server name in their ClientHello")          \
  X(sni_defaulted, "counter", "TLS clients sent to the default pool: their ClientHello named no server, or none that a route matches") \
  X(sni_unrouted, "counter", "TLS clients closed because no route matched their server name and there is no default pool") \
  X(sni_hello_malformed, "counter", "Clients closed for a malformed ClientHello (or none: not TLS)")                \
  X(sni_hello_oversized, "counter", "Clients closed for a ClientHello larger than the size bound (16 KiB)")        \
  X(sni_hello_timeouts, "counter", "Clients closed for not sending a whole ClientHello within the SNI timeout")

enum class Counter : uint32_t {
#define LB4_COUNTER_ENUM(name, kind, help) name,
  LB4_COUNTERS(LB4_COUNTER_ENUM)
#undef LB4_COUNTER_ENUM
};

#define LB4_COUNTER_ONE(name, kind, help) +1
constexpr size_t kCounterCount = 0 LB4_COUNTERS(LB4_COUNTER_ONE);
#undef LB4_COUNTER_ONE

struct CounterInfo {
  const char* name;
  const char* kind;
  const char* help;
};
extern const CounterInfo kCounterInfo[kCounterCount];

// One worker's counters for one listener or backend, on cache lines of its own so two workers
// never write the same line. The latency histograms (latency.h) live here too, under the same
// single-writer rule; only backends' blocks ever move them (about 400 bytes each).
struct alignas(64) CounterBlock {
  std::atomic<int64_t> values[kCounterCount];
  std::atomic<int64_t> latency[kHistogramSlots];

  CounterBlock() {
    for (auto& v : values) v.store(0, std::memory_order_relaxed);
    for (auto& v : latency) v.store(0, std::memory_order_relaxed);
  }
  // Owner thread only.
  void add(Counter c, int64_t n) { bump(values[static_cast<uint32_t>(c)], n); }
  // Owner thread only: one observation of `us` microseconds (negative ones count as 0).
  void observe(Histogram h, int64_t us) {
    if (us < 0) us = 0;
    const size_t base = histogramOffset(static_cast<size_t>(h));
    bump(latency[base + histogramBucket(h, us)], 1);
    bump(latency[base + kHistogramInfo[static_cast<size_t>(h)].boundCount + 1], us);
  }
  int64_t get(Counter c) const { return values[static_cast<uint32_t>(c)].load(std::memory_order_relaxed); }

 private:
  static void bump(std::atomic<int64_t>& v, int64_t n) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
};

// The counters of one listener or backend: one block per worker.
class CounterSet {
 public:
  explicit CounterSet(size_t workers) : workers_(workers), blocks_(new CounterBlock[workers]) {}
  CounterBlock& worker(size_t index) { return blocks_[index]; }
  int64_t sum(Counter c) const {
    int64_t total = 0;
    for (size_t i = 0; i < workers_; ++i) total += blocks_[i].get(c);
    return total;
  }
  // Writes kCounterCount sums to `out`.
  void sumInto(double* out) const {
    for (size_t c = 0; c < kCounterCount; ++c) out[c] = static_cast<double>(sum(static_cast<Counter>(c)));
  }
  // Writes kHistogramSlots sums to `out`: bucket counts, and each histogram's sum in microseconds.
  void sumLatencyInto(double* out) const {
    for (size_t slot = 0; slot < kHistogramSlots; ++slot) {
      int64_t total = 0;
      for (size_t i = 0; i < workers_; ++i) total += blocks_[i].latency[slot].load(std::memory_order_relaxed);
      out[slot] = static_cast<double>(total);
    }
  }

 private:
  size_t workers_;
  std::unique_ptr<CounterBlock[]> blocks_;
};

}  // namespace lb4
