#pragma once
// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of a prime size in which
// every backend owns a share of the entries in proportion to its weight. A flow's hash picks an
// entry, so the same client lands on the same backend on every worker and on every node that
// builds the table from the same backends, and removing one backend moves only the flows that
// were on it (plus a small fraction, a few per cent, of the others).
//
// The table is built once per backend-table generation on the control thread and shared,
// immutable, by every worker; the hot path is one array read.

#include <cstdint>
#include <vector>

namespace lb4 {

// A prime well above any realistic backend count times 100, as the paper recommends: with
// M >> N every backend's share is within about 1 % of its weighted ideal.
constexpr uint32_t kMaglevTableSize = 65537;

struct MaglevMember {
  uint64_t idHash;  // from the backend's stable id: the same on every node
  uint32_t weight;  // 0 takes no entry
};

// Returns `size` entries, each an index into `members`, or an empty table when no member has a
// weight. The result depends only on the set of (idHash, weight) pairs, not on their order, so
// two nodes whose configs list the same backends in another order still agree. `size` must be a
// prime (kMaglevTableSize unless a test wants a small one).
std::vector<uint32_t> buildMaglevTable(const std::vector<MaglevMember>& members, uint32_t size = kMaglevTableSize);

}  // namespace lb4
