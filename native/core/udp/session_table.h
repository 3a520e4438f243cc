#pragma once
// A worker's UDP sessions (UdpProxy's table), shaped like tcp/FlowTable: slots are reused, and a
// session retired during an epoll pass keeps its slot until releaseClosed() between two passes,
// so an event already returned for its upstream socket finds a closed session, never a new one
// in the same slot. Unlike a flow, a retired session leaves the key index, its listener's list
// and its backend's list at once: the client's next datagram in the same pass opens a new
// session.
//
// Three indexes over the live sessions:
//   - by key (listener, client address and port, local address): the lookup for every datagram
//     a listener reads;
//   - per listener, a list from least to most recently active: the idle sweep walks it from the
//     head and stops at the first session still in use, and the session cap evicts the head;
//   - per backend key, a list (Envoy's udp_proxy keeps the same second index): closing the
//     sessions of a removed or down backend touches only those.
//
// Contract: open() gives an Active session, linked everywhere, with its id and slot; the caller
// sets the backend (then linkBackend) and the descriptor; touch() after every datagram either
// way; retire() unlinks and marks it Closed (the caller has counted it), and the upstream
// descriptor closes at releaseClosed(). Single-threaded: owned by one worker.
//
// Warm sockets, per client. A session that ended because every response it expected came back
// (the responses-per-request setting, as for DNS) may be retired `keepWarm`: at once its slot
// keeps the upstream socket, still connected to the backend and still watched by the
// loop under the slot's tag (state Warm), indexed by the session's key. reopen() makes it the
// next session of the SAME key (listener, client address and port, local address) when that
// session picks the same backend: that saves socket(), connect(), epoll_ctl() and close(). Never
// another client's: an answer the backend sends late, after the session ended, can then only
// reach the client that asked, exactly as if the session had stayed open (a socket handed to
// another client delivered the previous client's late answer to it). Warm slots are kept in the
// order they warmed, so the idle sweep stops at the first one still fresh (expireWarm), at most
// kMaxWarm per worker (the oldest goes first). A slot turns Warm at once, not between passes as a
// freed one does: it keeps the same socket, so an event already returned for that socket in this
// pass finds it Warm and reads what it holds as late. The worker reads client datagrams after
// every other event of a pass, so a client's next request in the same pass reuses it.

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "udp/session.h"

namespace lb4 {

class SessionTable {
 public:
  explicit SessionTable(uint32_t workerIndex) : workerIndex_(workerIndex) {}
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  UdpSession* find(const SessionKey& key);
  // A new Active session for `key` (which must not have one), most recently active of its
  // listener at `nowMs`.
  UdpSession& open(const SessionKey& key, int64_t nowMs);
  // Adds the session to its backend's list (backendKey set, backendCounters non-null).
  void linkBackend(UdpSession& s);
  // A datagram moved: the session becomes its listener's most recently active.
  void touch(UdpSession& s, int64_t nowMs);
  // keepWarm: the slot becomes Warm at once, keeping its upstream socket for the next session of
  // the same key (past kMaxWarm the oldest warm slot closes).
  void retire(UdpSession& s, bool keepWarm = false);
  // Between two epoll passes: retired sessions' (and closed warm slots') descriptors close and
  // their slots become free.
  void releaseClosed();

  // The warm slot of `key`, or null. It stays Warm until reopen() or closeWarm().
  UdpSession* warm(const SessionKey& key);
  // Makes a Warm slot an Active session for its own key at `nowMs`, keeping its upstream socket
  // and backend (the caller links the backend again).
  UdpSession& reopen(UdpSession& warm, int64_t nowMs);
  // Closes one warm slot's socket and frees the slot (its socket failed, its backend changed, it
  // idled out, or its client's next session picked another backend).
  void closeWarm(UdpSession& warm);
  // Closes the warm slots last active at or before `cutoffMs`, oldest first; returns how many.
  size_t expireWarm(int64_t cutoffMs);
  // fn(UdpSession&) for each warm slot; fn may closeWarm the one it is given.
  template <typename Fn>
  void forEachWarm(Fn&& fn) {
    for (auto& s : slots_)
      if (s->state == SessionState::Warm) fn(*s);
  }
  // Closes every warm slot.
  void closeAllWarm();
  size_t warmCount() const { return warmCount_; }
  static constexpr size_t kMaxWarm = 1024;

  UdpSession* at(uint32_t slot) { return slot < slots_.size() ? slots_[slot].get() : nullptr; }
  size_t live() const { return live_; }
  size_t liveOn(uint32_t listener) const { return listener < lists_.size() ? lists_[listener].count : 0; }
  // The listener's least recently active session; null if it has none.
  UdpSession* oldest(uint32_t listener) { return listener < lists_.size() ? lists_[listener].head : nullptr; }

  // fn(UdpSession&) for each live session; fn may retire the one it is given.
  template <typename Fn>
  void forEach(Fn&& fn) {
    for (auto& s : slots_)
      if (s->state == SessionState::Active) fn(*s);
  }
  // fn(UdpSession&) for each live session of backend `key`; fn may retire the one it is given.
  template <typename Fn>
  void forEachOfBackend(uint32_t key, Fn&& fn) {
    auto it = byBackend_.find(key);
    if (it == byBackend_.end()) return;
    for (UdpSession* s = it->second; s;) {
      UdpSession* next = s->backendNext;
      fn(*s);
      s = next;
    }
  }
  // The backend keys that have sessions now.
  std::vector<uint32_t> backendKeys() const;

 private:
  struct ListenerList {
    UdpSession* head = nullptr;
    UdpSession* tail = nullptr;
    size_t count = 0;
  };
  void unlinkLru(UdpSession& s);
  void appendLru(UdpSession& s);
  void unlinkBackend(UdpSession& s);
  void appendWarm(UdpSession& s);
  void unlinkWarm(UdpSession& s);
  void activate(UdpSession& s, const SessionKey& key, int64_t nowMs);

  uint32_t workerIndex_;
  uint64_t nextSerial_ = 1;
  size_t live_ = 0;
  std::vector<std::unique_ptr<UdpSession>> slots_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> retired_;
  std::unordered_map<SessionKey, uint32_t, SessionKeyHash> warmByKey_;
  // Warm slots, least recently active first (linked through lruPrev/lruNext, which a warm slot,
  // being in no listener's list, does not otherwise use).
  UdpSession* warmHead_ = nullptr;
  UdpSession* warmTail_ = nullptr;
  size_t warmCount_ = 0;
  std::unordered_map<SessionKey, uint32_t, SessionKeyHash> byKey_;
  std::vector<ListenerList> lists_;
  std::unordered_map<uint32_t, UdpSession*> byBackend_;  // head of each backend's list
};

}  // namespace lb4
