// The engine end to end, with real sockets on loopback: test clients -> engine -> test backends.

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "io/clock.h"
#include "engine.h"
#include "harness.h"
#include "test_util.h"

using lb4::Algorithm;
using lb4::BackendSpec;
using lb4::BackendState;
using lb4::Counter;
using lb4::Engine;
using lb4::EngineConfig;
using lb4::FlowInfo;
using lb4::SocketAddress;
using lb4::SocketError;
using lb4::UniqueFd;
using lb4test::Signal;
using lb4test::TestServer;
using lb4test::eventually;

namespace {

BackendSpec backend(uint32_t key, const SocketAddress& address, uint32_t weight = 1,
                    BackendState state = BackendState::Up) {
  return BackendSpec{key, "front/" + std::to_string(key), address, weight, state};
}

EngineConfig config(uint32_t workers, Algorithm algorithm = Algorithm::RoundRobin) {
  EngineConfig c;
  c.workers = workers;
  lb4::ListenerConfig l;
  l.name = "front";
  l.address = lb4test::address("127.0.0.1", 0);
  l.algorithm = algorithm;
  c.listeners.push_back(l);
  c.worker.connectTimeoutMs = 2000;
  return c;
}

// One engine under test. Declared after the Signals a test's callbacks use, so that on an early
// return the engine (whose destructor stops and joins the workers) goes first.
struct Proxy {
  std::unique_ptr<Engine> engine;
  SocketAddress front;
  SocketError error;
  uint32_t failedListener = 0;

  bool start(EngineConfig cfg, std::vector<BackendSpec> backends) {
    return startWith(std::move(cfg), {std::move(backends)});
  }
  // One table per listener.
  bool startWith(EngineConfig cfg, std::vector<std::vector<BackendSpec>> tables) {
    engine = std::make_unique<Engine>(std::move(cfg));
    if (!engine->start(std::move(tables), error, failedListener)) {
      lb4test::note(std::string("engine start failed: ") + error.syscall + ": " + std::strerror(error.error));
      return false;
    }
    front = engine->boundAddresses().at(0);
    return true;
  }

  // applyBackends on listener 0, and wait until every worker runs the table.
  bool apply(std::vector<BackendSpec> backends) {
    // Shared: a late answer after a timed-out wait must still find its Signal.
    auto applied = std::make_shared<Signal>();
    engine->applyBackends(0, std::move(backends), std::nullopt, [applied] { applied->notify(); });
    return applied->wait(2000);
  }

  // stop(drainMs), wait for its callback, join. False if the callback did not come in time.
  bool stop(int64_t drainMs, int waitMs = 3000) {
    Signal done;
    engine->stop(drainMs, [&done] { done.notify(); });
    bool ok = done.wait(waitMs);
    if (!ok) engine->stop(0, nullptr);  // force an end so join() returns
    engine->join();
    return ok;
  }

  std::vector<double> stats() const {
    std::vector<double> out(engine->readStats(nullptr, 0));
    engine->readStats(out.data(), out.size());
    return out;
  }
  double listenerStat(Counter c, uint32_t listener = 0) const {
    return stats()[listener * lb4::kCounterCount + static_cast<size_t>(c)];
  }
  double backendStat(uint32_t key, Counter c) const {
    std::vector<double> s = stats();
    size_t at = (engine->listenerCount() + key) * lb4::kCounterCount + static_cast<size_t>(c);
    return at < s.size() ? s[at] : -1;
  }
  // Counters are written by the workers a moment after the bytes move: wait for a value.
  bool listenerReaches(Counter c, double value, uint32_t listener = 0) const {
    return eventually([&] { return listenerStat(c, listener) == value; });
  }
  bool backendReaches(uint32_t key, Counter c, double value) const {
    return eventually([&] { return backendStat(key, c) == value; });
  }

