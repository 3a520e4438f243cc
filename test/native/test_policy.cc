// The traffic policy module: network sets (both families, every prefix length kind, mapped
// IPv4), access-list verdicts, and the per-source limits with an explicit clock.

#include "harness.h"
#include "policy/listener_policy.h"
#include "policy/network_set.h"
#include "policy/source_tracker.h"

using lb4::NetworkSet;
using lb4::SocketAddress;
using lb4::SourceTracker;
using lb4::SourceVerdict;

namespace {

SocketAddress ip(const char* text) {
  SocketAddress a;
  SocketAddress::fromIp(text, 1, a);
  return a;
}

}  // namespace

TEST(policy, network_set_matches_prefixes) {
  NetworkSet s;
  CHECK(s.empty());
  CHECK(s.add("10.0.0.0/8"));
  CHECK(s.add("192.168.1.7"));
  CHECK(s.add("2001:db8::/32"));
  CHECK(s.add("fe80::1:2/127"));
  CHECK(!s.add("10.0.0.0/33"));
  CHECK(!s.add("::/129"));
  CHECK(!s.add("nonsense/8"));
  CHECK(!s.add("10.0.0.0/"));
  CHECK(s.contains(ip("10.255.1.2")));
  CHECK(!s.contains(ip("11.0.0.1")));
  CHECK(s.contains(ip("192.168.1.7")));
  CHECK(!s.contains(ip("192.168.1.8")));
  CHECK(s.contains(ip("2001:db8:ffff::9")));
  CHECK(!s.contains(ip("2001:db9::1")));
  CHECK(s.contains(ip("fe80::1:3")));
  CHECK(!s.contains(ip("fe80::1:4")));
  // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
  CHECK(s.contains(ip("::ffff:10.1.2.3")));
}

TEST(policy, network_set_whole_space) {
  NetworkSet s;
  CHECK(s.add("0.0.0.0/0"));
  CHECK(s.contains(ip("1.2.3.4")));
  CHECK(!s.contains(ip("::1")));
  CHECK(s.add("::/0"));
  CHECK(s.contains(ip("::1")));
}

TEST(policy, deny_wins_and_allow_defaults_to_deny) {
  lb4::ListenerPolicy p;
  CHECK(p.admits(ip("127.0.0.2")));
  CHECK(p.deny.add("127.0.0.2"));
  CHECK(!p.admits(ip("127.0.0.2")));
  CHECK(p.admits(ip("127.0.0.3")));
  CHECK(p.allow.add("127.0.0.0/8"));
  CHECK(!p.admits(ip("127.0.0.2")));  // in both: deny wins
  CHECK(p.admits(ip("127.0.0.3")));
  CHECK(!p.admits(ip("::1")));  // outside a non-empty allow list
}

TEST(policy, source_concurrency_per_address_and_ipv6_slash64) {
  SourceTracker t;
  CHECK(t.admit(ip("127.0.0.2"), 2, 0, 0) == SourceVerdict::Admitted);
  CHECK(t.admit(ip("127.0.0.2"), 2, 0, 0) == SourceVerdict::Admitted);
  CHECK(t.admit(ip("127.0.0.2"), 2, 0, 0) == SourceVerdict::TooMany);
  CHECK(t.admit(ip("127.0.0.3"), 2, 0, 0) == SourceVerdict::Admitted);
  t.release(ip("127.0.0.2"));
  CHECK(t.admit(ip("127.0.0.2"), 2, 0, 0) == SourceVerdict::Admitted);
  // One /64 is one source.
  CHECK(t.admit(ip("2001:db8::1"), 1, 0, 0) == SourceVerdict::Admitted);
  CHECK(t.admit(ip("2001:db8::ffff:2"), 1, 0, 0) == SourceVerdict::TooMany);
  CHECK(t.admit(ip("2001:db8:0:1::1"), 1, 0, 0) == SourceVerdict::Admitted);
}

TEST(policy, source_rate_token_bucket) {
  SourceTracker t;
  // A burst of the rate passes, then one token per 1/rate seconds.
  for (int i = 0; i < 4; ++i) CHECK(t.admit(ip("127.0.0.2"), 0, 4, 1000) == SourceVerdict::Admitted);
  CHECK(t.admit(ip("127.0.0.2"), 0, 4, 1000) == SourceVerdict::TooFast);
  CHECK(t.admit(ip("127.0.0.2"), 0, 4, 1200) == SourceVerdict::TooFast);
  CHECK(t.admit(ip("127.0.0.2"), 0, 4, 1250) == SourceVerdict::Admitted);
  CHECK(t.admit(ip("127.0.0.2"), 0, 4, 1250) == SourceVerdict::TooFast);
  // The sweep forgets a source only once it has no flow and a full bucket.
  for (int i = 0; i < 5; ++i) t.release(ip("127.0.0.2"));
  t.sweep(1300, 4);
  CHECK_EQ(t.size(), 1u);
  t.sweep(3000, 4);
  CHECK_EQ(t.size(), 0u);
}
