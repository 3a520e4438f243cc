#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <vector>

#include "udp/session_table.h"
#include "harness.h"
#include "test_util.h"

using lb4::LocalAddress;
using lb4::SessionKey;
using lb4::SessionState;
using lb4::SessionTable;
using lb4::SocketAddress;
using lb4::UdpSession;

namespace {

SocketAddress addr(const char* ip, uint16_t port) {
  SocketAddress a;
  SocketAddress::fromIp(ip, port, a);
  return a;
}

SessionKey key(uint32_t listener, const char* ip, uint16_t port, const LocalAddress& local = LocalAddress{}) {
  return SessionKey::make(listener, addr(ip, port), local);
}

// Gives the session a backend as UdpProxy does, so it joins its backend's list.
void assign(SessionTable& t, UdpSession& s, uint32_t backendKey, lb4::CounterSet& counters) {
  s.backendKey = backendKey;
  s.backendCounters = &counters;
  t.linkBackend(s);
}

}  // namespace

TEST(session_table, finds_by_listener_client_and_local_address) {
  SessionTable t(2);
  LocalAddress two;
  two.family = AF_INET;
  SocketAddress l2 = addr("127.0.0.2", 0);
  uint8_t ip[16];
  l2.ipBytes(ip);
  std::memcpy(&two.v4, ip, 4);

  UdpSession& a = t.open(key(0, "127.0.0.1", 5000), 10);
  UdpSession& b = t.open(key(0, "127.0.0.1", 5001), 10);  // another client port
  UdpSession& c = t.open(key(1, "127.0.0.1", 5000), 10);  // another listener
  UdpSession& d = t.open(key(0, "127.0.0.1", 5000, two), 10);  // another local address
  CHECK_EQ(t.live(), 4u);
  CHECK(t.find(key(0, "127.0.0.1", 5000)) == &a);
  CHECK(t.find(key(0, "127.0.0.1", 5001)) == &b);
  CHECK(t.find(key(1, "127.0.0.1", 5000)) == &c);
  CHECK(t.find(key(0, "127.0.0.1", 5000, two)) == &d);
  CHECK(t.find(key(0, "127.0.0.1", 5002)) == nullptr);
  // An IPv4 client seen as ::ffff:a.b.c.d on a dual-stack socket is the same client.
  CHECK(t.find(key(0, "::ffff:127.0.0.1", 5000)) == &a);
  CHECK_EQ(t.liveOn(0), 3u);
  CHECK_EQ(t.liveOn(1), 1u);
  // Ids: unique, naming the worker, below 2^53, and apart from the flows' ids.
  std::set<uint64_t> ids{a.id, b.id, c.id, d.id};
  CHECK_EQ(ids.size(), 4u);
  for (uint64_t id : ids) {
    CHECK_EQ(id % 256, 2u);
    CHECK_LT(id, 1ULL << 53);
    CHECK_GT(id, 1ULL << 52);
  }
}

TEST(session_table, retire_unlinks_at_once_and_frees_the_slot_after_the_pass) {
  SessionTable t(0);
  UdpSession& a = t.open(key(0, "127.0.0.1", 5000), 10);
  const uint32_t slot = a.slot;
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
  a.upstream.reset(sv[0]);
  t.retire(a);
  CHECK(a.state == SessionState::Closed);
  CHECK_EQ(t.live(), 0u);
  // The client's next datagram in the same pass finds no session and opens a new one, in
  // another slot: events already returned for the old socket must find the closed session.
  CHECK(t.find(key(0, "127.0.0.1", 5000)) == nullptr);
  UdpSession& b = t.open(key(0, "127.0.0.1", 5000), 11);
  CHECK_NE(b.slot, slot);
  CHECK(t.at(slot)->state == SessionState::Closed);
  CHECK(lb4test::isOpen(sv[0]));  // the descriptor outlives the pass
  t.releaseClosed();
  CHECK_EQ(lb4test::descriptorError(sv[0]), EBADF);  // and closes between passes
  UdpSession& c = t.open(key(0, "127.0.0.1", 5001), 12);
  CHECK_EQ(c.slot, slot);  // now the slot is reused, for a fresh session
  CHECK_EQ(c.datagramsUp, 0u);
  t.retire(b);
  t.retire(c);
  t.retire(c);  // retiring twice changes nothing
  CHECK_EQ(t.live(), 0u);
  t.releaseClosed();
  close(sv[1]);
}

