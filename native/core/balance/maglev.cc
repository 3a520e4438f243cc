#include "balance/maglev.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "balance/hash.h"

namespace lb4 {

std::vector<uint32_t> buildMaglevTable(const std::vector<MaglevMember>& members, uint32_t size) {
  // Population order decides which backend wins a contested entry, so it must not depend on the
  // order the config listed the backends in: sort by idHash (ties, which need equal ids, by
  // weight then input position, which keeps the function total).
  std::vector<uint32_t> order;
  uint32_t maxWeight = 0;
  for (uint32_t i = 0; i < members.size(); ++i) {
    if (members[i].weight == 0) continue;
    order.push_back(i);
    maxWeight = std::max(maxWeight, members[i].weight);
  }
  if (order.empty() || size < 2) return {};
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (members[a].idHash != members[b].idHash) return members[a].idHash < members[b].idHash;
    if (members[a].weight != members[b].weight) return members[a].weight < members[b].weight;
    return a < b;
  });

  // Each backend walks its own permutation of the table, offset + j * skip (mod size): with a
  // prime size and 0 < skip < size every permutation visits every entry once.
  const size_t n = order.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  for (size_t k = 0; k < n; ++k) {
    uint64_t h = members[order[k]].idHash;
    offset[k] = mixHash(h) % size;
    skip[k] = mixHash(h ^ 0x9e3779b97f4a7c15ULL) % (size - 1) + 1;
  }

  constexpr uint32_t kEmpty = UINT32_MAX;
  std::vector<uint32_t> table(size, kEmpty);
  // Weights: on every pass each backend earns its weight in credit and claims one entry per
  // maxWeight of credit, so over the whole fill its share of entries follows its weight (the
  // weighted variant katran and others use), while the heaviest backend claims one entry per pass
  // exactly as in the unweighted algorithm.
  //
  // Backend k thus makes its j-th claim on pass ceil(j * maxWeight / weight_k), and within a pass
  // backends claim in population order. Walking pass by pass would cost passes x backends, and
  // with one heavy backend among light ones (weights 1000000 and 1) nearly every pass is one
  // claim among thousands of idle backends: half a second of the control thread per table for
  // 5,000 backends. So the claims are taken in that same (pass, order) sequence from a heap,
  // which builds exactly the table the pass-by-pass walk builds, in O(size log n).
  using Claim = std::pair<uint64_t, uint32_t>;  // (pass, position in `order`)
  std::vector<uint64_t> claims(n, 0);
  auto passOf = [&](size_t k) {
    const uint64_t w = members[order[k]].weight;
    return ((claims[k] + 1) * maxWeight + w - 1) / w;
  };
  std::vector<Claim> heap;
  heap.reserve(n);
  for (size_t k = 0; k < n; ++k) heap.push_back({passOf(k), static_cast<uint32_t>(k)});
  std::make_heap(heap.begin(), heap.end(), std::greater<Claim>());
  for (uint32_t filled = 0; filled < size; ++filled) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<Claim>());
    const size_t k = heap.back().second;
    uint64_t entry;
    do {
      entry = (offset[k] + next[k] * skip[k]) % size;
      next[k]++;
    } while (table[entry] != kEmpty);
    table[entry] = order[k];
    claims[k]++;
    heap.back().first = passOf(k);
    std::push_heap(heap.begin(), heap.end(), std::greater<Claim>());
  }
  return table;
}

}  // namespace lb4