  std::vector<FlowInfo> snapshot(lb4::FlowFilter filter = {}) {
    Signal done;
    std::mutex m;
    std::vector<FlowInfo> flows;
    engine->snapshot(filter, [&](std::vector<FlowInfo> got) {
      {
        std::lock_guard<std::mutex> lock(m);
        flows = std::move(got);
      }
      done.notify();
    });
    if (!done.wait(2000)) lb4test::fail(__FILE__, __LINE__, "snapshot did not answer");
    std::lock_guard<std::mutex> lock(m);
    return flows;
  }
};

// A loopback address nothing listens on. Call it once the engine is listening: picked before,
// the port just released could be the one the kernel then gives the engine's listener, and the
// "dead" backend would be the engine itself.
SocketAddress deadAddress() { return lb4test::address("127.0.0.1", lb4test::unusedPort()); }

bool echoOnce(int fd, const std::string& message) {
  if (!lb4test::sendAll(fd, message.data(), message.size(), 2000)) return false;
  std::string back(message.size(), '\0');
  return lb4test::recvExactly(fd, &back[0], back.size(), 2000) && back == message;
}

void setLingerZero(int fd) {
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

// Accepts one connection on a plain listening socket (a backend played by the test itself).
UniqueFd acceptOne(int listener, int timeoutMs) {
  if (!lb4test::waitFor(listener, POLLIN, timeoutMs)) return UniqueFd();
  return UniqueFd(accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

int pipeDescriptors() {
  int n = 0;
  for (int fd = 0; fd < 65536; ++fd) {
    if (!lb4test::isOpen(fd)) continue;
    char path[64], link[64] = {0};
    std::snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (readlink(path, link, sizeof(link) - 1) > 0 && std::strncmp(link, "pipe:", 5) == 0) ++n;
  }
  return n;
}

int openDescriptors() {
  int n = 0;
  for (int fd = 0; fd < 65536; ++fd) {
    if (lb4test::isOpen(fd)) ++n;
  }
  return n;
}

// Runs transfers in parallel through `to` and checks each both ways: what the client got
// against the stream the server was asked for, and what the server got against what the
// client sent. Returns the byte totals each way.
void runTransfers(const SocketAddress& to, TestServer& server, const std::vector<lb4test::Transfer>& transfers,
                  uint64_t& toBackend, uint64_t& toClient) {
  std::vector<lb4test::TransferResult> results(transfers.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < transfers.size(); ++i)
    clients.emplace_back([&, i] { results[i] = lb4test::runTransfer(to, transfers[i], 8000); });
  for (auto& t : clients) t.join();

  toBackend = toClient = 0;
  for (size_t i = 0; i < transfers.size(); ++i) {
    const auto& t = transfers[i];
    const auto& r = results[i];
    toBackend += t.requestBytes();
    toClient += t.responseBytes;
    if (!r.ok) {
      lb4test::fail(__FILE__, __LINE__, "transfer " + std::to_string(i) + ": " + r.error);
      continue;
    }
    CHECK_EQ(r.sent, t.requestBytes());
    CHECK_EQ(r.received, t.responseBytes);
    CHECK_EQ(r.receivedHash, lb4test::patternHash(t.responseSeed, t.responseBytes));
  }
  // The server's side: every request arrived whole, each exactly once.
  CHECK(eventually([&] { return server.records().size() >= transfers.size(); }));
  std::multiset<std::pair<uint64_t, uint64_t>> arrived;
  for (const auto& rec : server.records()) {
    CHECK_EQ(rec.error, 0);
    arrived.insert({rec.received, rec.receivedHash});
  }
  for (size_t i = 0; i < transfers.size(); ++i) {
    auto it = arrived.find({transfers[i].requestBytes(), transfers[i].requestHash()});
    if (it == arrived.end()) {
      lb4test::fail(__FILE__, __LINE__, "request " + std::to_string(i) + " did not reach the backend intact");
    } else {
      arrived.erase(it);
    }
  }
}

}  // namespace

TEST(engine, starts_and_stops) {
  Proxy p;
  REQUIRE(p.start(config(2), {}));
  CHECK_EQ(p.engine->workerCount(), 2u);
  CHECK_EQ(p.engine->listenerCount(), 1u);
  CHECK_NE(p.front.port(), 0);
  CHECK(!p.engine->stopping());
  CHECK(p.stop(0));
  CHECK(p.engine->stopping());
  // stop() after the engine stopped: done runs at once.
  bool again = false;
  p.engine->stop(0, [&] { again = true; });
  CHECK(again);
}

TEST(engine, moves_bytes_both_ways) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Scripted));
  Proxy p;
  REQUIRE(p.start(config(2), {backend(0, server.address())}));

  const uint64_t MiB = 1 << 20;
  std::vector<lb4test::Transfer> transfers = {
      {0, 11, 0, 12},                 // header only, nothing back
      {1, 21, 1, 22},                 // a byte each way
      {100, 31, 70000, 32},           // a little up, more than a pipe down
      {MiB, 41, 3 * MiB, 42},         // past the per-wake-up budget: yields
      {3 * MiB, 51, MiB, 52},         // the backend finishes first; the client goes on sending
      {5 * MiB / 2, 61, 5 * MiB / 2, 62},
      {65535, 71, 65537, 72},         // either side of the pipe size
      {10, 81, 0, 82},
  };
  uint64_t toBackend = 0, toClient = 0;
  runTransfers(p.front, server, transfers, toBackend, toClient);

  CHECK(p.listenerReaches(Counter::bytes_to_backend, static_cast<double>(toBackend)));
  CHECK(p.listenerReaches(Counter::bytes_to_client, static_cast<double>(toClient)));
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK_EQ(p.listenerStat(Counter::flows_total), transfers.size());
  CHECK_EQ(p.backendStat(0, Counter::bytes_to_backend), static_cast<double>(toBackend));
  CHECK_EQ(p.backendStat(0, Counter::bytes_to_client), static_cast<double>(toClient));
  CHECK_EQ(p.backendStat(0, Counter::flows_total), transfers.size());
  CHECK_EQ(p.backendStat(0, Counter::flows_active), 0);
  const double spliced = p.listenerStat(Counter::spliced_bytes);
  const double copied = p.listenerStat(Counter::copied_bytes);
  CHECK_GT(spliced, 0);
  CHECK_EQ(spliced + copied, static_cast<double>(toBackend + toClient));
  CHECK_EQ(p.listenerStat(Counter::resets), 0);
  CHECK_EQ(p.listenerStat(Counter::connect_failures), 0);
  CHECK_EQ(p.listenerStat(Counter::no_backend), 0);
  CHECK(p.stop(1000));
}

TEST(engine, moves_bytes_with_large_pipes) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Scripted));
  EngineConfig cfg = config(2);
  cfg.worker.pipeSize = 256 * 1024;
  Proxy p;
  REQUIRE(p.start(cfg, {backend(0, server.address())}));
  const uint64_t MiB = 1 << 20;
  std::vector<lb4test::Transfer> transfers = {{2 * MiB, 1, 2 * MiB, 2}, {300000, 3, 5 * MiB / 2, 4}};
  uint64_t toBackend = 0, toClient = 0;
  runTransfers(p.front, server, transfers, toBackend, toClient);
  // Every byte is delivered; bulk bytes go by splice. Only the reads that switch a direction
  // between the copy path and splice (a scratch buffer each) are copied.
  REQUIRE(p.listenerReaches(Counter::bytes_to_backend, static_cast<double>(toBackend)));
  REQUIRE(p.listenerReaches(Counter::bytes_to_client, static_cast<double>(toClient)));
  const double spliced = p.listenerStat(Counter::spliced_bytes);
  const double copied = p.listenerStat(Counter::copied_bytes);
  CHECK_EQ(spliced + copied, static_cast<double>(toBackend + toClient));
  CHECK_GE(spliced, 0.95 * static_cast<double>(toBackend + toClient));
  CHECK(p.stop(1000));
}

