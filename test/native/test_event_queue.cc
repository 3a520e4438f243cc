#include <poll.h>

#include <atomic>
#include <thread>
#include <vector>

#include "io/event_queue.h"
#include "harness.h"
#include "test_util.h"

using lb4::Event;
using lb4::EventQueue;
using lb4::EventType;

namespace {
Event connects(uint32_t key, uint32_t count) {
  Event e{EventType::BackendConnects};
  e.backendKey = key;
  e.count = count;
  return e;
}
}  // namespace

TEST(event_queue, keeps_order_and_fields) {
  EventQueue q(16);
  Event e{EventType::ListenerError};
  e.worker = 3;
  e.listener = 2;
  e.error = 24;
  q.push(e);
  q.push(connects(7, 5));
  std::vector<Event> got = q.take();
  REQUIRE(got.size() == 2);
  CHECK(got[0].type == EventType::ListenerError);
  CHECK_EQ(got[0].worker, 3u);
  CHECK_EQ(got[0].listener, 2u);
  CHECK_EQ(got[0].error, 24);
  CHECK(got[1].type == EventType::BackendConnects);
  CHECK_EQ(got[1].backendKey, 7u);
  CHECK_EQ(got[1].count, 5u);
  CHECK(q.take().empty());
  CHECK_EQ(q.dropped(), 0u);
}

TEST(event_queue, drops_and_counts_past_capacity) {
  EventQueue q(3);
  for (uint32_t i = 0; i < 5; ++i) q.push(connects(i, 1));
  CHECK_EQ(q.dropped(), 2u);
  std::vector<Event> got = q.take();
  REQUIRE(got.size() == 3);
  CHECK_EQ(got[0].backendKey, 0u);  // the oldest are kept
  CHECK_EQ(got[2].backendKey, 2u);
  // A take makes room again; the drop count only grows.
  q.push(connects(9, 1));
  CHECK_EQ(q.take().size(), 1u);
  CHECK_EQ(q.dropped(), 2u);
}

TEST(event_queue, notifies_once_per_batch) {
  EventQueue q(100);
  int notified = 0;
  q.setNotify([&] { ++notified; });
  for (int i = 0; i < 10; ++i) q.push(connects(1, 1));
  CHECK_EQ(notified, 1);
  CHECK_EQ(q.take().size(), 10u);
  q.push(connects(1, 1));
  CHECK_EQ(notified, 2);
  q.push(connects(1, 1));
  CHECK_EQ(notified, 2);
  CHECK_EQ(q.take().size(), 2u);
  // An event dropped for lack of room does not notify.
  EventQueue small(1);
  int smallNotified = 0;
  small.setNotify([&] { ++smallNotified; });
  small.push(connects(1, 1));
  small.take();
  CHECK_EQ(smallNotified, 1);
  EventQueue zero(0);
  int zeroNotified = 0;
  zero.setNotify([&] { ++zeroNotified; });
  zero.push(connects(1, 1));
  CHECK_EQ(zeroNotified, 0);
  CHECK_EQ(zero.dropped(), 1u);
}

TEST(event_queue, works_without_a_notify) {
  EventQueue q(4);
  q.push(connects(1, 1));
  CHECK_EQ(q.take().size(), 1u);
}

TEST(event_queue, producers_on_other_threads) {
  // Workers push; the control thread learns of it through notify (here: an eventfd, as the
  // binding uses a thread-safe function) and takes batches. Nothing is lost that is not counted.
  constexpr int kThreads = 4, kEach = 3000;
  EventQueue q(1000);
  lb4test::Signal wake;
  std::atomic<int> notifies{0};
  q.setNotify([&] {
    notifies++;
    wake.notify();
  });
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t)
    producers.emplace_back([&q, t] {
      for (int i = 0; i < kEach; ++i) q.push(connects(static_cast<uint32_t>(t), static_cast<uint32_t>(i)));
    });
  size_t received = 0;
  int takes = 0;
  const int64_t deadline = lb4test::nowMs() + 5000;
  while (received + q.dropped() < static_cast<size_t>(kThreads * kEach) && lb4test::nowMs() < deadline) {
    if (!wake.wait(500)) continue;
    received += q.take().size();
    ++takes;
  }
  for (auto& p : producers) p.join();
  received += q.take().size();
  ++takes;
  CHECK_EQ(received + q.dropped(), static_cast<size_t>(kThreads * kEach));
  // Only take() re-arms the notify, so there is at most one notify per take (plus the first).
  CHECK_LE(notifies.load(), takes + 1);
  lb4test::note("received " + std::to_string(received) + ", dropped " + std::to_string(q.dropped()) + ", " +
                std::to_string(notifies.load()) + " notifies");
}
