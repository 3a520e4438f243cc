#pragma once
// A listener's traffic policy: who may connect (access lists) and how much (limits). Set when the
// listener opens; a reload may replace it (SetListenerPolicy), and flows admitted after that are
// judged by the new one. Each worker holds its own copy, read on every accept without a lock.
//
// Where the checks run: at accept, on the connection's own peer address. On a listener that
// takes PROXY protocol headers the peer is a proxy, trusted by `acceptProxy`, and the client is
// the one the header names, so there the access lists and the per-source limits run once the
// header is accepted, on the header's source (HAProxy's `tcp-request content` rather than
// `tcp-request connection`); the listener's own cap still runs at accept.

#include <cstdint>

#include "policy/network_set.h"

namespace lb4 {

struct ListenerPolicy {
  // Deny wins; a non-empty allow list refuses every address outside it.
  NetworkSet allow;
  NetworkSet deny;
  // 0: no limit. Concurrent flows of the listener, over every worker (TCP).
  uint32_t maxConnections = 0;
  // 0: no limit. Per source (an IPv4 address, an IPv6 /64), per worker (TCP): concurrent flows,
  // and new flows per second (a token bucket holding at most one second's worth).
  uint32_t sourceMaxConnections = 0;
  uint32_t sourceRatePerSecond = 0;
  // Flows that wait when every eligible backend is at its maxConnections; 0: refuse them at once.
  uint32_t queueSize = 0;
  int64_t queueTimeoutMs = 0;

  bool admits(const SocketAddress& client) const {
    if (deny.contains(client)) return false;
    return allow.empty() || allow.contains(client);
  }
  bool limitsSources() const { return sourceMaxConnections != 0 || sourceRatePerSecond != 0; }
};

}  // namespace lb4
