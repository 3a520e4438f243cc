// The enumerations and engine options declared once in enums.h and engine_options.h: what the
// binding exports and checks from them.

#include <cstring>
#include <set>
#include <string>

#include "engine.h"
#include "engine_options.h"
#include "enums.h"
#include "harness.h"

using lb4::Algorithm;
using lb4::BackendState;
using lb4::CloseReason;
using lb4::EngineOption;
using lb4::FlowState;
using lb4::Protocol;

namespace {

template <typename E>
std::string joined() {
  std::string out;
  for (size_t i = 0; i < lb4::enumCount<E>(); ++i) out += (i ? "," : "") + std::string(lb4::enumName(static_cast<E>(i)));
  return out;
}

}  // namespace

TEST(enums, names_in_boundary_order) {
  // These lists cross to JavaScript by position (PLAN.md's boundary): a value is only appended.
  CHECK_EQ(joined<Protocol>(), "tcp,udp");
  CHECK_EQ(joined<Algorithm>(), "roundrobin,leastconn,maglev");
  CHECK_EQ(joined<BackendState>(), "up,down,draining,maintenance");
  CHECK_EQ(joined<CloseReason>(),
           "done,client-reset,backend-reset,idle-timeout,no-backend,drained,error,evicted,responses,backend-gone,refused,proxy-header,policy,sni");
  CHECK_EQ(joined<FlowState>(), "connecting,established,closed,awaiting-header,queued,awaiting-hello");
  CHECK_EQ(joined<lb4::ProxyVersion>(), "none,v1,v2");
  CHECK_EQ(static_cast<int>(Algorithm::LeastConn), 1);
  CHECK_EQ(static_cast<int>(CloseReason::Error), 6);
  CHECK_EQ(std::string(lb4::enumName(static_cast<CloseReason>(14))), "?");
}

TEST(enums, numbers_outside_the_list_are_refused) {
  Algorithm a = Algorithm::RoundRobin;
  CHECK(lb4::enumFromNumber(2, a));
  CHECK(a == Algorithm::Maglev);
  CHECK(!lb4::enumFromNumber(3, a));
  CHECK(a == Algorithm::Maglev);  // untouched
  BackendState s = BackendState::Up;
  CHECK(lb4::enumFromNumber(3, s));
  CHECK(s == BackendState::Maintenance);
  CHECK(!lb4::enumFromNumber(4, s));
  Protocol p = Protocol::Tcp;
  CHECK(lb4::enumFromNumber(1, p));
  CHECK(p == Protocol::Udp);
  CHECK(!lb4::enumFromNumber(2, p));
}

TEST(engine_options, one_table_of_ranges_and_defaults) {
  std::set<std::string> names;
  for (const lb4::OptionLimit& o : lb4::kEngineOptions) {
    names.insert(o.name);
    CHECK_LE(o.min, o.max);
    if (o.defaultValue < o.min || o.defaultValue > o.max)
      lb4test::fail(__FILE__, __LINE__, std::string(o.name) + "'s default is outside its range");
  }
  CHECK_EQ(names.size(), lb4::kEngineOptionCount);
  CHECK_EQ(std::string(lb4::optionLimit(EngineOption::retries).name), "retries");
  CHECK_EQ(lb4::optionLimit(EngineOption::retries).max, 7);
  CHECK_EQ(lb4::optionLimit(EngineOption::pipeSize).max, 1 << 20);
  // The structs the engine runs with take their defaults from the table.
  lb4::WorkerOptions w;
  CHECK_EQ(w.connectTimeoutMs, lb4::optionDefault(EngineOption::connectTimeoutMs));
  CHECK_EQ(w.idleTimeoutMs, lb4::optionDefault(EngineOption::idleTimeoutMs));
  CHECK_EQ(w.retries, lb4::optionDefault(EngineOption::retries));
  CHECK_EQ(w.pipeSize, lb4::optionDefault(EngineOption::pipeSize));
  CHECK_EQ(w.maxIdlePipes, lb4::optionDefault(EngineOption::maxIdlePipes));
  lb4::ListenerConfig l;
  CHECK_EQ(l.backlog, 511);
  CHECK(l.algorithm == Algorithm::RoundRobin);
  lb4::EngineConfig e;
  CHECK_EQ(e.workers, 1u);
}