TEST(engine, echoes_small_exchanges_and_half_closes) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(2), {backend(0, server.address())}));
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  for (int i = 0; i < 50; ++i) {
    std::string m = "message " + std::to_string(i) + std::string(static_cast<size_t>(i * 37), 'x');
    if (!echoOnce(c.get(), m)) {
      lb4test::fail(__FILE__, __LINE__, "echo " + std::to_string(i) + " failed");
      break;
    }
  }
  // Half-close: the client's FIN reaches the backend after its bytes; the backend answers and
  // closes; the client reads the answer and then EOF.
  REQUIRE(lb4test::sendAll(c.get(), "last", 4, 2000));
  shutdown(c.get(), SHUT_WR);
  char last[4];
  CHECK(lb4test::recvExactly(c.get(), last, 4, 2000));
  CHECK_EQ(std::string(last, 4), "last");
  CHECK_EQ(lb4test::waitForEnd(c.get(), 2000), 0);
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK_EQ(p.listenerStat(Counter::resets), 0);
  CHECK(eventually([&] { return server.records().size() == 1; }));
  CHECK_EQ(server.records().at(0).error, 0);
  CHECK(p.stop(0));
}

TEST(engine, refused_backend_counts_failures_and_closes_the_client) {
  Signal eventsReady;
  EngineConfig cfg = config(2);
  cfg.worker.retries = 2;
  Proxy p;
  {
    // Notify must be set before the workers run: start the engine by hand.
    p.engine = std::make_unique<Engine>(cfg);
    p.engine->events().setNotify([&eventsReady] { eventsReady.notify(); });
    std::vector<std::vector<BackendSpec>> tables{{}};
    REQUIRE(p.engine->start(tables, p.error, p.failedListener));
    p.front = p.engine->boundAddresses().at(0);
  }
  const SocketAddress dead = deadAddress();
  REQUIRE(dead.port() != 0);
  REQUIRE(p.apply({backend(3, dead)}));
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK_EQ(lb4test::waitForEnd(c.get(), 3000), 0);  // a close (FIN), not a hang

  // One try and two retries, all on the only backend there is.
  CHECK(p.backendReaches(3, Counter::connect_failures, 3));
  CHECK(p.listenerReaches(Counter::connect_failures, 3));
  CHECK(p.listenerReaches(Counter::retries, 2));
  CHECK(p.listenerReaches(Counter::no_backend, 1));
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK_EQ(p.backendStat(3, Counter::flows_active), 0);
  CHECK_EQ(p.backendStat(3, Counter::flows_total), 0);
  CHECK_EQ(p.backendStat(3, Counter::connect_timeouts), 0);

  // The failures go up to the control plane as events, within a tick or so.
  uint32_t failures = 0;
  const int64_t deadline = lb4test::nowMs() + 2000;
  while (failures < 3 && lb4test::nowMs() < deadline) {
    eventsReady.wait(200);
    for (const lb4::Event& e : p.engine->events().take()) {
      CHECK(e.type == lb4::EventType::BackendConnects);
      CHECK_EQ(e.backendKey, 3u);
      CHECK_EQ(e.successes, 0u);
      failures += e.count;
    }
  }
  CHECK_EQ(failures, 3u);
  CHECK_EQ(p.engine->events().dropped(), 0u);
  CHECK(p.stop(0));
}

TEST(engine, retries_on_another_backend) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  EngineConfig cfg = config(1);
  cfg.worker.retries = 1;
  Proxy p;
  REQUIRE(p.start(cfg, {}));
  const SocketAddress dead = deadAddress();
  REQUIRE(p.apply({backend(0, dead), backend(1, server.address())}));
  for (int i = 0; i < 6; ++i) {
    UniqueFd c = lb4test::connectTo(p.front, 2000);
    REQUIRE(c);
    CHECK(echoOnce(c.get(), "hello " + std::to_string(i)));
  }
  // Round robin sends every other new flow to the dead backend first; each of those retried.
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK_EQ(p.backendStat(0, Counter::connect_failures), 3);
  CHECK_EQ(p.listenerStat(Counter::retries), 3);
  CHECK_EQ(p.listenerStat(Counter::no_backend), 0);
  CHECK_EQ(p.backendStat(1, Counter::flows_total), 6);
  CHECK_EQ(server.accepted(), 6);
  CHECK(p.stop(0));
}

TEST(engine, connect_timeout) {
  // A backend whose accept queue is full: with a backlog of 0 one connection fills it, and the
  // kernel drops further SYNs, so a connect neither succeeds nor fails until it times out.
  SocketAddress stuck;
  UniqueFd full = lb4test::listenOn("127.0.0.1", 0, stuck, false, false, 0);
  REQUIRE(full);
  UniqueFd filler = lb4test::connectTo(stuck, 1000);
  REQUIRE(filler);

  EngineConfig cfg = config(1);
  cfg.worker.connectTimeoutMs = 100;
  cfg.worker.retries = 0;
  Proxy p;
  REQUIRE(p.start(cfg, {backend(0, stuck)}));
  const int64_t t0 = lb4test::nowMs();
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK_EQ(lb4test::waitForEnd(c.get(), 3000), 0);
  const int64_t took = lb4test::nowMs() - t0;
  CHECK_GE(took, 90);
  CHECK_LT(took, 1500);
  CHECK(p.backendReaches(0, Counter::connect_timeouts, 1));
  CHECK_EQ(p.backendStat(0, Counter::connect_failures), 1);
  CHECK_EQ(p.backendStat(0, Counter::flows_active), 0);
  CHECK(p.listenerReaches(Counter::no_backend, 1));
  CHECK(p.stop(0));
}

TEST(engine, idle_timeout_closes_quiet_flows) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  EngineConfig cfg = config(1);
  cfg.worker.idleTimeoutMs = 100;
  Proxy p;
  REQUIRE(p.start(cfg, {backend(0, server.address())}));
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK(echoOnce(c.get(), "ping"));
  const int64_t t0 = lb4test::nowMs();
  CHECK_EQ(lb4test::waitForEnd(c.get(), 3000), 0);  // a FIN: idle close is orderly
  const int64_t took = lb4test::nowMs() - t0;
  CHECK_GE(took, 50);
  CHECK_LT(took, 1500);
  CHECK(p.listenerReaches(Counter::idle_timeouts, 1));
  CHECK_EQ(p.backendStat(0, Counter::idle_timeouts), 1);
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK(p.stop(0));
}

