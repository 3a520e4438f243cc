#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "balance/backend_table.h"
#include "balance/hash.h"
#include "balance/picker.h"
#include "harness.h"
#include "listener_slot.h"
#include "test_util.h"

using lb4::Algorithm;
using lb4::Picker;
using lb4::BackendEntry;
using lb4::BackendState;
using lb4::BackendTable;
using lb4::Counter;
using lb4::CounterSet;
using lb4::TriedBackends;

namespace {

constexpr size_t kWorkers = 2;

// A table with one CounterSet per backend; keys are 0..n-1 and addresses 10.0.0.<key+1>:80 (the
// picker never connects anywhere).
struct Fixture {
  std::vector<std::unique_ptr<CounterSet>> counters;
  BackendTable table;

  explicit Fixture(Algorithm algorithm) { table.algorithm = algorithm; }
  void add(uint32_t weight, BackendState state = BackendState::Up) {
    uint32_t key = static_cast<uint32_t>(table.backends.size());
    counters.push_back(std::make_unique<CounterSet>(kWorkers));
    BackendEntry e;
    e.key = key;
    e.address = lb4test::address(("10.0.0." + std::to_string(key + 1)).c_str(), 80);
    e.weight = weight;
    e.state = state;
    e.counters = counters.back().get();
    table.backends.push_back(e);
  }
  // Active flows as least-connections sees them: spread over both workers' blocks.
  void setActive(uint32_t key, int64_t active) {
    int64_t now = counters[key]->sum(Counter::flows_active);
    counters[key]->worker(0).add(Counter::flows_active, (active - now) / 2);
    counters[key]->worker(1).add(Counter::flows_active, (active - now) - (active - now) / 2);
  }
};

const TriedBackends kNone{};

// A picker for the table's algorithm, as a worker makes one, on worker 0.
std::unique_ptr<Picker> pickerFor(const BackendTable& table, uint32_t worker = 0) {
  std::unique_ptr<Picker> p = lb4::makePicker(table.algorithm, worker);
  p->reset(&table);
  return p;
}

std::string picks(Picker& b, int n, const TriedBackends& tried = kNone, uint64_t flowHash = 0) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    const BackendEntry* e = b.pick(flowHash, tried);
    out += e ? static_cast<char>('a' + e->key) : '-';
  }
  return out;
}

}  // namespace

TEST(picker, smooth_weighted_round_robin_sequence) {
  // The nginx algorithm, worked by hand for weights 5,1,1 (total 7; ties go to the first):
  //   current before pick      chosen   current after
  //   ( 5,  1,  1)             a        (-2,  1,  1)
  //   ( 3,  2,  2)             a        (-4,  2,  2)
  //   ( 1,  3,  3)             b        ( 1, -4,  3)
  //   ( 6, -3,  4)             a        (-1, -3,  4)
  //   ( 4, -2,  5)             c        ( 4, -2, -2)
  //   ( 9, -1, -1)             a        ( 2, -1, -1)
  //   ( 7,  0,  0)             a        ( 0,  0,  0)   -- back to the start
  Fixture f(Algorithm::RoundRobin);
  f.add(5);
  f.add(1);
  f.add(1);
  auto b = pickerFor(f.table);
  CHECK_EQ(picks(*b, 7), "aabacaa");
  CHECK_EQ(picks(*b, 7), "aabacaa");
  // reset() starts over, whatever happened before.
  picks(*b, 3);
  b->reset(&f.table);
  CHECK_EQ(picks(*b, 7), "aabacaa");
}

TEST(picker, round_robin_distribution_matches_weights) {
  Fixture f(Algorithm::RoundRobin);
  f.add(5);
  f.add(1);
  f.add(1);
  auto b = pickerFor(f.table);
  std::map<char, int> count;
  for (char c : picks(*b, 700)) count[c]++;
  CHECK_EQ(count['a'], 500);
  CHECK_EQ(count['b'], 100);
  CHECK_EQ(count['c'], 100);
  CHECK_EQ(count['-'], 0);

  // Equal weights: strict rotation.
  Fixture g(Algorithm::RoundRobin);
  for (int i = 0; i < 4; ++i) g.add(3);
  auto c = pickerFor(g.table);
  CHECK_EQ(picks(*c, 8), "abcdabcd");
}

