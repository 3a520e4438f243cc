// Maglev consistent hashing: the lookup table (shares by weight, order independence, the small
// disruption when a backend goes) and the picker over a real BackendTable.

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "balance/backend_table.h"
#include "balance/hash.h"
#include "balance/maglev.h"
#include "balance/picker.h"
#include "harness.h"
#include "test_util.h"

using lb4::Algorithm;
using lb4::BackendEntry;
using lb4::BackendState;
using lb4::MaglevMember;

namespace {

std::vector<MaglevMember> members(int n, const char* listener = "web") {
  std::vector<MaglevMember> out;
  for (int i = 0; i < n; ++i)
    out.push_back({lb4::backendIdHash(std::string(listener) + "/10.0.0." + std::to_string(i + 1) + ":80"), 1});
  return out;
}

std::map<uint32_t, int> shares(const std::vector<uint32_t>& table) {
  std::map<uint32_t, int> count;
  for (uint32_t m : table) count[m]++;
  return count;
}

BackendEntry entry(uint32_t key, const std::string& id, uint32_t weight = 1, BackendState state = BackendState::Up) {
  BackendEntry e;
  e.key = key;
  e.id = id;
  e.address = lb4test::address(("10.0.0." + std::to_string(key + 1)).c_str(), 80);
  e.weight = weight;
  e.state = state;
  return e;
}

// The table as the weighted fill defines it, walked pass by pass (the first implementation): the
// builder must give exactly this table, so that two nodes of a pair running different lb4
// versions still agree on every client's backend.
std::vector<uint32_t> passByPass(const std::vector<MaglevMember>& members, uint32_t size = lb4::kMaglevTableSize) {
  std::vector<uint32_t> order;
  uint32_t maxWeight = 0;
  for (uint32_t i = 0; i < members.size(); ++i) {
    if (members[i].weight == 0) continue;
    order.push_back(i);
    maxWeight = std::max(maxWeight, members[i].weight);
  }
  if (order.empty()) return {};
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (members[a].idHash != members[b].idHash) return members[a].idHash < members[b].idHash;
    if (members[a].weight != members[b].weight) return members[a].weight < members[b].weight;
    return a < b;
  });
  const size_t n = order.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0), credit(n, 0);
  for (size_t k = 0; k < n; ++k) {
    offset[k] = lb4::mixHash(members[order[k]].idHash) % size;
    skip[k] = lb4::mixHash(members[order[k]].idHash ^ 0x9e3779b97f4a7c15ULL) % (size - 1) + 1;
  }
  std::vector<uint32_t> table(size, UINT32_MAX);
  uint32_t filled = 0;
  while (filled < size) {
    for (size_t k = 0; k < n && filled < size; ++k) {
      credit[k] += members[order[k]].weight;
      if (credit[k] < maxWeight) continue;
      credit[k] -= maxWeight;
      uint64_t entry;
      do {
        entry = (offset[k] + next[k] * skip[k]) % size;
        next[k]++;
      } while (table[entry] != UINT32_MAX);
      table[entry] = order[k];
      filled++;
    }
  }
  return table;
}

// The fastest of three builds, in microseconds.
int64_t buildMicros(const std::vector<MaglevMember>& m) {
  int64_t best = INT64_MAX;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto table = lb4::buildMaglevTable(m);
    const auto t1 = std::chrono::steady_clock::now();
    CHECK_EQ(table.size(), size_t{lb4::kMaglevTableSize});
    best = std::min<int64_t>(best, std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count());
  }
  return best;
}

}  // namespace

TEST(maglev, the_table_is_the_pass_by_pass_weighted_fill) {
  std::vector<MaglevMember> m = members(40);
  for (size_t i = 0; i < m.size(); ++i) m[i].weight = static_cast<uint32_t>((i * 7919) % 13);  // some 0
  m[5].weight = 1000000;
  m[6].weight = 999999;
  CHECK(lb4::buildMaglevTable(m) == passByPass(m));
  CHECK(lb4::buildMaglevTable(members(10)) == passByPass(members(10)));
  std::vector<MaglevMember> skewed = members(300);
  skewed[0].weight = 1000000;
  CHECK(lb4::buildMaglevTable(skewed) == passByPass(skewed));
  CHECK(lb4::buildMaglevTable(members(5), 7) == passByPass(members(5), 7));
}