TEST(engine, client_reset_resets_the_backend) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(1), {backend(0, server.address())}));
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK(echoOnce(c.get(), "before the reset"));
  setLingerZero(c.get());
  c.reset();
  CHECK(eventually([&] { return server.records().size() == 1; }));
  if (server.records().size() == 1) CHECK_EQ(server.records()[0].error, ECONNRESET);
  CHECK(p.listenerReaches(Counter::resets, 1));
  CHECK_EQ(p.backendStat(0, Counter::resets), 1);
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK(p.stop(0));
}

TEST(engine, backend_speaks_first_then_resets) {
  // The test plays the backend: it greets before the client says anything, then resets.
  SocketAddress backendAddress;
  UniqueFd listener = lb4test::listenOn("127.0.0.1", 0, backendAddress);
  REQUIRE(listener);
  Proxy p;
  REQUIRE(p.start(config(1), {backend(0, backendAddress)}));
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  UniqueFd b = acceptOne(listener.get(), 2000);
  REQUIRE(b);
  REQUIRE(lb4test::sendAll(b.get(), "220 hello\r\n", 11, 2000));
  char greeting[11];
  CHECK(lb4test::recvExactly(c.get(), greeting, sizeof(greeting), 2000));
  CHECK_EQ(std::string(greeting, sizeof(greeting)), "220 hello\r\n");
  setLingerZero(b.get());
  b.reset();
  CHECK_EQ(lb4test::waitForEnd(c.get(), 2000), ECONNRESET);
  CHECK(p.listenerReaches(Counter::resets, 1));
  CHECK(p.stop(0));
}

TEST(engine, snapshot_lists_live_flows) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(2), {backend(4, server.address())}));
  const int64_t wallBefore = lb4::wallClockMs();
  std::vector<UniqueFd> clients;
  std::map<std::string, size_t> sentBy;  // client address -> bytes it sent
  for (size_t i = 0; i < 3; ++i) {
    UniqueFd c = lb4test::connectTo(p.front, 2000);
    REQUIRE(c);
    std::string m(10 + i * 100, static_cast<char>('a' + i));
    CHECK(echoOnce(c.get(), m));
    sentBy[lb4test::localAddress(c.get()).toString()] = m.size();
    clients.push_back(std::move(c));
  }
  // The bytes counted for a flow are bytes delivered; the echo came back, so they are final.
  std::vector<FlowInfo> flows = p.snapshot();
  REQUIRE(flows.size() == 3);
  std::set<uint64_t> ids;
  for (const FlowInfo& f : flows) {
    ids.insert(f.id);
    CHECK_EQ(f.id % 256, f.worker);
    CHECK_LT(f.worker, 2u);
    CHECK_EQ(f.listener, 0u);
    CHECK(f.state == lb4::FlowState::Established);
    CHECK(f.hasBackend);
    CHECK_EQ(f.backendKey, 4u);
    CHECK_EQ(f.backend, server.address().toString());
    auto it = sentBy.find(f.client);
    if (it == sentBy.end()) {
      lb4test::fail(__FILE__, __LINE__, "unknown client " + f.client);
      continue;
    }
    CHECK_EQ(f.bytesToBackend, it->second);
    CHECK_EQ(f.bytesToClient, it->second);
    CHECK_GE(f.startWallMs, wallBefore - 50);
    CHECK_LE(f.startWallMs, lb4::wallClockMs() + 50);
  }
  CHECK_EQ(ids.size(), 3u);

  lb4::FlowFilter byKey;
  byKey.backendKey = 4;
  CHECK_EQ(p.snapshot(byKey).size(), 3u);
  byKey.backendKey = 5;
  CHECK_EQ(p.snapshot(byKey).size(), 0u);
  lb4::FlowFilter byListener;
  byListener.listener = 1;
  CHECK_EQ(p.snapshot(byListener).size(), 0u);
  lb4::FlowFilter limited;
  limited.limit = 1;  // per worker
  CHECK_LE(p.snapshot(limited).size(), 2u);
  CHECK_GE(p.snapshot(limited).size(), 1u);

  clients.clear();
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK_EQ(p.snapshot().size(), 0u);
  CHECK(p.stop(0));
  // After stop, a snapshot answers at once with nothing.
  CHECK_EQ(p.snapshot().size(), 0u);
}

TEST(engine, flows_spread_over_workers) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(2), {backend(0, server.address())}));
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 32; ++i) {
    UniqueFd c = lb4test::connectTo(p.front, 2000);
    REQUIRE(c);
    clients.push_back(std::move(c));
  }
  for (size_t i = 0; i < clients.size(); ++i) CHECK(echoOnce(clients[i].get(), "n" + std::to_string(i)));
  std::vector<FlowInfo> flows = p.snapshot();
  CHECK_EQ(flows.size(), 32u);
  std::map<uint32_t, int> perWorker;
  for (const FlowInfo& f : flows) perWorker[f.worker]++;
  // SO_REUSEPORT hashes each 4-tuple to a worker; 32 flows all on one of two is a 2^-31 chance.
  CHECK_EQ(perWorker.size(), 2u);
  lb4test::note("flows per worker: " + std::to_string(perWorker[0]) + " / " + std::to_string(perWorker[1]));
  CHECK_EQ(p.listenerStat(Counter::flows_active), 32);
  CHECK_EQ(p.backendStat(0, Counter::flows_active), 32);
  clients.clear();
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK(p.stop(0));
}

TEST(engine, stop_drains_open_flows) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(2), {backend(0, server.address())}));
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK(echoOnce(c.get(), "before stop"));

  Signal done;
  const int64_t t0 = lb4test::nowMs();
  p.engine->stop(10000, [&done] { done.notify(); });
  // No new connections: every worker's listening socket closes...
  CHECK(eventually([&] {
    int e = 0;
    UniqueFd probe = lb4test::connectTo(p.front, 500, &e);
    return !probe && e == ECONNREFUSED;
  }));
  // ... while the open flow runs on.
  CHECK(echoOnce(c.get(), "during the drain"));
  CHECK(!done.wait(0));
  // It ends on its own: the drain finishes early.
  shutdown(c.get(), SHUT_WR);
  CHECK_EQ(lb4test::waitForEnd(c.get(), 2000), 0);
  CHECK(done.wait(3000));
  CHECK_LT(lb4test::nowMs() - t0, 5000);
  p.engine->join();
  CHECK_EQ(p.listenerStat(Counter::drain_closed), 0);
  CHECK_EQ(p.listenerStat(Counter::resets), 0);
}

