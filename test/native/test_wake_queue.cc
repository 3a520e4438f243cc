#include <poll.h>
#include <unistd.h>

#include <numeric>
#include <thread>
#include <vector>

#include "harness.h"
#include "test_util.h"
#include "io/wake_queue.h"

using lb4::WakeQueue;
using lb4test::waitFor;

TEST(wake_queue, eventfd_is_readable_after_post) {
  WakeQueue<int> q;
  REQUIRE(q.init().ok());
  REQUIRE(q.fd() >= 0);
  CHECK(!waitFor(q.fd(), POLLIN, 0));
  q.post(1);
  CHECK(waitFor(q.fd(), POLLIN, 0));
  std::vector<int> got = q.take();
  CHECK_EQ(got.size(), 1u);
  CHECK(!waitFor(q.fd(), POLLIN, 0));  // take() consumed the wake-up
  CHECK(q.take().empty());             // and a spurious take is harmless
}

TEST(wake_queue, a_burst_costs_one_wake_up) {
  WakeQueue<int> q;
  REQUIRE(q.init().ok());
  for (int i = 0; i < 5; ++i) q.post(i);
  // The eventfd counter was written once: the atomic flag stopped the other four writes.
  uint64_t counter = 0;
  REQUIRE(read(q.fd(), &counter, sizeof(counter)) == sizeof(counter));
  CHECK_EQ(counter, 1u);
  std::vector<int> got = q.take();
  CHECK_EQ(got.size(), 5u);
  for (size_t i = 0; i < got.size(); ++i) CHECK_EQ(got[i], static_cast<int>(i));  // in order
  // After a take, the next post wakes again.
  q.post(7);
  CHECK(waitFor(q.fd(), POLLIN, 0));
  CHECK_EQ(q.take().size(), 1u);
}

TEST(wake_queue, posts_from_other_threads_all_arrive) {
  WakeQueue<int> q;
  REQUIRE(q.init().ok());
  constexpr int kThreads = 4, kEach = 2000;
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t)
    producers.emplace_back([&q, t] {
      for (int i = 0; i < kEach; ++i) q.post(t * kEach + i);
    });
  // The consumer sleeps in poll(2) on the eventfd, as the worker does in epoll.
  std::vector<int> got;
  const int64_t deadline = lb4test::nowMs() + 5000;
  while (got.size() < static_cast<size_t>(kThreads * kEach) && lb4test::nowMs() < deadline) {
    if (!waitFor(q.fd(), POLLIN, 1000)) continue;
    for (int v : q.take()) got.push_back(v);
  }
  for (auto& p : producers) p.join();
  for (int v : q.take()) got.push_back(v);
  CHECK_EQ(got.size(), static_cast<size_t>(kThreads * kEach));
  std::vector<bool> seen(kThreads * kEach, false);
  for (int v : got) {
    if (v >= 0 && v < kThreads * kEach) seen[v] = true;
  }
  CHECK(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
  // Each producer's items arrive in its own order.
  std::vector<int> last(kThreads, -1);
  bool ordered = true;
  for (int v : got) {
    int t = v / kEach;
    if (v <= last[t]) ordered = false;
    last[t] = v;
  }
  CHECK(ordered);
}

TEST(wake_queue, no_post_is_lost_between_take_and_sleep) {
  // Ping-pong many times: after every take the consumer sleeps until the next post's wake-up.
  // A lost wake-up would stall here until the time limit.
  WakeQueue<int> q;
  REQUIRE(q.init().ok());
  lb4test::Signal ack;
  constexpr int kRounds = 2000;
  std::thread producer([&] {
    for (int i = 0; i < kRounds; ++i) {
      q.post(i);
      if (!ack.wait(2000)) return;
    }
  });
  int received = 0;
  while (received < kRounds) {
    if (!waitFor(q.fd(), POLLIN, 2000)) break;
    std::vector<int> got = q.take();
    received += static_cast<int>(got.size());
    if (!got.empty()) ack.notify();
  }
  producer.join();
  CHECK_EQ(received, kRounds);
}