TEST(picker, never_picks_a_backend_that_takes_no_new_flows) {
  for (Algorithm algorithm : {Algorithm::RoundRobin, Algorithm::LeastConn}) {
    Fixture f(algorithm);
    f.add(1, BackendState::Down);         // a
    f.add(1, BackendState::Draining);     // b
    f.add(5, BackendState::Maintenance);  // c
    f.add(0, BackendState::Up);           // d: weight 0
    f.add(1, BackendState::Up);           // e: the only one
    f.add(9, BackendState::Down);         // f
    CHECK(!f.table.backends[3].takesNewFlows());
    CHECK(f.table.backends[4].takesNewFlows());
    auto b = pickerFor(f.table);
    CHECK_EQ(picks(*b, 20), std::string(20, 'e'));
    // Even as a last resort after every candidate was tried.
    TriedBackends tried;
    tried.add(4);
    CHECK_EQ(picks(*b, 5, tried), "eeeee");
  }
}

TEST(picker, returns_null_when_nothing_can_take_a_flow) {
  for (Algorithm algorithm : {Algorithm::RoundRobin, Algorithm::LeastConn}) {
    std::unique_ptr<Picker> unset = lb4::makePicker(algorithm, 0);
    CHECK(unset->pick(0, kNone) == nullptr);  // never given a table
    std::unique_ptr<Picker> b = lb4::makePicker(algorithm, 0);
    b->reset(nullptr);
    CHECK(b->pick(0, kNone) == nullptr);

    Fixture empty(algorithm);
    b->reset(&empty.table);
    CHECK(b->pick(0, kNone) == nullptr);

    Fixture none(algorithm);
    none.add(1, BackendState::Down);
    none.add(0, BackendState::Up);
    none.add(1, BackendState::Draining);
    b->reset(&none.table);
    CHECK(b->pick(0, kNone) == nullptr);
    TriedBackends tried;
    tried.add(0);
    CHECK(b->pick(0, tried) == nullptr);
  }
}

TEST(picker, avoids_tried_backends_while_others_remain) {
  for (Algorithm algorithm : {Algorithm::RoundRobin, Algorithm::LeastConn}) {
    Fixture f(algorithm);
    f.add(1);
    f.add(1);
    f.add(1);
    auto b = pickerFor(f.table);
    TriedBackends tried;
    tried.add(0);
    std::string s = picks(*b, 12, tried);
    CHECK_EQ(s.find('a'), std::string::npos);
    CHECK_NE(s.find('b'), std::string::npos);
    CHECK_NE(s.find('c'), std::string::npos);

    tried.add(2);
    CHECK_EQ(picks(*b, 4, tried), "bbbb");

    // Everything tried: a tried backend beats refusing the client.
    tried.add(1);
    s = picks(*b, 6, tried);
    CHECK_EQ(s.find('-'), std::string::npos);

    // Tried, but the only other one is down: reuse the tried one.
    Fixture g(algorithm);
    g.add(1);
    g.add(1, BackendState::Down);
    auto c = pickerFor(g.table);
    TriedBackends t0;
    t0.add(0);
    CHECK_EQ(picks(*c, 3, t0), "aaa");
  }
}

TEST(picker, tried_backends_keeps_the_first_eight) {
  TriedBackends t;
  for (uint32_t k = 100; k < 110; ++k) t.add(k);
  CHECK_EQ(t.count, TriedBackends::kMax);
  CHECK(t.contains(100));
  CHECK(t.contains(107));
  CHECK(!t.contains(108));
  CHECK(!t.contains(0));
}

TEST(picker, round_robin_with_tried_keeps_weights_among_the_rest) {
  // With a tried, b and c (weights 2 and 1) share the flows 2:1.
  Fixture f(Algorithm::RoundRobin);
  f.add(5);
  f.add(2);
  f.add(1);
  auto b = pickerFor(f.table);
  TriedBackends tried;
  tried.add(0);
  std::map<char, int> count;
  for (char c : picks(*b, 300, tried)) count[c]++;
  CHECK_EQ(count['a'], 0);
  CHECK_EQ(count['b'], 200);
  CHECK_EQ(count['c'], 100);
}

