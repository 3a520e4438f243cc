#include "udp/session_table.h"

#include <algorithm>

#include "balance/hash.h"

namespace lb4 {

size_t SessionKeyHash::operator()(const SessionKey& k) const {
  return static_cast<size_t>(mixHash(fnv1a64(reinterpret_cast<const uint8_t*>(&k), sizeof(k))));
}

UdpSession* SessionTable::find(const SessionKey& key) {
  auto it = byKey_.find(key);
  return it == byKey_.end() ? nullptr : slots_[it->second].get();
}

UdpSession& SessionTable::open(const SessionKey& key, int64_t nowMs) {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
    *slots_[slot] = UdpSession{};
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(std::make_unique<UdpSession>());
  }
  UdpSession& s = *slots_[slot];
  s.slot = slot;
  activate(s, key, nowMs);
  return s;
}

void SessionTable::activate(UdpSession& s, const SessionKey& key, int64_t nowMs) {
  // Ids share the flows' form: unique across workers, below 2^53 for JavaScript. The low byte
  // names the worker; sessions count from the top half of the serials so that a session and a
  // flow of one worker never share an id.
  s.id = ((uint64_t{1} << 44) + nextSerial_++) * 256 + workerIndex_;
  s.state = SessionState::Active;
  s.key = key;
  s.listener = key.listener;
  s.startMs = s.lastActiveMs = nowMs;
  byKey_.emplace(key, s.slot);
  if (s.listener >= lists_.size()) lists_.resize(s.listener + 1);
  appendLru(s);
  ++live_;
}

UdpSession* SessionTable::warm(const SessionKey& key) {
  auto it = warmByKey_.find(key);
  return it == warmByKey_.end() ? nullptr : slots_[it->second].get();
}

UdpSession& SessionTable::reopen(UdpSession& w, int64_t nowMs) {
  unlinkWarm(w);
  // A fresh session in the same slot for the same key, with the socket and what it is connected to.
  UniqueFd upstream = std::move(w.upstream);
  const SocketAddress backendAddress = w.backendAddress;
  const SessionKey key = w.key;
  const uint32_t slot = w.slot, backendKey = w.backendKey;
  w = UdpSession{};
  w.slot = slot;
  w.upstream = std::move(upstream);
  w.backendAddress = backendAddress;
  w.backendKey = backendKey;
  activate(w, key, nowMs);
  return w;
}

void SessionTable::closeAllWarm() {
  while (warmHead_) closeWarm(*warmHead_);
}

void SessionTable::closeWarm(UdpSession& w) {
  if (w.state != SessionState::Warm) return;
  unlinkWarm(w);
  // Like a retired session, the slot and the descriptor are let go between passes: an event
  // already returned for this socket must not find another socket's session in the slot.
  w.state = SessionState::Closed;
  retired_.push_back(w.slot);
}

size_t SessionTable::expireWarm(int64_t cutoffMs) {
  size_t closed = 0;
  while (warmHead_ && warmHead_->lastActiveMs <= cutoffMs) {
    closeWarm(*warmHead_);
    ++closed;
  }
  return closed;
}

void SessionTable::appendWarm(UdpSession& s) {
  s.state = SessionState::Warm;
  s.lruPrev = warmTail_;
  s.lruNext = nullptr;
  if (warmTail_) {
    warmTail_->lruNext = &s;
  } else {
    warmHead_ = &s;
  }
  warmTail_ = &s;
  warmByKey_.emplace(s.key, s.slot);
  ++warmCount_;
}

void SessionTable::unlinkWarm(UdpSession& s) {
  if (s.lruPrev) {
    s.lruPrev->lruNext = s.lruNext;
  } else {
    warmHead_ = s.lruNext;
  }
  if (s.lruNext) {
    s.lruNext->lruPrev = s.lruPrev;
  } else {
    warmTail_ = s.lruPrev;
  }
  s.lruPrev = s.lruNext = nullptr;
  warmByKey_.erase(s.key);
  --warmCount_;
}

void SessionTable::linkBackend(UdpSession& s) {
  UdpSession*& head = byBackend_[s.backendKey];
  s.backendPrev = nullptr;
  s.backendNext = head;
  if (head) head->backendPrev = &s;
  head = &s;
}

void SessionTable::unlinkBackend(UdpSession& s) {
  if (!s.backendCounters) return;
  if (s.backendPrev) {
    s.backendPrev->backendNext = s.backendNext;
  } else {
    auto it = byBackend_.find(s.backendKey);
    if (it != byBackend_.end() && it->second == &s) {
      if (s.backendNext) {
        it->second = s.backendNext;
      } else {
        byBackend_.erase(it);
      }
    }
  }
  if (s.backendNext) s.backendNext->backendPrev = s.backendPrev;
  s.backendPrev = s.backendNext = nullptr;
}

void SessionTable::appendLru(UdpSession& s) {
  ListenerList& l = lists_[s.listener];
  s.lruPrev = l.tail;
  s.lruNext = nullptr;
  if (l.tail) {
    l.tail->lruNext = &s;
  } else {
    l.head = &s;
  }
  l.tail = &s;
  l.count++;
}

void SessionTable::unlinkLru(UdpSession& s) {
  ListenerList& l = lists_[s.listener];
  if (s.lruPrev) {
    s.lruPrev->lruNext = s.lruNext;
  } else {
    l.head = s.lruNext;
  }
  if (s.lruNext) {
    s.lruNext->lruPrev = s.lruPrev;
  } else {
    l.tail = s.lruPrev;
  }
  s.lruPrev = s.lruNext = nullptr;
  l.count--;
}

void SessionTable::touch(UdpSession& s, int64_t nowMs) {
  s.lastActiveMs = nowMs;
  if (lists_[s.listener].tail == &s) return;  // the common case for a busy session: no relinking
  unlinkLru(s);
  appendLru(s);
}

void SessionTable::retire(UdpSession& s, bool keepWarm) {
  if (s.state != SessionState::Active) return;
  unlinkLru(s);
  unlinkBackend(s);
  byKey_.erase(s.key);
  s.state = SessionState::Closed;
  --live_;
  // Warm at once (see the header). A key has one warm socket at most; opening a session uses or
  // closes its key's warm one, so an older one here would be a bug, closed rather than leaked.
  if (keepWarm && s.upstream) {
    if (UdpSession* older = warm(s.key)) closeWarm(*older);
    // At the cap the oldest warm socket goes: a client that asked last is the likeliest to ask again.
    if (warmCount_ >= kMaxWarm) closeWarm(*warmHead_);
    appendWarm(s);
    return;
  }
  retired_.push_back(s.slot);
}

void SessionTable::releaseClosed() {
  for (uint32_t slot : retired_) {
    // The upstream socket closes here rather than at retire(): epoll may still hold an event for
    // it in this pass, and a descriptor number reused at once could be another socket's.
    slots_[slot]->upstream.reset();
    free_.push_back(slot);
  }
  retired_.clear();
}

std::vector<uint32_t> SessionTable::backendKeys() const {
  std::vector<uint32_t> keys;
  keys.reserve(byBackend_.size());
  for (const auto& [key, head] : byBackend_) keys.push_back(key);
  return keys;
}

}  // namespace lb4