TEST(session_table, least_recently_active_first_per_listener) {
  SessionTable t(0);
  UdpSession& a = t.open(key(0, "127.0.0.1", 1), 10);
  UdpSession& b = t.open(key(0, "127.0.0.1", 2), 20);
  UdpSession& c = t.open(key(0, "127.0.0.1", 3), 30);
  UdpSession& x = t.open(key(1, "127.0.0.1", 1), 5);
  CHECK(t.oldest(0) == &a);
  CHECK(t.oldest(1) == &x);
  CHECK(t.oldest(7) == nullptr);
  t.touch(a, 40);  // a moves to the end
  CHECK(t.oldest(0) == &b);
  CHECK_EQ(a.lastActiveMs, 40);
  t.touch(a, 50);  // already last: stays
  t.retire(b);
  CHECK(t.oldest(0) == &c);
  t.retire(c);
  CHECK(t.oldest(0) == &a);
  t.retire(a);
  CHECK(t.oldest(0) == nullptr);
  CHECK_EQ(t.liveOn(0), 0u);
  CHECK(t.oldest(1) == &x);
  t.releaseClosed();
}

TEST(session_table, the_backend_index_lists_only_that_backends_sessions) {
  SessionTable t(0);
  lb4::CounterSet counters(1);
  std::vector<UdpSession*> of7, of9;
  for (uint16_t p = 1; p <= 6; ++p) {
    UdpSession& s = t.open(key(0, "127.0.0.1", p), p);
    assign(t, s, p % 2 ? 7 : 9, counters);
    (p % 2 ? of7 : of9).push_back(&s);
  }
  auto collect = [&](uint32_t backend) {
    std::set<UdpSession*> out;
    t.forEachOfBackend(backend, [&](UdpSession& s) { out.insert(&s); });
    return out;
  };
  CHECK(collect(7) == std::set<UdpSession*>(of7.begin(), of7.end()));
  CHECK(collect(9) == std::set<UdpSession*>(of9.begin(), of9.end()));
  CHECK(collect(8).empty());
  std::vector<uint32_t> keys = t.backendKeys();
  CHECK_EQ(std::set<uint32_t>(keys.begin(), keys.end()), (std::set<uint32_t>{7, 9}));

  // Retiring while walking the list (as closing a removed backend's sessions does) is safe.
  int closed = 0;
  t.forEachOfBackend(7, [&](UdpSession& s) {
    t.retire(s);
    ++closed;
  });
  CHECK_EQ(closed, 3);
  CHECK(collect(7).empty());
  CHECK_EQ(t.backendKeys(), std::vector<uint32_t>{9});
  // Out of the middle of a list, too.
  t.retire(*of9[1]);
  CHECK(collect(9) == (std::set<UdpSession*>{of9[0], of9[2]}));
  CHECK_EQ(t.live(), 2u);
  t.releaseClosed();
}

TEST(session_table, a_session_owns_its_upstream_socket) {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
  {
    SessionTable t(0);
    UdpSession& a = t.open(key(0, "127.0.0.1", 1), 1);
    a.upstream.reset(sv[0]);
    UdpSession& b = t.open(key(0, "127.0.0.1", 2), 1);
    b.upstream.reset(sv[1]);
    t.retire(a);
    t.releaseClosed();
    CHECK_EQ(lb4test::descriptorError(sv[0]), EBADF);
    CHECK(lb4test::isOpen(sv[1]));
  }
  CHECK_EQ(lb4test::descriptorError(sv[1]), EBADF);  // the table's end closed the live one
}