TEST(picker, least_connections_picks_the_lightest) {
  Fixture f(Algorithm::LeastConn);
  f.add(1);
  f.add(1);
  f.add(1);
  f.setActive(0, 5);
  f.setActive(1, 2);
  f.setActive(2, 3);
  CHECK_EQ(f.counters[1]->worker(0).get(Counter::flows_active), 1);  // really spread over workers
  CHECK_EQ(f.counters[1]->worker(1).get(Counter::flows_active), 1);
  auto b = pickerFor(f.table);
  CHECK_EQ(picks(*b, 5), "bbbbb");  // the picker reads counters; it does not count its picks

  // Tried: the next lightest.
  TriedBackends tried;
  tried.add(1);
  CHECK_EQ(picks(*b, 3, tried), "ccc");

  f.setActive(1, 10);
  CHECK_EQ(picks(*b, 2), "cc");
  f.setActive(0, 0);
  CHECK_EQ(picks(*b, 2), "aa");
}

TEST(picker, least_connections_weighs_load_by_weight) {
  Fixture f(Algorithm::LeastConn);
  f.add(4);  // a: 6 active / 4 = 1.5
  f.add(1);  // b: 2 active / 1 = 2
  f.add(2);  // c: 4 active / 2 = 2
  f.setActive(0, 6);
  f.setActive(1, 2);
  f.setActive(2, 4);
  auto b = pickerFor(f.table);
  CHECK_EQ(picks(*b, 3), "aaa");
  f.setActive(0, 9);  // a: 2.25 now; b and c tie at 2
  std::string s = picks(*b, 6);
  CHECK_EQ(s.find('a'), std::string::npos);
  CHECK_NE(s.find('b'), std::string::npos);
  CHECK_NE(s.find('c'), std::string::npos);
}

TEST(picker, least_connections_ties_take_turns) {
  Fixture f(Algorithm::LeastConn);
  f.add(1);
  f.add(1);
  f.add(1);
  auto b = pickerFor(f.table);
  // All idle: each pick starts its scan one further along, so the three take turns.
  std::string s = picks(*b, 6);
  std::map<char, int> count;
  for (char c : s) count[c]++;
  CHECK_EQ(count['a'], 2);
  CHECK_EQ(count['b'], 2);
  CHECK_EQ(count['c'], 2);
  CHECK_NE(s[0], s[1]);
  CHECK_NE(s[1], s[2]);
  lb4test::note("least-connections ties: " + s);
}

TEST(picker, least_connections_many_backends_stays_eligible) {
  // Past 16 backends the power of two random choices replaces the full scan.
  Fixture f(Algorithm::LeastConn);
  std::set<uint32_t> eligible;
  for (uint32_t i = 0; i < 40; ++i) {
    if (i % 3 == 0) {
      f.add(1, BackendState::Down);
    } else if (i % 7 == 0) {
      f.add(0);
    } else if (i % 11 == 0) {
      f.add(2, BackendState::Draining);
    } else {
      f.add(1 + i % 3);
      eligible.insert(i);
    }
  }
  auto b = pickerFor(f.table);
  std::map<uint32_t, int> seen;
  for (int i = 0; i < 5000; ++i) {
    const BackendEntry* e = b->pick(0, kNone);
    REQUIRE(e != nullptr);
    seen[e->key]++;
    if (!eligible.count(e->key)) {
      lb4test::fail(__FILE__, __LINE__, "picked ineligible backend " + std::to_string(e->key));
      break;
    }
  }
  // All idle: the random choices reach every eligible backend.
  CHECK_EQ(seen.size(), eligible.size());
}

