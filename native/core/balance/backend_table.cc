#include "balance/backend_table.h"

#include "balance/hash.h"
#include "balance/maglev.h"

namespace lb4 {

namespace {

std::shared_ptr<BackendTable> buildOne(Algorithm algorithm, uint64_t generation, std::vector<BackendEntry> backends) {
  auto table = std::make_shared<BackendTable>();
  table->algorithm = algorithm;
  table->generation = generation;
  table->backends = std::move(backends);
  for (BackendEntry& b : table->backends) b.idHash = backendIdHash(b.id);
  // What each algorithm derives from the whole set, once per table. No default: a new
  // algorithm must say here whether it needs anything (the compiler warns until it does).
  switch (algorithm) {
    case Algorithm::RoundRobin:
    case Algorithm::LeastConn:
      break;  // nothing shared: their state is per worker, in the picker
    case Algorithm::Maglev: {
      // Only backends that take new flows own entries: a down, draining or maintenance backend
      // (or weight 0) gives its entries up, and only its clients move.
      std::vector<MaglevMember> members;
      members.reserve(table->backends.size());
      for (const BackendEntry& b : table->backends) members.push_back({b.idHash, b.takesNewFlows() ? b.weight : 0});
      table->maglev = buildMaglevTable(members);
      std::vector<bool> owns(table->backends.size(), false);
      for (uint32_t index : table->maglev) owns[index] = true;
      for (size_t i = 0; i < owns.size(); ++i)
        if (owns[i]) table->maglevOwners.push_back(table->backends[i].key);
      break;
    }
  }
  return table;
}

}  // namespace

std::shared_ptr<const BackendTable> buildBackendTable(Algorithm algorithm, uint64_t generation,
                                                      std::vector<BackendEntry> backends) {
  std::shared_ptr<BackendTable> table = buildOne(algorithm, generation, std::move(backends));
  // Pools: each gets a table of its own entries (copies: an entry is small, and the counters
  // they point to are shared), so every algorithm balances within a pool as it would alone.
  std::vector<std::vector<BackendEntry>> members;
  for (const BackendEntry& b : table->backends) {
    if (b.pool.empty()) continue;
    int32_t at = table->poolIndex(b.pool);
    if (at < 0) {
      at = static_cast<int32_t>(table->poolNames.size());
      table->poolNames.push_back(b.pool);
      members.emplace_back();
    }
    members[static_cast<size_t>(at)].push_back(b);
  }
  for (auto& m : members) table->pools.push_back(buildOne(algorithm, generation, std::move(m)));
  return table;
}

}  // namespace lb4