TEST(session_table, a_warm_slot_keeps_its_socket_for_its_own_clients_next_session_only) {
  lb4::CounterSet counters(1);
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
  SessionTable t(0);
  UdpSession& a = t.open(key(0, "127.0.0.1", 1), 1);
  a.upstream.reset(sv[0]);
  a.backendAddress = addr("127.0.0.1", 53);
  assign(t, a, 7, counters);
  const uint32_t slot = a.slot;
  t.retire(a, true);
  // Warm at once, with the same socket: an event already returned for it in this pass finds the
  // slot Warm, never another socket's session.
  CHECK_EQ(t.live(), 0u);
  UdpSession* w = t.warm(key(0, "127.0.0.1", 1));
  REQUIRE(w != nullptr);
  CHECK(w->state == SessionState::Warm);
  // Another client (another port, another listener, another local address) never gets it.
  CHECK(t.warm(key(0, "127.0.0.1", 2)) == nullptr);
  CHECK(t.warm(key(1, "127.0.0.1", 1)) == nullptr);
  LocalAddress local;
  local.family = AF_INET;
  local.v4.s_addr = htonl(0x7f000002);
  CHECK(t.warm(key(0, "127.0.0.1", 1, local)) == nullptr);
  CHECK(lb4test::isOpen(sv[0]));
  CHECK_EQ(t.warmCount(), 1u);
  size_t active = 0;
  t.forEach([&](UdpSession&) { ++active; });
  CHECK_EQ(active, 0u);  // a warm slot is not a session
  // A new session of another client opens beside it, in another slot.
  CHECK(t.open(key(0, "127.0.0.1", 2), 2).slot != slot);

  UdpSession& b = t.reopen(*w, 3);
  CHECK_EQ(b.slot, slot);
  CHECK(b.state == SessionState::Active);
  CHECK_EQ(b.upstream.get(), sv[0]);
  CHECK_EQ(b.backendKey, 7u);
  CHECK(b.backendCounters == nullptr);  // the caller links the backend again
  CHECK(t.find(key(0, "127.0.0.1", 1)) == &b);
  CHECK_EQ(t.warmCount(), 0u);
  CHECK(t.warm(key(0, "127.0.0.1", 1)) == nullptr);

  // Retired without keepWarm, the socket closes between passes as before.
  t.retire(b);
  t.releaseClosed();
  CHECK(t.warm(key(0, "127.0.0.1", 1)) == nullptr);
  CHECK_EQ(lb4test::descriptorError(sv[0]), EBADF);
  ::close(sv[1]);
}

TEST(session_table, warm_slots_expire_oldest_first_and_close_between_passes) {
  lb4::CounterSet counters(1);
  int sv[2], sw[2], sx[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sw) == 0);
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sx) == 0);
  SessionTable t(0);
  UdpSession& a = t.open(key(0, "127.0.0.1", 1), 10);
  a.upstream.reset(sv[0]);
  assign(t, a, 7, counters);
  UdpSession& b = t.open(key(0, "127.0.0.1", 2), 20);
  b.upstream.reset(sw[0]);
  assign(t, b, 7, counters);
  t.retire(a, true);
  t.retire(b, true);
  CHECK_EQ(t.warmCount(), 2u);
  // Last active at 10 and 20: a cutoff of 15 closes the first only.
  CHECK_EQ(t.expireWarm(15), 1u);
  CHECK(t.warm(key(0, "127.0.0.1", 1)) == nullptr);
  REQUIRE(t.warm(key(0, "127.0.0.1", 2)) != nullptr);
  // Still open, and the slot not free, until the pass ends.
  CHECK(lb4test::isOpen(sv[0]));
  t.releaseClosed();
  CHECK_EQ(lb4test::descriptorError(sv[0]), EBADF);

  UdpSession* w = t.warm(key(0, "127.0.0.1", 2));
  t.closeWarm(*w);
  CHECK(t.warm(key(0, "127.0.0.1", 2)) == nullptr);
  t.releaseClosed();
  CHECK_EQ(lb4test::descriptorError(sw[0]), EBADF);

  // closeAllWarm closes what this pass retired keepWarm too.
  UdpSession& c = t.open(key(0, "127.0.0.1", 3), 30);
  c.upstream.reset(sx[0]);
  assign(t, c, 7, counters);
  t.retire(c, true);
  t.closeAllWarm();
  t.releaseClosed();
  CHECK(t.warm(key(0, "127.0.0.1", 3)) == nullptr);
  CHECK_EQ(t.warmCount(), 0u);
  CHECK_EQ(lb4test::descriptorError(sx[0]), EBADF);
  ::close(sv[1]);
  ::close(sw[1]);
  ::close(sx[1]);
}