TEST(picker, least_connections_many_backends_prefers_lighter) {
  Fixture f(Algorithm::LeastConn);
  for (uint32_t i = 0; i < 32; ++i) f.add(1);
  for (uint32_t i = 0; i < 16; ++i) f.setActive(i, 100);  // keys 0..15 heavy, 16..31 idle
  auto b = pickerFor(f.table);
  int heavy = 0;
  const int n = 10000;
  for (int i = 0; i < n; ++i) {
    const BackendEntry* e = b->pick(0, kNone);
    REQUIRE(e != nullptr);
    if (e->key < 16) heavy++;
  }
  // Uniform choice would give half; with two choices a heavy one wins only when both candidates
  // are heavy: about (16/32) * (15/31), 24%.
  lb4test::note("heavy picks: " + std::to_string(heavy) + " of " + std::to_string(n));
  CHECK_LT(heavy, n * 32 / 100);
  CHECK_GT(heavy, n * 15 / 100);  // and it is random, not a scan

  // Rare eligible backends: the fallback scan finds the lightest one exactly.
  Fixture g(Algorithm::LeastConn);
  for (uint32_t i = 0; i < 64; ++i) g.add(1, BackendState::Down);
  g.table.backends[10].state = BackendState::Up;
  g.table.backends[50].state = BackendState::Up;
  g.setActive(10, 7);
  g.setActive(50, 3);
  auto c = pickerFor(g.table);
  std::map<uint32_t, int> seen;
  for (int i = 0; i < 500; ++i) {
    const BackendEntry* e = c->pick(0, kNone);
    REQUIRE(e != nullptr);
    seen[e->key]++;
  }
  for (const auto& [key, times] : seen) CHECK(key == 10 || key == 50);
  CHECK_GT(seen[50], seen[10]);
  lb4test::note("two eligible of 64: key 50 (lighter) " + std::to_string(seen[50]) + ", key 10 " +
                std::to_string(seen[10]));
}

TEST(picker, factory_makes_each_algorithm_and_ignores_the_flow_hash) {
  // Round robin and least connections take the flow hash (the interface a hashing algorithm
  // needs) and must not depend on it: the same picks, whatever clients the flows come from.
  for (Algorithm algorithm : {Algorithm::RoundRobin, Algorithm::LeastConn}) {
    Fixture f(algorithm);
    f.add(3);
    f.add(1);
    f.add(2);
    std::unique_ptr<Picker> plain = lb4::makePicker(algorithm, 1);
    std::unique_ptr<Picker> hashed = lb4::makePicker(algorithm, 1);
    REQUIRE(plain && hashed);
    CHECK(plain->algorithm() == algorithm);
    CHECK(plain->table() == nullptr);
    plain->reset(&f.table);
    hashed->reset(&f.table);
    CHECK(plain->table() == &f.table);
    std::string a, b;
    for (uint64_t i = 0; i < 60; ++i) {
      const BackendEntry* x = plain->pick(0, kNone);
      const BackendEntry* y = hashed->pick(lb4::clientFlowHash(lb4test::address(("10.1.0." + std::to_string(i)).c_str(), 1000)) ^ (i * 0x9e3779b97f4a7c15ULL), kNone);
      REQUIRE(x && y);
      a += static_cast<char>('a' + x->key);
      b += static_cast<char>('a' + y->key);
    }
    CHECK_EQ(a, b);
  }
  // The worker index still sets where round robin starts: worker 1 is one pick ahead.
  Fixture g(Algorithm::RoundRobin);
  g.add(1);
  g.add(1);
  g.add(1);
  CHECK_EQ(picks(*pickerFor(g.table, 0), 3), "abc");
  CHECK_EQ(picks(*pickerFor(g.table, 1), 3), "bca");
}

