#include "udp/session_replication.h"

namespace lb4 {

SessionReplication::SessionReplication(size_t changeCapacity, size_t affinityCapacity, int64_t ttlMs, int64_t refreshMs)
    : changeCapacity_(changeCapacity), affinityCapacity_(affinityCapacity), ttlMs_(ttlMs), refreshMs_(refreshMs) {}

void SessionReplication::report(const UdpSession& s, bool opened) {
  if (!enabled()) return;
  std::lock_guard<std::mutex> lock(changesMutex_);
  if (changes_.size() >= changeCapacity_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  SessionChange c;
  c.opened = opened;
  c.listener = s.listener;
  c.backendKey = s.backendKey;
  c.client = s.client;
  c.local = s.local;
  changes_.push_back(c);
}

std::vector<SessionChange> SessionReplication::drain() {
  std::vector<SessionChange> out;
  std::lock_guard<std::mutex> lock(changesMutex_);
  out.swap(changes_);
  return out;
}

void SessionReplication::erase(std::unordered_map<SessionKey, Entry, SessionKeyHash>::iterator it) {
  order_.erase(it->second.order);
  affinity_.erase(it);
}

size_t SessionReplication::apply(const std::vector<AffinityUpdate>& updates, int64_t nowMs) {
  size_t set = 0;
  std::lock_guard<std::mutex> lock(affinityMutex_);
  // Expired entries leave first, oldest first: the list is in the order entries were set, and
  // every entry lives the same ttl, so the walk stops at the first live one.
  while (!order_.empty()) {
    auto it = affinity_.find(order_.front());
    if (it->second.expiresAtMs > nowMs) break;
    erase(it);
  }
  for (const AffinityUpdate& u : updates) {
    auto it = affinity_.find(u.key);
    if (it != affinity_.end()) erase(it);
    if (!u.set) continue;
    if (affinity_.size() >= affinityCapacity_) erase(affinity_.find(order_.front()));
    order_.push_back(u.key);
    affinity_.emplace(u.key, Entry{u.backendIdHash, nowMs + ttlMs_, std::prev(order_.end())});
    ++set;
  }
  affinityCount_.store(affinity_.size(), std::memory_order_relaxed);
  return set;
}

bool SessionReplication::hint(const SessionKey& key, int64_t nowMs, uint64_t& backendIdHash) {
  if (affinityCount_.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard<std::mutex> lock(affinityMutex_);
  auto it = affinity_.find(key);
  // An expired entry is left for apply() to remove: a worker only reads here.
  if (it == affinity_.end() || it->second.expiresAtMs <= nowMs) return false;
  backendIdHash = it->second.backendIdHash;
  return true;
}

}  // namespace lb4
