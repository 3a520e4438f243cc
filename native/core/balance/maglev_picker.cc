#include "balance/maglev_picker.h"

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
