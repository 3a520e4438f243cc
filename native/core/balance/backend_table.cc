#include "balance/backend_table.h"

#include "balance/hash.h"

namespace lb4 {

std::shared_ptr<const BackendTable> buildBackendTable(Algorithm algorithm, uint64_t generation,
                                                      std::vector<BackendEntry> backends) {
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
  }
  return table;
}

}  // namespace lb4
