#pragma once
// The data plane's enumerations, each declared once as an X-macro list of (value, name). The
// number of a value is its position in the list: it is what crosses the JS boundary, and the
// binding exports each list of names (as it exports the counters), which lib/native.ts checks
// at load. So a value is only ever appended, and its name is the one the control plane, the
// logs and the metrics use.

#include <cstddef>
#include <cstdint>

namespace lb4 {

// A listener's transport. Each protocol has its own handler on the worker: tcp/TcpProxy for
// flows, udp/UdpProxy for sessions.
#define LB4_PROTOCOLS(X) \
  X(Tcp, "tcp")          \
  X(Udp, "udp")

// How a listener picks a backend for a new flow: one module each in balance/.
#define LB4_ALGORITHMS(X)          \
  X(RoundRobin, "roundrobin")      \
  X(LeastConn, "leastconn")        \
  X(Maglev, "maglev")

// What the flow hash a hashing algorithm (maglev) uses is made of: the client's address alone
// (every connection and session of a client on one backend), or its address and port (each of a
// client's flows placed on its own, so one address behind a NAT spreads over the backends).
#define LB4_HASH_KEYS(X)           \
  X(Address, "address")            \
  X(AddressPort, "address-port")

// Only an `up` backend (with a non-zero weight) takes new flows; `down`, `draining` and
// `maintenance` keep the flows they have.
#define LB4_BACKEND_STATES(X) \
  X(Up, "up")                 \
  X(Down, "down")             \
  X(Draining, "draining")     \
  X(Maintenance, "maintenance")

// Why a flow or a UDP session ended: counted, shown in snapshots and in the access log.
//   done           both directions finished with a FIN
//   client-reset   the client reset (or failed) the connection
//   backend-reset  the backend did
//   idle-timeout   no byte moved for the idle timeout
//   no-backend     no backend could be connected (after retries)
//   drained        still open when a drain timeout ran out
//   error          a local failure (e.g. descriptors ran out mid-flow)
//   evicted        (UDP) the listener's session cap was reached and this was its oldest session
//   responses      (UDP) every response the session's requests expected came back
//   backend-gone   (UDP) its backend was removed, or went down or into maintenance
//   refused        (UDP) the backend's host refused a datagram (ICMP port unreachable)
//   proxy-header   a listener that takes PROXY protocol headers got none it could accept
//                  (untrusted source, malformed, oversized, or too slow): counted by which
//   policy         the listener's traffic policy refused the flow after accepting it (access
//                  lists or source limits on a PROXY protocol header's client, queue full or
//                  queue timeout): counted by which
//   sni            a listener that routes by server name got no ClientHello it could route
//                  (malformed, oversized, too slow, or no route and no default pool)
#define LB4_CLOSE_REASONS(X)        \
  X(Done, "done")                   \
  X(ClientReset, "client-reset")    \
  X(BackendReset, "backend-reset")  \
  X(IdleTimeout, "idle-timeout")    \
  X(NoBackend, "no-backend")        \
  X(Drained, "drained")             \
  X(Error, "error")                 \
  X(Evicted, "evicted")             \
  X(Responses, "responses")         \
  X(BackendGone, "backend-gone")    \
  X(Refused, "refused")              \
  X(ProxyHeader, "proxy-header")    \
  X(Policy, "policy")                \
  X(Sni, "sni")

// Where a TCP flow is in its life.
// A flow on a listener that takes PROXY protocol headers starts awaiting its header, with no
// backend yet. A queued flow waits, with no backend, for one with room (every one that would take
// it was at its maxConnections). A flow on a listener that routes by server name awaits its
// ClientHello before it has a pool to pick a backend from.
#define LB4_FLOW_STATES(X)          \
  X(Connecting, "connecting")       \
  X(Established, "established")     \
  X(Closed, "closed")               \
  X(AwaitingHeader, "awaiting-header") \
  X(Queued, "queued")               \
  X(AwaitingHello, "awaiting-hello")

// The PROXY protocol header a listener sends its backends first on each flow: none, the text
// version 1 or the binary version 2.
#define LB4_PROXY_VERSIONS(X) \
  X(None, "none")             \
  X(V1, "v1")                 \
  X(V2, "v2")

// What every enumeration above offers: its values' count and names, by type.
template <typename E>
struct EnumInfo;

#define LB4_ENUM_VALUE(value, name) value,
#define LB4_ENUM_NAME(value, name) name,
#define LB4_ENUM_ONE(value, name) +1
#define LB4_DEFINE_ENUM(Type, LIST)                                  \
  enum class Type : uint8_t { LIST(LB4_ENUM_VALUE) };                \
  template <>                                                        \
  struct EnumInfo<Type> {                                            \
    static constexpr size_t count = 0 LIST(LB4_ENUM_ONE);           \
    static constexpr const char* names[count] = {LIST(LB4_ENUM_NAME)}; \
  };

LB4_DEFINE_ENUM(Protocol, LB4_PROTOCOLS)
LB4_DEFINE_ENUM(Algorithm, LB4_ALGORITHMS)
LB4_DEFINE_ENUM(HashKey, LB4_HASH_KEYS)
LB4_DEFINE_ENUM(BackendState, LB4_BACKEND_STATES)
LB4_DEFINE_ENUM(CloseReason, LB4_CLOSE_REASONS)
LB4_DEFINE_ENUM(FlowState, LB4_FLOW_STATES)
LB4_DEFINE_ENUM(ProxyVersion, LB4_PROXY_VERSIONS)

#undef LB4_DEFINE_ENUM
#undef LB4_ENUM_ONE
#undef LB4_ENUM_NAME
#undef LB4_ENUM_VALUE

template <typename E>
constexpr size_t enumCount() {
  return EnumInfo<E>::count;
}

// The value's name; "?" for a number outside the list (never from a value made in C++).
template <typename E>
constexpr const char* enumName(E value) {
  const auto i = static_cast<size_t>(value);
  return i < EnumInfo<E>::count ? EnumInfo<E>::names[i] : "?";
}

// The value numbered `n`, when there is one: how numbers from the control plane become values.
template <typename E>
constexpr bool enumFromNumber(uint32_t n, E& out) {
  if (n >= EnumInfo<E>::count) return false;
  out = static_cast<E>(n);
  return true;
}

}  // namespace lb4