TEST(backend_identity, id_hash_is_fnv1a_of_the_id_and_stable) {
  // Known 64-bit FNV-1a values: the same on every node, every run, every build.
  CHECK_EQ(lb4::fnv1a64(""), 0xcbf29ce484222325ULL);
  CHECK_EQ(lb4::fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  CHECK_EQ(lb4::fnv1a64("foobar"), 0x85944171f73967e8ULL);
  CHECK_EQ(lb4::backendIdHash("web/10.0.0.1:80"), 0xa11979cf0711b7d0ULL);
  CHECK_EQ(lb4::backendIdHash(std::string("web/") + "10.0.0.1:80"), lb4::backendIdHash("web/10.0.0.1:80"));
  CHECK_NE(lb4::backendIdHash("web/10.0.0.1:80"), lb4::backendIdHash("api/10.0.0.1:80"));

  // buildBackendTable hashes every id, whatever the key: the key is process-local, the id not.
  auto entry = [](uint32_t key, const char* id) {
    BackendEntry e;
    e.key = key;
    e.id = id;
    return e;
  };
  auto first = lb4::buildBackendTable(Algorithm::RoundRobin, 1, {entry(0, "web/a"), entry(1, "web/b")});
  auto second = lb4::buildBackendTable(Algorithm::LeastConn, 2, {entry(7, "web/b"), entry(3, "web/a")});
  CHECK(first->algorithm == Algorithm::RoundRobin);
  CHECK(second->algorithm == Algorithm::LeastConn);
  CHECK_EQ(second->generation, 2u);
  CHECK_EQ(first->backends[0].idHash, lb4::fnv1a64("web/a"));
  CHECK_EQ(first->backends[0].idHash, second->backends[1].idHash);
  CHECK_EQ(first->backends[1].idHash, second->backends[0].idHash);
  CHECK_NE(first->backends[0].idHash, first->backends[1].idHash);
}

TEST(backend_identity, flow_hash_is_the_client_address_only) {
  using lb4test::address;
  const uint64_t h = lb4::clientFlowHash(address("192.0.2.7", 40000));
  // Every connection of one client hashes alike, whatever its source port.
  CHECK_EQ(lb4::clientFlowHash(address("192.0.2.7", 40001)), h);
  CHECK_EQ(lb4::clientFlowHash(address("192.0.2.7", 0)), h);
  // An IPv4 client on a dual-stack listener is the same client.
  CHECK_EQ(lb4::clientFlowHash(address("::ffff:192.0.2.7", 5)), h);
  CHECK_NE(lb4::clientFlowHash(address("192.0.2.8", 40000)), h);
  const uint8_t v4[] = {192, 0, 2, 7};
  CHECK_EQ(h, lb4::fnv1a64(v4, sizeof(v4)));
  const uint64_t v6 = lb4::clientFlowHash(address("2001:db8::7", 1));
  CHECK_EQ(lb4::clientFlowHash(address("2001:db8::7", 2)), v6);
  CHECK_NE(v6, h);
}

TEST(listener_slot, adopting_a_table_changes_that_slot_only) {
  // What the worker does with an ApplyBackends command: one slot's table and picker change, the
  // other slots keep theirs, selection state included.
  Fixture first(Algorithm::RoundRobin);
  first.add(1);
  first.add(1);
  Fixture second(Algorithm::RoundRobin);
  second.add(1);
  std::vector<lb4::ListenerSlot> slots(2);
  auto firstTable = std::make_shared<const BackendTable>(first.table);
  auto secondTable = std::make_shared<const BackendTable>(second.table);
  slots[0].adoptTable(firstTable, 0);
  slots[1].adoptTable(secondTable, 0);
  REQUIRE(slots[0].picker && slots[1].picker);
  CHECK_EQ(picks(*slots[0].picker, 1), "a");
  const Picker* untouched = slots[0].picker.get();

  // Same algorithm: slot 1's picker is reset onto the new table, not remade.
  Fixture replacement(Algorithm::RoundRobin);
  replacement.add(1);
  replacement.add(1);
  replacement.add(1);
  auto replacementTable = std::make_shared<const BackendTable>(replacement.table);
  const Picker* before = slots[1].picker.get();
  slots[1].adoptTable(replacementTable, 0);
  CHECK(slots[1].picker.get() == before);
  CHECK(slots[1].picker->table() == replacementTable.get());
  CHECK(slots[1].table == replacementTable);
  CHECK(slots[0].table == firstTable);
  CHECK(slots[0].picker.get() == untouched);
  CHECK_EQ(picks(*slots[0].picker, 1), "b");  // its rotation went on

  // Another algorithm: slot 1 gets a new picker of that algorithm; slot 0 still untouched.
  Fixture leastConn(Algorithm::LeastConn);
  leastConn.add(1);
  slots[1].adoptTable(std::make_shared<const BackendTable>(leastConn.table), 0);
  CHECK(slots[1].picker->algorithm() == Algorithm::LeastConn);
  CHECK_EQ(picks(*slots[1].picker, 2), "aa");
  CHECK(slots[0].picker.get() == untouched);
  CHECK_EQ(picks(*slots[0].picker, 1), "a");

  // No table: nothing to pick, and the slot keeps a picker to reset later.
  slots[1].adoptTable(nullptr, 0);
  CHECK(slots[1].picker->pick(0, kNone) == nullptr);
}
