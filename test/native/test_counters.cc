#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "counters.h"
#include "harness.h"

using lb4::Counter;
using lb4::CounterSet;

TEST(counters, one_table_of_names_and_kinds) {
  CHECK_EQ(lb4::kCounterCount, static_cast<size_t>(Counter::sni_hello_timeouts) + 1);
  CHECK_EQ(static_cast<size_t>(Counter::sni_routed), static_cast<size_t>(Counter::dropped_overflow) + 1);
  CHECK_EQ(static_cast<size_t>(Counter::dropped_overflow), static_cast<size_t>(Counter::flows_queued) + 1);
  CHECK_EQ(static_cast<size_t>(Counter::denied), static_cast<size_t>(Counter::proxy_header_timeouts) + 1);
  CHECK_EQ(static_cast<size_t>(Counter::sessions_replicated), static_cast<size_t>(Counter::dropped_late) + 1);
  CHECK_EQ(static_cast<size_t>(Counter::proxy_headers_accepted), static_cast<size_t>(Counter::sessions_replicated) + 1);
  CHECK_EQ(static_cast<size_t>(Counter::dropped_late), static_cast<size_t>(Counter::dropped_cap) + 1);
  // Counters are only ever appended: their positions are readStats' layout.
  CHECK_EQ(static_cast<size_t>(Counter::connect_no_descriptors), static_cast<size_t>(Counter::accept_errors) + 1);
  CHECK_EQ(static_cast<size_t>(Counter::datagrams_to_backend), static_cast<size_t>(Counter::connect_no_descriptors) + 1);
  CHECK_EQ(std::string(lb4::kCounterInfo[static_cast<size_t>(Counter::connect_no_descriptors)].name),
           "connect_no_descriptors");
  std::set<std::string> names;
  for (size_t i = 0; i < lb4::kCounterCount; ++i) {
    const lb4::CounterInfo& info = lb4::kCounterInfo[i];
    names.insert(info.name);
    bool kindOk = std::strcmp(info.kind, "gauge") == 0 || std::strcmp(info.kind, "counter") == 0;
    if (!kindOk) lb4test::fail(__FILE__, __LINE__, std::string(info.name) + " has kind " + info.kind);
    CHECK(std::strlen(info.help) > 0);
  }
  CHECK_EQ(names.size(), lb4::kCounterCount);
  CHECK_EQ(std::string(lb4::kCounterInfo[static_cast<size_t>(Counter::flows_active)].name), "flows_active");
  CHECK_EQ(std::string(lb4::kCounterInfo[static_cast<size_t>(Counter::spliced_bytes)].name), "spliced_bytes");
}

TEST(counters, sums_over_workers) {
  CounterSet set(3);
  set.worker(0).add(Counter::flows_active, 2);
  set.worker(1).add(Counter::flows_active, 5);
  set.worker(2).add(Counter::flows_active, -1);
  set.worker(2).add(Counter::bytes_to_client, 1000);
  CHECK_EQ(set.sum(Counter::flows_active), 6);
  CHECK_EQ(set.sum(Counter::bytes_to_client), 1000);
  CHECK_EQ(set.sum(Counter::resets), 0);
  CHECK_EQ(set.worker(1).get(Counter::flows_active), 5);

  double out[lb4::kCounterCount];
  set.sumInto(out);
  CHECK_EQ(out[static_cast<size_t>(Counter::flows_active)], 6.0);
  CHECK_EQ(out[static_cast<size_t>(Counter::bytes_to_client)], 1000.0);
  CHECK_EQ(out[static_cast<size_t>(Counter::accept_errors)], 0.0);
}

TEST(counters, blocks_sit_on_their_own_cache_lines) {
  CHECK_EQ(alignof(lb4::CounterBlock), 64u);
  CHECK_EQ(sizeof(lb4::CounterBlock) % 64, 0u);
  CounterSet set(2);
  auto a = reinterpret_cast<uintptr_t>(&set.worker(0));
  auto b = reinterpret_cast<uintptr_t>(&set.worker(1));
  CHECK_EQ(a % 64, 0u);
  CHECK_GE(b - a, 64u);
}

TEST(counters, latency_buckets_are_le_and_sum_over_workers) {
  using lb4::Histogram;
  const size_t base = lb4::histogramOffset(static_cast<size_t>(Histogram::flow_duration));
  const size_t bounds = lb4::kHistogramInfo[static_cast<size_t>(Histogram::flow_duration)].boundCount;
  CounterSet set(2);
  set.worker(0).observe(Histogram::flow_duration, 1000);     // exactly the first bound: its bucket
  set.worker(1).observe(Histogram::flow_duration, 1001);     // just above: the next
  set.worker(1).observe(Histogram::flow_duration, int64_t{5} * 3600 * 1000000);  // past the last: +Inf
  set.worker(0).observe(Histogram::flow_duration, -5);       // a clock step back counts as 0
  std::vector<double> out(lb4::kHistogramSlots);
  set.sumLatencyInto(out.data());
  CHECK_EQ(out[base + 0], 2.0);
  CHECK_EQ(out[base + 1], 1.0);
  CHECK_EQ(out[base + bounds], 1.0);
  CHECK_EQ(out[base + bounds + 1], 1000.0 + 1001.0 + 5.0 * 3600 * 1000000);
  // Other histograms stay untouched.
  const size_t connect = lb4::histogramOffset(static_cast<size_t>(Histogram::connect_duration));
  for (size_t i = 0; i < lb4::kHistogramInfo[0].boundCount + 2; ++i) CHECK_EQ(out[connect + i], 0.0);
  // Bounds ascend, so lower_bound finds the `le` bucket.
  for (const lb4::HistogramInfo& h : lb4::kHistogramInfo)
    for (size_t i = 1; i < h.boundCount; ++i) CHECK(h.boundsUs[i - 1] < h.boundsUs[i]);
}
