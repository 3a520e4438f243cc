// The data plane's half of UDP session replication (udp/session_replication.h): the bounded
// change queue the workers fill and the control thread drains, and the bounded, expiring
// affinity table the control thread fills and the workers read.

#include <atomic>
#include <thread>
#include <vector>

#include "harness.h"
#include "udp/session_replication.h"

using lb4::AffinityUpdate;
using lb4::LocalAddress;
using lb4::SessionKey;
using lb4::SessionReplication;
using lb4::SocketAddress;
using lb4::UdpSession;

namespace {

SocketAddress addr(const char* ip, uint16_t port) {
  SocketAddress a;
  SocketAddress::fromIp(ip, port, a);
  return a;
}

SessionKey key(uint32_t listener, const char* ip, uint16_t port) {
  return SessionKey::make(listener, addr(ip, port), LocalAddress{});
}

AffinityUpdate set(const SessionKey& k, uint64_t backend) { return AffinityUpdate{true, k, backend}; }
AffinityUpdate erase(const SessionKey& k) { return AffinityUpdate{false, k, 0}; }

}  // namespace

TEST(session_replication, reports_only_while_enabled_and_drains_in_order) {
  SessionReplication r(8, 8, 1000, 500);
  UdpSession s;
  s.listener = 3;
  s.backendKey = 7;
  s.client = addr("192.0.2.1", 4000);
  r.report(s, true);
  CHECK_EQ(r.drain().size(), 0u);  // off by default: a node without a peer queues nothing
  r.setEnabled(true);
  r.report(s, true);
  s.client = addr("192.0.2.1", 4001);
  r.report(s, false);
  std::vector<lb4::SessionChange> changes = r.drain();
  REQUIRE(changes.size() == 2u);
  CHECK(changes[0].opened);
  CHECK_EQ(changes[0].listener, 3u);
  CHECK_EQ(changes[0].backendKey, 7u);
  CHECK_EQ(changes[0].client.port(), 4000);
  CHECK(!changes[1].opened);
  CHECK_EQ(changes[1].client.port(), 4001);
  CHECK_EQ(r.drain().size(), 0u);
  CHECK_EQ(r.droppedChanges(), 0u);
}

TEST(session_replication, a_full_queue_drops_and_counts) {
  SessionReplication r(3, 8, 1000, 500);
  r.setEnabled(true);
  UdpSession s;
  s.client = addr("192.0.2.1", 4000);
  for (int i = 0; i < 5; ++i) r.report(s, true);
  CHECK_EQ(r.drain().size(), 3u);
  CHECK_EQ(r.droppedChanges(), 2u);
  r.report(s, true);
  CHECK_EQ(r.drain().size(), 1u);  // room again once drained
}

TEST(session_replication, hints_are_set_erased_and_expire) {
  SessionReplication r(8, 8, 1000, 500);
  uint64_t backend = 0;
  CHECK(!r.hint(key(0, "192.0.2.1", 4000), 0, backend));
  CHECK_EQ(r.apply({set(key(0, "192.0.2.1", 4000), 11), set(key(0, "192.0.2.1", 4001), 22)}, 100), 2u);
  CHECK_EQ(r.affinitySize(), 2u);
  REQUIRE(r.hint(key(0, "192.0.2.1", 4000), 100, backend));
  CHECK_EQ(backend, 11u);
  CHECK(r.hint(key(0, "::ffff:192.0.2.1", 4001), 100, backend));  // the same IPv4 client, mapped
  CHECK_EQ(backend, 22u);
  CHECK(!r.hint(key(1, "192.0.2.1", 4000), 100, backend));  // another listener
  // The peer's session ended: the hint goes.
  CHECK_EQ(r.apply({erase(key(0, "192.0.2.1", 4001))}, 200), 0u);
  CHECK(!r.hint(key(0, "192.0.2.1", 4001), 200, backend));
  // Set again later: the newer backend wins, and the entry lives from the new time.
  CHECK_EQ(r.apply({set(key(0, "192.0.2.1", 4000), 33)}, 600), 1u);
  CHECK(r.hint(key(0, "192.0.2.1", 4000), 1599, backend));
  CHECK_EQ(backend, 33u);
  CHECK(!r.hint(key(0, "192.0.2.1", 4000), 1600, backend));  // ttl 1000 ms after it was set
  CHECK_EQ(r.affinitySize(), 1u);
  r.apply({}, 1600);  // the next apply sweeps what expired
  CHECK_EQ(r.affinitySize(), 0u);
}

TEST(session_replication, at_capacity_the_least_recently_set_goes) {
  SessionReplication r(8, 3, 100000, 500);
  r.apply({set(key(0, "192.0.2.1", 1), 1), set(key(0, "192.0.2.1", 2), 2), set(key(0, "192.0.2.1", 3), 3)}, 0);
  r.apply({set(key(0, "192.0.2.1", 1), 1)}, 1);  // refreshed: now the most recent
  r.apply({set(key(0, "192.0.2.1", 4), 4)}, 2);  // evicts port 2, the least recently set
  uint64_t backend = 0;
  CHECK_EQ(r.affinitySize(), 3u);
  CHECK(r.hint(key(0, "192.0.2.1", 1), 2, backend));
  CHECK(!r.hint(key(0, "192.0.2.1", 2), 2, backend));
  CHECK(r.hint(key(0, "192.0.2.1", 3), 2, backend));
  CHECK(r.hint(key(0, "192.0.2.1", 4), 2, backend));
  // A thousand more never grow it past the cap.
  std::vector<AffinityUpdate> many;
  for (uint16_t p = 1000; p < 2000; ++p) many.push_back(set(key(0, "192.0.2.9", p), p));
  r.apply(many, 3);
  CHECK_EQ(r.affinitySize(), 3u);
  CHECK(r.hint(key(0, "192.0.2.9", 1999), 3, backend));
  CHECK_EQ(backend, 1999u);
}

TEST(session_replication, workers_read_while_the_control_thread_writes) {
  // Under ASan/TSan-like pressure: readers on two threads, a writer on this one.
  SessionReplication r(1024, 64, 100000, 500);
  std::vector<std::thread> readers;
  std::atomic<bool> stop{false};
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      uint64_t b = 0;
      while (!stop.load()) r.hint(key(0, "192.0.2.1", 7), 1, b);
    });
  }
  for (uint16_t i = 0; i < 2000; ++i) r.apply({set(key(0, "192.0.2.1", static_cast<uint16_t>(i % 100 + 1)), i)}, 1);
  stop = true;
  for (auto& t : readers) t.join();
  CHECK_EQ(r.affinitySize(), 64u);
}
