#include "balance/maglev_picker.h"

#include <algorithm>

#include "balance/hash.h"

namespace lb4 {

const BackendEntry* MaglevPicker::choose(uint64_t flowHash, const TriedBackends& tried, bool avoidTried) {
  const std::vector<uint32_t>& lookup = table_->maglev;
  if (lookup.empty()) return nullptr;  // no backend takes new flows
  // The flow hash is FNV-1a of a few address bytes, whose low bits are weak: spread them before
  // reducing modulo the (prime) table size.
  const size_t size = lookup.size();
  size_t entry = static_cast<size_t>(mixHash(flowHash) % size);
  if (!avoidTried || tried.count == 0) return &table_->backends[lookup[entry]];
  // When every backend of the table has been tried, the walk below would read all 65,537 entries
  // to find nothing, on each of up to `retries` attempts of every flow while the backends refuse.
  // Fewer keys tried than owners means some owner is untried (tried keys may even name backends
  // of an older table), and the walk ends on it; otherwise look at the few owners first.
  const std::vector<uint32_t>& owners = table_->maglevOwners;
  if (static_cast<size_t>(tried.count) >= owners.size() &&
      std::all_of(owners.begin(), owners.end(), [&](uint32_t key) { return tried.contains(key); }))
    return nullptr;
  // A retry after a failed connect: the next entries of the table, in order, give a second
  // choice that is as deterministic as the first (the same on every node) and spread over the
  // other backends in proportion to their shares. The walk ends at the first untried backend;
  // a full lap means every backend in the table was tried.
  for (size_t step = 0; step < size; ++step, entry = entry + 1 == size ? 0 : entry + 1) {
    const BackendEntry& b = table_->backends[lookup[entry]];
    if (!tried.contains(b.key)) return &b;
  }
  return nullptr;
}

}  // namespace lb4