TEST(engine, drain_timeout_closes_what_is_left) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(2), {backend(0, server.address())}));
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK(echoOnce(c.get(), "hello"));
  const int64_t t0 = lb4test::nowMs();
  CHECK(p.stop(150));
  const int64_t took = lb4test::nowMs() - t0;
  CHECK_GE(took, 100);
  CHECK_LT(took, 2000);
  // Closed abortively, so the client learns at once.
  CHECK_EQ(lb4test::waitForEnd(c.get(), 2000), ECONNRESET);
  CHECK_EQ(p.listenerStat(Counter::drain_closed), 1);
  CHECK_EQ(p.backendStat(0, Counter::drain_closed), 1);
  CHECK_EQ(p.listenerStat(Counter::flows_active), 0);
  CHECK_EQ(p.backendStat(0, Counter::flows_active), 0);
}

TEST(engine, a_second_stop_shortens_the_drain) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(2), {backend(0, server.address())}));
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK(echoOnce(c.get(), "hello"));
  Signal first, second;
  const int64_t t0 = lb4test::nowMs();
  p.engine->stop(60000, [&first] { first.notify(); });
  CHECK(!first.wait(50));
  p.engine->stop(0, [&second] { second.notify(); });
  CHECK(first.wait(2000));
  CHECK(second.wait(2000));
  CHECK_LT(lb4test::nowMs() - t0, 2000);
  p.engine->join();
  CHECK_EQ(p.listenerStat(Counter::drain_closed), 1);
}

TEST(engine, apply_backends_moves_new_flows) {
  TestServer a, b;
  REQUIRE(a.start(TestServer::Mode::Echo));
  REQUIRE(b.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(2), {backend(0, a.address())}));
  UniqueFd old = lb4test::connectTo(p.front, 2000);
  REQUIRE(old);
  CHECK(echoOnce(old.get(), "to a"));
  CHECK_EQ(a.accepted(), 1);

  // a drains, b takes new flows.
  Signal applied;
  p.engine->applyBackends(0, {backend(0, a.address(), 1, BackendState::Draining), backend(1, b.address())},
                          std::nullopt, [&applied] { applied.notify(); });
  REQUIRE(applied.wait(2000));
  for (int i = 0; i < 6; ++i) {
    UniqueFd c = lb4test::connectTo(p.front, 2000);
    REQUIRE(c);
    CHECK(echoOnce(c.get(), "new " + std::to_string(i)));
  }
  CHECK_EQ(a.accepted(), 1);
  CHECK_EQ(b.accepted(), 6);
  // The flow that was on a keeps going.
  CHECK(echoOnce(old.get(), "still a"));
  CHECK_EQ(p.backendStat(0, Counter::flows_active), 1);

  // Removing a from the table leaves its flow (and its counters) alone too.
  p.engine->applyBackends(0, {backend(1, b.address())}, std::nullopt, [&applied] { applied.notify(); });
  REQUIRE(applied.wait(2000));
  CHECK(echoOnce(old.get(), "a is gone from the table"));
  CHECK_EQ(p.backendStat(0, Counter::flows_total), 1);

  // An empty table: new flows find no backend.
  p.engine->applyBackends(0, {}, std::nullopt, [&applied] { applied.notify(); });
  REQUIRE(applied.wait(2000));
  UniqueFd none = lb4test::connectTo(p.front, 2000);
  REQUIRE(none);
  CHECK_EQ(lb4test::waitForEnd(none.get(), 2000), 0);
  CHECK(p.listenerReaches(Counter::no_backend, 1));
  old.reset();
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK(p.stop(0));
}

TEST(engine, least_connections_across_workers) {
  TestServer a, b;
  REQUIRE(a.start(TestServer::Mode::Echo));
  REQUIRE(b.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(2, Algorithm::LeastConn), {backend(0, a.address()), backend(1, b.address())}));
  // Flows opened one after the other (each established before the next) alternate between the
  // backends whichever worker takes them, because the workers' active counts are summed.
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 8; ++i) {
    UniqueFd c = lb4test::connectTo(p.front, 2000);
    REQUIRE(c);
    CHECK(echoOnce(c.get(), "x"));
    clients.push_back(std::move(c));
    CHECK_LE(std::abs(a.open() - b.open()), 1);
  }
  CHECK_EQ(a.open(), 4);
  CHECK_EQ(b.open(), 4);
  // Close three of a's flows: the next two go to a.
  std::vector<FlowInfo> flows = p.snapshot();
  int closed = 0;
  for (const FlowInfo& f : flows) {
    if (f.backendKey != 0 || closed == 3) continue;
    for (auto& c : clients) {
      if (c && lb4test::localAddress(c.get()).toString() == f.client) {
        c.reset();
        ++closed;
        break;
      }
    }
  }
  CHECK_EQ(closed, 3);
  CHECK(p.backendReaches(0, Counter::flows_active, 1));
  for (int i = 0; i < 2; ++i) {
    UniqueFd c = lb4test::connectTo(p.front, 2000);
    REQUIRE(c);
    CHECK(echoOnce(c.get(), "y"));
    clients.push_back(std::move(c));
  }
  CHECK_EQ(p.backendStat(0, Counter::flows_active), 3);
  CHECK_EQ(p.backendStat(1, Counter::flows_active), 4);
  clients.clear();
  CHECK(p.stop(0));
}