TEST(maglev, one_heavy_backend_among_thousands_builds_as_fast_as_even_weights) {
  // Weights 1000000 and 1 (both valid) made the pass-by-pass fill run one pass per entry of the
  // heavy backend over every backend: 2,000 x 65,537 steps, on the control thread, for every
  // change to the listener. The build must cost about what an even table of as many costs.
  std::vector<MaglevMember> even = members(2000);
  std::vector<MaglevMember> skewed = even;
  skewed[0].weight = 1000000;
  const int64_t evenUs = buildMicros(even);
  const int64_t skewedUs = buildMicros(skewed);
  CHECK_LT(skewedUs, 10 * evenUs + 20000);
}

TEST(maglev, a_retry_with_every_backend_tried_does_not_walk_the_whole_table) {
  // One backend that refuses: each retry of each flow found no untried backend only after
  // reading all 65,537 entries, then fell back to the tried one. It must cost about what a
  // first pick costs.
  auto table = lb4::buildBackendTable(Algorithm::Maglev, 1, {entry(0, "web/a"), entry(1, "web/b", 0)});
  REQUIRE(table->maglevOwners == std::vector<uint32_t>{0});  // weight 0 owns nothing
  auto picker = lb4::makePicker(Algorithm::Maglev, 0);
  picker->reset(table.get());
  lb4::TriedBackends tried;
  tried.add(0);
  constexpr int kPicks = 2000;
  auto micros = [&](const lb4::TriedBackends& t) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kPicks; ++i) {
      const BackendEntry* b = picker->pick(lb4::mixHash(i), t);
      CHECK(b != nullptr && b->key == 0);  // the tried one again, rather than no backend
    }
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  };
  const int64_t first = micros({});
  const int64_t retry = micros(tried);
  CHECK_LT(retry, 20 * first + 20000);
}

TEST(maglev, every_entry_filled_and_equal_weights_share_evenly) {
  const auto table = lb4::buildMaglevTable(members(10));
  REQUIRE(table.size() == size_t{lb4::kMaglevTableSize});
  const auto count = shares(table);
  CHECK_EQ(count.size(), size_t{10});
  // 65,537 entries over 10 backends: 6,553 or 6,554 each (the heaviest claims one per pass).
  for (const auto& [member, n] : count) {
    CHECK(member < 10);
    CHECK(n == 6553 || n == 6554);
  }
}

TEST(maglev, weights_set_the_shares) {
  std::vector<MaglevMember> m = members(3);
  m[0].weight = 3;
  m[1].weight = 1;
  m[2].weight = 2;
  const auto count = shares(lb4::buildMaglevTable(m));
  const double total = lb4::kMaglevTableSize;
  CHECK(std::abs(count.at(0) / total - 3.0 / 6) < 0.001);
  CHECK(std::abs(count.at(1) / total - 1.0 / 6) < 0.001);
  CHECK(std::abs(count.at(2) / total - 2.0 / 6) < 0.001);
  // Weight 0 owns nothing.
  m[1].weight = 0;
  const auto without = shares(lb4::buildMaglevTable(m));
  CHECK_EQ(without.count(1), size_t{0});
  CHECK_EQ(without.at(0) + without.at(2), static_cast<int>(lb4::kMaglevTableSize));
  // Nobody with a weight: no table.
  for (auto& x : m) x.weight = 0;
  CHECK(lb4::buildMaglevTable(m).empty());
  CHECK(lb4::buildMaglevTable({}).empty());
}

TEST(maglev, the_table_does_not_depend_on_the_order_backends_are_listed) {
  std::vector<MaglevMember> m = members(7);
  m[2].weight = 4;
  const auto a = lb4::buildMaglevTable(m);
  std::vector<MaglevMember> reversed(m.rbegin(), m.rend());
  const auto b = lb4::buildMaglevTable(reversed);
  REQUIRE(a.size() == b.size());
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (m[a[i]].idHash != reversed[b[i]].idHash) differ++;
  CHECK_EQ(differ, size_t{0});
  // And another listener's names (other ids) give another table.
  const auto other = lb4::buildMaglevTable(members(7, "api"));
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == other[i];
  CHECK(same < a.size() / 2);
}

TEST(maglev, removing_one_of_n_backends_moves_about_one_nth_of_the_keys) {
  constexpr int kBackends = 10;
  std::vector<MaglevMember> m = members(kBackends);
  const auto before = lb4::buildMaglevTable(m);
  m[3].weight = 0;  // backend 3 goes (down, drained or removed)
  const auto after = lb4::buildMaglevTable(m);
  size_t lost = 0, movedOthers = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i] == 3) {
      lost++;
      CHECK(after[i] != 3);
    } else if (before[i] != after[i]) {
      movedOthers++;
    }
  }
  const double moved = static_cast<double>(lost + movedOthers) / before.size();
  lb4test::note("keys moved: " + std::to_string(moved * 100) + " % (ideal 1/N = 10 %); of other backends' keys: " +
                std::to_string(100.0 * movedOthers / before.size()) + " %");
  CHECK(moved < 1.0 / kBackends + 0.02);
  CHECK(static_cast<double>(movedOthers) / before.size() < 0.02);
  // The backend coming back takes its old entries back: the same table as before.
  m[3].weight = 1;
  CHECK(lb4::buildMaglevTable(m) == before);
}

