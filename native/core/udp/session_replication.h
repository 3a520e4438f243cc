#pragma once
// UDP sessions across a failover of the HA pair (docs/design.md section 8): the two halves the
// data plane holds. The control plane (lib/cluster/session-replicator.ts) carries the changes to
// the peer and brings the peer's back.
//
// Out: each worker reports its sessions' starts and ends, and, while traffic flows, a session
// again every `refreshMs` (so the peer's copy, which expires, outlives the session), into one
// bounded queue the control thread drains every few milliseconds. Nothing is queued while
// replication is off; past the capacity a change is dropped and counted: a lost change may cost
// one client its backend after a failover, never the data plane a stall or unbounded memory.
//
// In: the affinity table, what the peer's sessions were: (listener, client address and port,
// local address) -> the stable hash of the backend's id (balance/hash.h backendIdHash: the same
// on both nodes for the same config). A worker consults it only when it opens a NEW session,
// never for a datagram of a live one: if the named backend is in the listener's table and takes
// new flows, the session goes there; otherwise the picker chooses as always. One table for all
// workers under a mutex, rather than a copy per worker: it is read only on the new-session path,
// which already costs socket() and connect(), so the lock is noise there, and its memory is paid
// once. An atomic count lets a node with no hints skip the lock entirely. Bounded: at capacity
// the least recently set entry goes; an entry expires `ttlMs` after it was last set.
//
// Thread affinity: report() and hint() run on workers; the rest on the control thread.

#include <atomic>
#include <cstdint>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "udp/session.h"

namespace lb4 {

struct SessionChange {
  bool opened = true;  // false: the session ended
  uint32_t listener = 0;
  uint32_t backendKey = 0;
  SocketAddress client;
  LocalAddress local;
};

struct AffinityUpdate {
  bool set = true;  // false: the session ended on the peer; forget it
  SessionKey key{};
  uint64_t backendIdHash = 0;
};

class SessionReplication {
 public:
  SessionReplication(size_t changeCapacity, size_t affinityCapacity, int64_t ttlMs, int64_t refreshMs);
  SessionReplication(const SessionReplication&) = delete;
  SessionReplication& operator=(const SessionReplication&) = delete;

  void setEnabled(bool on) { enabled_.store(on, std::memory_order_relaxed); }
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
  int64_t refreshMs() const { return refreshMs_; }

  // Worker: a session started (or is refreshed), or ended. Does nothing while disabled.
  void report(const UdpSession& s, bool opened);
  // Control thread: every change queued since the last call, oldest first.
  std::vector<SessionChange> drain();
  uint64_t droppedChanges() const { return dropped_.load(std::memory_order_relaxed); }

  // Control thread: applies the peer's changes at monotonic `nowMs`; returns how many set an entry.
  size_t apply(const std::vector<AffinityUpdate>& updates, int64_t nowMs);
  // Worker: the backend id hash the peer's session for `key` used, if a live entry says so.
  bool hint(const SessionKey& key, int64_t nowMs, uint64_t& backendIdHash);
  size_t affinitySize() const { return affinityCount_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    uint64_t backendIdHash;
    int64_t expiresAtMs;
    std::list<SessionKey>::iterator order;
  };
  void erase(std::unordered_map<SessionKey, Entry, SessionKeyHash>::iterator it);

  const size_t changeCapacity_;
  const size_t affinityCapacity_;
  const int64_t ttlMs_;
  const int64_t refreshMs_;
  std::atomic<bool> enabled_{false};

  std::mutex changesMutex_;
  std::vector<SessionChange> changes_;
  std::atomic<uint64_t> dropped_{0};

  std::mutex affinityMutex_;
  std::unordered_map<SessionKey, Entry, SessionKeyHash> affinity_;
  std::list<SessionKey> order_;  // least recently set first: eviction and expiry start here
  std::atomic<size_t> affinityCount_{0};
};

}  // namespace lb4