TEST(engine, start_fails_cleanly_when_a_port_is_taken) {
  SocketAddress taken;
  UniqueFd plain = lb4test::listenOn("127.0.0.1", 0, taken);
  REQUIRE(plain);
  EngineConfig cfg = config(2);
  lb4::ListenerConfig second;
  second.name = "taken";
  second.address = taken;
  cfg.listeners.push_back(second);
  Engine engine(cfg);
  SocketError err;
  uint32_t failed = 99;
  CHECK(!engine.start({{}, {}}, err, failed));
  CHECK_EQ(err.error, EADDRINUSE);
  CHECK_EQ(std::string(err.syscall), "bind");
  CHECK_EQ(failed, 1u);
  CHECK(engine.boundAddresses().empty());
  // Not started: stop() runs its callback at once; nothing to join.
  bool done = false;
  engine.stop(0, [&] { done = true; });
  CHECK(done);
  engine.join();
  // The first listener's sockets were closed again: the harness checks descriptors.
}

TEST(engine, read_stats_layout) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(1), {backend(0, server.address()), backend(3, server.address(), 0)}));
  CHECK_EQ(p.engine->backendKeyLimit(), 4u);
  const size_t needed = (1 + 4) * lb4::kCounterCount;
  CHECK_EQ(p.engine->readStats(nullptr, 0), needed);
  std::vector<double> small(needed - 1, -1.0);
  CHECK_EQ(p.engine->readStats(small.data(), small.size()), needed);
  CHECK(std::all_of(small.begin(), small.end(), [](double v) { return v == -1.0; }));  // untouched
  std::vector<double> all(needed, -1.0);
  CHECK_EQ(p.engine->readStats(all.data(), all.size()), needed);
  CHECK(std::all_of(all.begin(), all.end(), [](double v) { return v == 0.0; }));  // keys 1, 2: zeros

  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK(echoOnce(c.get(), "12345"));
  CHECK(p.listenerReaches(Counter::bytes_to_client, 5));
  CHECK_EQ(p.backendStat(0, Counter::bytes_to_backend), 5);
  CHECK_EQ(p.backendStat(3, Counter::bytes_to_backend), 0);  // weight 0: never picked
  c.reset();
  CHECK(p.stop(0));
}

TEST(engine, destructor_stops_a_running_engine) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  UniqueFd c;
  {
    Proxy p;
    REQUIRE(p.start(config(2), {backend(0, server.address())}));
    c = lb4test::connectTo(p.front, 2000);
    REQUIRE(c);
    CHECK(echoOnce(c.get(), "hi"));
  }  // ~Engine: stop(0) and join, with a flow still open
  CHECK_EQ(lb4test::waitForEnd(c.get(), 2000), ECONNRESET);
}

TEST(engine, idle_flows_hold_no_pipes) {
  // pipe_pool.h: "idle flows hold none" (pipes), and DESIGN.md 3.4: "pipes ... are held only
  // while they hold data". With no spare pipes kept (maxIdlePipes 0), every pipe open in the
  // process belongs to a flow; after the exchanges below every flow is idle.
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  EngineConfig cfg = config(1);
  cfg.worker.maxIdlePipes = 0;
  Proxy p;
  REQUIRE(p.start(cfg, {backend(0, server.address())}));
  const int descriptorsBefore = openDescriptors();
  const int pipesBefore = pipeDescriptors();
  constexpr int kFlows = 4;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kFlows; ++i) {
    UniqueFd c = lb4test::connectTo(p.front, 2000);
    REQUIRE(c);
    CHECK(echoOnce(c.get(), std::string(1000, 'p')));
    clients.push_back(std::move(c));
  }
  CHECK(eventually([&] { return server.open() == kFlows; }));
  // A pump holds a pipe for a moment even on the clean path, and the client can see its echo
  // before the pump that sent it returns. A snapshot is answered between pumps: once it is
  // back, what the flows hold is what they keep while idle.
  CHECK(eventually([&] { return p.listenerStat(Counter::bytes_to_client) == 1000.0 * kFlows; }));
  CHECK_EQ(p.snapshot().size(), static_cast<size_t>(kFlows));
  const int pipesHeld = pipeDescriptors() - pipesBefore;
  CHECK_EQ(pipesHeld, 0);
  // Per idle flow: the test's client socket, the engine's two sockets, the server's socket.
  CHECK_EQ(openDescriptors() - descriptorsBefore - pipesHeld, 4 * kFlows);
  clients.clear();
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK(p.stop(0));
}