TEST(maglev, picker_keeps_a_client_on_one_backend_and_retries_elsewhere) {
  auto table = lb4::buildBackendTable(
      Algorithm::Maglev, 1, {entry(0, "web/a"), entry(1, "web/b"), entry(2, "web/c"), entry(3, "web/d", 1, BackendState::Down)});
  REQUIRE(table->maglev.size() == size_t{lb4::kMaglevTableSize});
  auto p1 = lb4::makePicker(Algorithm::Maglev, 0);
  auto p2 = lb4::makePicker(Algorithm::Maglev, 1);  // another worker agrees
  p1->reset(table.get());
  p2->reset(table.get());
  std::map<uint32_t, int> spread;
  for (int c = 0; c < 3000; ++c) {
    const uint64_t h = lb4::clientFlowHash(lb4test::address(("10." + std::to_string(c / 250) + "." + std::to_string(c % 250) + ".1").c_str(), 1));
    const BackendEntry* first = p1->pick(h, {});
    REQUIRE(first != nullptr);
    CHECK(first->key != 3);  // down: owns no entry
    CHECK_EQ(p1->pick(h, {})->key, first->key);
    CHECK_EQ(p2->pick(h, {})->key, first->key);
    spread[first->key]++;
    // A retry after a failed connect goes to another backend, the same one every time.
    lb4::TriedBackends tried;
    tried.add(first->key);
    const BackendEntry* second = p1->pick(h, tried);
    REQUIRE(second != nullptr);
    CHECK(second->key != first->key);
    CHECK_EQ(p2->pick(h, tried)->key, second->key);
    // Every backend tried: one of them again, rather than refusing the client (a full lap of
    // the table first, so only a few clients here).
    if (c < 20) {
      tried.add(0);
      tried.add(1);
      tried.add(2);
      CHECK(p1->pick(h, tried) != nullptr);
    }
  }
  CHECK_EQ(spread.size(), size_t{3});
  for (const auto& [key, n] : spread) CHECK(n > 800 && n < 1200);

  // Nothing takes new flows: no table, no pick.
  auto none = lb4::buildBackendTable(Algorithm::Maglev, 2, {entry(0, "web/a", 1, BackendState::Draining)});
  CHECK(none->maglev.empty());
  p1->reset(none.get());
  CHECK(p1->pick(1, {}) == nullptr);
}

TEST(maglev, the_hash_key_decides_whether_the_port_counts) {
  using lb4::HashKey;
  const auto a1 = lb4test::address("192.0.2.10", 40000);
  const auto a2 = lb4test::address("192.0.2.10", 40001);
  const auto mapped = lb4test::address("::ffff:192.0.2.10", 40000);
  // By address: the port never counts, and an IPv4-mapped client is the IPv4 one.
  CHECK_EQ(lb4::clientFlowHash(a1), lb4::clientFlowHash(a2));
  CHECK_EQ(lb4::clientFlowHash(a1, HashKey::Address), lb4::clientFlowHash(a2, HashKey::Address));
  CHECK_EQ(lb4::clientFlowHash(a1, HashKey::Address), lb4::clientFlowHash(mapped, HashKey::Address));
  // By address and port: two ports of one address hash apart; the same pair hashes alike,
  // mapped or not.
  CHECK(lb4::clientFlowHash(a1, HashKey::AddressPort) != lb4::clientFlowHash(a2, HashKey::AddressPort));
  CHECK(lb4::clientFlowHash(a1, HashKey::AddressPort) != lb4::clientFlowHash(a1, HashKey::Address));
  CHECK_EQ(lb4::clientFlowHash(a1, HashKey::AddressPort), lb4::clientFlowHash(mapped, HashKey::AddressPort));
  // The bytes hashed are the address then the port, big-endian: the same value on every node.
  const uint8_t bytes[] = {192, 0, 2, 10, 40000 >> 8, 40000 & 0xff};
  CHECK_EQ(lb4::clientFlowHash(a1, HashKey::AddressPort), lb4::fnv1a64(bytes, sizeof(bytes)));
}
