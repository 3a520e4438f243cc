#pragma once
// One UDP session: a client's address (and, on a wildcard listener, the local address it sent
// to) bound to one backend through a connected upstream socket. UDP has no connection to follow,
// so a session is lb4's own notion: it starts with a client's first datagram and ends on an idle
// timeout, when its expected responses are back, when the cap evicts it, when its backend goes
// away or refuses, or on a drain. The upstream socket's ephemeral port is the NAT mapping: the
// backend sees lb4's address and that port, and its replies come back to that one socket, so
// they need no lookup to find their client. A session lives and dies on the worker that read
// its first datagram (the kernel's reuseport hash keeps a client's 4-tuple on one socket).

#include <netinet/in.h>

#include <cstdint>
#include <cstring>

#include "counters.h"
#include "enums.h"
#include "io/socket_address.h"
#include "io/unique_fd.h"

namespace lb4 {

// The local address a datagram was sent to, from IP_PKTINFO / IPV6_PKTINFO (wildcard listeners
// only): a reply must leave from it, or the client (which connected its socket, or matches
// replies by address, as resolvers do) drops it.
struct LocalAddress {
  int family = 0;  // 0: none (the listener is bound to one address; the kernel picks it)
  in_addr v4{};
  in6_addr v6{};
  int ifindex = 0;
};

// What the session table finds a session by: the listener, the client's address and port, and
// the local address it spoke to. Made with make(), which zeroes every byte so that padding never
// takes part in comparing or hashing.
struct SessionKey {
  uint32_t listener;
  uint16_t clientPort;
  uint8_t clientFamily;
  uint8_t localFamily;
  uint8_t client[16];
  uint8_t local[16];

  static SessionKey make(uint32_t listener, const SocketAddress& client, const LocalAddress& local) {
    SessionKey k;
    std::memset(&k, 0, sizeof(k));
    k.listener = listener;
    k.clientPort = client.port();
    // By the address's bytes, not the socket family: an IPv4 client is one client whether a
    // socket shows it as a.b.c.d or ::ffff:a.b.c.d.
    k.clientFamily = client.ipBytes(k.client) == 4 ? AF_INET : AF_INET6;
    k.localFamily = static_cast<uint8_t>(local.family);
    if (local.family == AF_INET) std::memcpy(k.local, &local.v4, 4);
    if (local.family == AF_INET6) std::memcpy(k.local, &local.v6, 16);
    return k;
  }
  bool operator==(const SessionKey& o) const { return std::memcmp(this, &o, sizeof(*this)) == 0; }
};

struct SessionKeyHash {
  size_t operator()(const SessionKey& k) const;
};

// Warm: not a session but a slot kept with its upstream socket, still connected to its backend
// and watched by the loop under the slot's tag, for the next session to that backend (see
// SessionTable::retire).
enum class SessionState : uint8_t { Closed, Active, Warm };

struct UdpSession {
  uint64_t id = 0;
  uint32_t slot = 0;
  uint32_t listener = 0;
  SessionState state = SessionState::Closed;
  CloseReason closeReason = CloseReason::Done;

  SessionKey key{};
  SocketAddress client;
  LocalAddress local;
  UniqueFd upstream;  // connected to the backend

  uint32_t backendKey = 0;
  SocketAddress backendAddress;
  CounterSet* backendCounters = nullptr;  // set while the session holds a backend
  bool answered = false;                  // a reply came back: the backend is alive

  // Responses still expected (the responses-per-request setting): each client datagram adds N,
  // each reply takes one; at 0 the session ends. Unused when the setting is 0 (unlimited).
  uint64_t responsesDue = 0;

  int64_t startMs = 0;       // monotonic
  int64_t startUs = 0;       // precise monotonic (monotonicUs), for the session duration histogram
  int64_t lastActiveMs = 0;  // monotonic; idle expiry counts from here
  int64_t reportedMs = 0;    // monotonic; when session replication last reported it to the peer
  uint64_t datagramsUp = 0, datagramsDown = 0;
  uint64_t bytesUp = 0, bytesDown = 0;

  // The listener's list of sessions, least recently active first: the idle sweep stops at the
  // first that is not idle, and the cap evicts the head.
  UdpSession* lruPrev = nullptr;
  UdpSession* lruNext = nullptr;
  // The backend's list of sessions: what closes them when the backend goes away.
  UdpSession* backendPrev = nullptr;
  UdpSession* backendNext = nullptr;
};

}  // namespace lb4