namespace {

// Lowers RLIMIT_NOFILE so that only `spare` descriptor numbers are free, and restores it.
class DescriptorLimit {
 public:
  explicit DescriptorLimit(int spare) {
    ok_ = getrlimit(RLIMIT_NOFILE, &saved_) == 0;
    int free = 0;
    rlim_t limit = 0;
    for (int fd = 0; ok_ && fd < 65536; ++fd) {
      if (lb4test::isOpen(fd)) continue;
      if (free == spare) {
        limit = static_cast<rlim_t>(fd);
        break;
      }
      ++free;
    }
    rlimit tight = saved_;
    tight.rlim_cur = limit;
    ok_ = ok_ && setrlimit(RLIMIT_NOFILE, &tight) == 0;
  }
  ~DescriptorLimit() { restore(); }
  void restore() {
    if (ok_) setrlimit(RLIMIT_NOFILE, &saved_);
    ok_ = false;
  }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

}  // namespace

TEST(engine, sheds_connections_when_descriptors_run_out) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  Proxy p;
  REQUIRE(p.start(config(1), {backend(0, server.address())}));
  // Sockets made before the limit drops; connect(2) needs no new descriptor.
  UniqueFd shed(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  UniqueFd starved(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(shed && starved);
  {
    // No descriptor left: accept4 fails with EMFILE and the worker sheds the connection with
    // its reserve descriptor instead of spinning on the listener.
    DescriptorLimit limit(0);
    REQUIRE(limit.ok());
    REQUIRE(connect(shed.get(), p.front.get(), p.front.length()) == 0);
    CHECK(p.listenerReaches(Counter::accept_shed, 1));
  }
  CHECK_EQ(lb4test::waitForEnd(shed.get(), 2000), 0);
  CHECK_EQ(p.listenerStat(Counter::flows_total), 0);
  CHECK_EQ(p.listenerStat(Counter::accept_errors), 0);
  {
    // One descriptor left: the accept works, the backend socket cannot be had.
    DescriptorLimit limit(1);
    REQUIRE(limit.ok());
    REQUIRE(connect(starved.get(), p.front.get(), p.front.length()) == 0);
    CHECK(p.listenerReaches(Counter::no_backend, 1));
  }
  CHECK_EQ(p.listenerStat(Counter::connect_no_descriptors), 1);
  CHECK_EQ(lb4test::waitForEnd(starved.get(), 2000), 0);
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  // With descriptors back, service resumes (and the reserve was taken back).
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK(echoOnce(c.get(), "back to normal"));
  c.reset();
  CHECK(p.stop(0));
}

TEST(engine, idle_timeout_with_undelivered_bytes_is_not_a_clean_end) {
  // The client stops reading; the backend sends until every buffer on the way is full, so no
  // byte moves and the flow goes idle while the engine still holds the backend's bytes. When the
  // idle timeout closes it, those bytes are lost: the client must not see an orderly end (FIN)
  // after a truncated stream, or it would take a partial response for a whole one.
  SocketAddress backendAddress;
  UniqueFd listener = lb4test::listenOn("127.0.0.1", 0, backendAddress);
  REQUIRE(listener);
  EngineConfig cfg = config(1);
  cfg.worker.idleTimeoutMs = 200;
  Proxy p;
  REQUIRE(p.start(cfg, {backend(0, backendAddress)}));
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  UniqueFd b = acceptOne(listener.get(), 2000);
  REQUIRE(b);
  std::string chunk(65536, 'd');
  uint64_t sent = 0;
  for (;;) {
    ssize_t w = send(b.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      sent += static_cast<uint64_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN) break;
    if (!lb4test::waitFor(b.get(), POLLOUT, 100)) break;  // everything on the way is full
  }
  CHECK(p.listenerReaches(Counter::idle_timeouts, 1));
  size_t received = 0;
  const int end = lb4test::waitForEnd(c.get(), 3000, &received);
  lb4test::note("backend sent " + std::to_string(sent) + " bytes, client received " + std::to_string(received) +
                ", then " + (end == 0 ? std::string("EOF") : end < 0 ? "nothing" : std::strerror(end)));
  CHECK_GT(sent, received);  // the premise: bytes were lost
  if (end == 0 && received < sent)
    lb4test::fail(__FILE__, __LINE__,
                  "the client got an orderly EOF after " + std::to_string(received) + " of " + std::to_string(sent) +
                      " bytes: the idle timeout closes with a FIN even when the flow still holds bytes");
  // (The backend side, closed with unread bytes, gets a reset from the kernel either way.)
  const int backendEnd = lb4test::waitForEnd(b.get(), 2000);
  lb4test::note(std::string("backend saw ") + (backendEnd == 0 ? "EOF" : backendEnd < 0 ? "nothing" : std::strerror(backendEnd)));
  CHECK(p.stop(0));
}

TEST(engine, ipv6_listener_and_backend) {
  {
    UniqueFd probe(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    SocketAddress v6 = lb4test::address("::1", 0);
    if (!probe || bind(probe.get(), v6.get(), v6.length()) != 0) {
      lb4test::note("skipped: no IPv6 loopback here");
      return;
    }
  }
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo, "::1"));
  EngineConfig cfg = config(2);
  cfg.listeners[0].address = lb4test::address("::1", 0);
  Proxy p;
  REQUIRE(p.start(cfg, {backend(0, server.address())}));
  CHECK_EQ(p.front.toString(), "[::1]:" + std::to_string(p.front.port()));
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK(echoOnce(c.get(), "over IPv6"));
  std::vector<FlowInfo> flows = p.snapshot();
  REQUIRE(flows.size() == 1);
  CHECK_EQ(flows[0].client, lb4test::localAddress(c.get()).toString());
  CHECK_EQ(flows[0].client.rfind("[::1]:", 0), 0u);
  CHECK_EQ(flows[0].backend, server.address().toString());
  c.reset();
  CHECK(p.stop(1000));
}

TEST(engine, zero_workers_means_one) {
  EngineConfig cfg = config(0);
  Proxy p;
  REQUIRE(p.start(cfg, {}));
  CHECK_EQ(p.engine->workerCount(), 1u);
  CHECK(p.stop(0));
}

TEST(engine, apply_backends_swaps_one_listener_only) {
  // Two listeners on one worker, round robin. Listener 0 alternates a, b; a change to listener
  // 1 must leave listener 0's table and picker as they were, so its rotation goes on (a reset
  // picker would start over at a).
  TestServer a, b, c, d;
  for (TestServer* s : {&a, &b, &c, &d}) REQUIRE(s->start(TestServer::Mode::Echo));
  EngineConfig cfg = config(1);
  lb4::ListenerConfig second;
  second.name = "second";
  second.address = lb4test::address("127.0.0.1", 0);
  cfg.listeners.push_back(second);
  Proxy p;
  REQUIRE(p.startWith(cfg, {{backend(0, a.address()), backend(1, b.address())}, {backend(2, c.address())}}));
  const SocketAddress front0 = p.engine->boundAddresses().at(0);
  const SocketAddress front1 = p.engine->boundAddresses().at(1);
  auto oneFlow = [](const SocketAddress& to) {
    UniqueFd client = lb4test::connectTo(to, 2000);
    return client && echoOnce(client.get(), "x");
  };
  auto apply = [&](uint32_t slot, std::vector<BackendSpec> specs, std::optional<Algorithm> algorithm) {
    auto applied = std::make_shared<Signal>();
    p.engine->applyBackends(slot, std::move(specs), algorithm, [applied] { applied->notify(); });
    return applied->wait(2000);
  };

  CHECK(oneFlow(front0));
  CHECK(eventually([&] { return a.accepted() == 1; }));
  REQUIRE(apply(1, {backend(3, d.address())}, std::nullopt));
  CHECK(oneFlow(front0));
  CHECK(eventually([&] { return b.accepted() == 1; }));  // the rotation went on
  CHECK_EQ(a.accepted(), 1);
  CHECK(oneFlow(front1));
  CHECK(eventually([&] { return d.accepted() == 1; }));  // listener 1 runs its new table
  CHECK_EQ(c.accepted(), 0);

  // A new algorithm for listener 1 (a new picker there) still leaves listener 0 alone.
  REQUIRE(apply(1, {backend(2, c.address()), backend(3, d.address())}, Algorithm::LeastConn));
  CHECK(oneFlow(front0));
  CHECK(eventually([&] { return a.accepted() == 2; }));
  CHECK(oneFlow(front0));
  CHECK(eventually([&] { return b.accepted() == 2; }));
  CHECK(oneFlow(front1));
  CHECK(eventually([&] { return c.accepted() + d.accepted() == 2; }));

  // The applied slot itself starts over: its picker was reset with the new table.
  CHECK(oneFlow(front0));  // a
  CHECK(eventually([&] { return a.accepted() == 3; }));
  REQUIRE(apply(0, {backend(0, a.address()), backend(1, b.address())}, std::nullopt));
  CHECK(oneFlow(front0));  // a again, not b
  CHECK(eventually([&] { return a.accepted() == 4; }));
  CHECK_EQ(b.accepted(), 2);

  // An unknown slot changes nothing and answers at once.
  bool answered = false;
  p.engine->applyBackends(7, {backend(9, d.address())}, std::nullopt, [&] { answered = true; });
  CHECK(answered);
  CHECK(p.listenerReaches(Counter::flows_active, 0, 0));
  CHECK(p.listenerReaches(Counter::flows_active, 0, 1));
  CHECK(p.stop(0));
}

TEST(engine, backend_socket_without_descriptors_counts_connect_no_descriptors) {
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Echo));
  EngineConfig cfg = config(1);
  cfg.worker.retries = 3;
  Proxy p;
  REQUIRE(p.start(cfg, {backend(0, server.address()), backend(1, server.address())}));
  UniqueFd starved(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(starved);
  {
    // One descriptor number left: accept4 takes it, so socket() for the backend says EMFILE.
    DescriptorLimit limit(1);
    REQUIRE(limit.ok());
    REQUIRE(connect(starved.get(), p.front.get(), p.front.length()) == 0);
    CHECK(p.listenerReaches(Counter::connect_no_descriptors, 1));
    CHECK(p.listenerReaches(Counter::flows_active, 0));
  }
  // The flow closed as no-backend: an orderly close for the client, no connect failure blamed
  // on a backend, and no retry on the other backend (no backend would have fixed it).
  CHECK_EQ(lb4test::waitForEnd(starved.get(), 2000), 0);
  CHECK_EQ(p.listenerStat(Counter::no_backend), 1);
  CHECK_EQ(p.listenerStat(Counter::connect_failures), 0);
  CHECK_EQ(p.listenerStat(Counter::retries), 0);
  CHECK_EQ(p.backendStat(0, Counter::connect_failures) + p.backendStat(1, Counter::connect_failures), 0);
  CHECK_EQ(p.backendStat(0, Counter::connect_no_descriptors) + p.backendStat(1, Counter::connect_no_descriptors), 0);
  CHECK_EQ(server.accepted(), 0);
  // With descriptors back, the next flow connects as usual, and is not counted.
  UniqueFd c = lb4test::connectTo(p.front, 2000);
  REQUIRE(c);
  CHECK(echoOnce(c.get(), "descriptors again"));
  CHECK_EQ(p.listenerStat(Counter::connect_no_descriptors), 1);
  c.reset();
  CHECK(p.stop(0));
}

TEST(engine, closed_flows_leave_no_descriptor_behind) {
  // Every descriptor a flow had (its two sockets, the pipes it spliced through) is closed when
  // the flow ends, cleanly or by a reset, while the engine goes on running. With no spare pipes
  // kept, the process's descriptor count (/proc/self/fd) must come back to where it was.
  TestServer server;
  REQUIRE(server.start(TestServer::Mode::Scripted));
  EngineConfig cfg = config(2);
  cfg.worker.maxIdlePipes = 0;
  Proxy p;
  REQUIRE(p.start(cfg, {backend(0, server.address())}));
  const int before = lb4test::openDescriptorCount();
  const int pipesBefore = pipeDescriptors();

  // Bulk both ways (spliced through pipes), and small exchanges (copied).
  const uint64_t MiB = 1 << 20;
  uint64_t toBackend = 0, toClient = 0;
  runTransfers(p.front, server, {{2 * MiB, 1, 2 * MiB, 2}, {MiB, 3, 0, 4}, {10, 5, 10, 6}}, toBackend, toClient);
  CHECK_GT(p.listenerStat(Counter::spliced_bytes), 0);
  // A client that stops reading, then resets, while the engine holds the backend's bytes in a
  // pipe: the engine closes both sockets abortively and closes the pipe with the bytes in it.
  {
    UniqueFd c = lb4test::connectTo(p.front, 2000);
    REQUIRE(c);
    lb4test::Transfer t{0, 7, 256 * MiB, 8};
    std::string header = t.header();
    REQUIRE(lb4test::sendAll(c.get(), header.data(), header.size(), 2000));
    char some[4096];
    REQUIRE(lb4test::recvExactly(c.get(), some, sizeof(some), 2000));
    // Empty pipes go back to the pool at once, and the pool keeps none: a pipe still open is
    // one that holds bytes the client has not taken.
    CHECK(eventually([&] { return pipeDescriptors() > pipesBefore; }));
    setLingerZero(c.get());
  }
  CHECK(p.listenerReaches(Counter::resets, 1));
  CHECK(p.listenerReaches(Counter::flows_active, 0));
  CHECK(eventually([&] { return server.open() == 0; }));
  CHECK(eventually([&] { return lb4test::openDescriptorCount() == before; }));
  CHECK_EQ(lb4test::openDescriptorCount(), before);
  CHECK_EQ(pipeDescriptors(), pipesBefore);
  CHECK(p.stop(0));
}
