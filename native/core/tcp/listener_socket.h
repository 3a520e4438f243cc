#pragma once
// Listening sockets: one per worker per listener, in one SO_REUSEPORT group, so the kernel
// spreads new connections across the workers and no accept lock is needed.

#include <cstdint>
#include <vector>

#include "io/socket_address.h"
#include "io/unique_fd.h"
#include "listener_config.h"

namespace lb4 {

struct SocketError {
  int error = 0;
  const char* syscall = "";
};

// The socket type a listener of `protocol` opens: SOCK_STREAM for TCP, SOCK_DGRAM for UDP (in
// the same kind of reuseport group, without listen(): the kernel spreads clients' 4-tuples
// across the workers' sockets as it spreads connections).
int listenerSocketType(Protocol protocol);

// 0.0.0.0 or ::, where a datagram listener needs IP_PKTINFO to learn its local address.
bool isWildcard(const SocketAddress& address);

// Opens `count` reuseport sockets of the listener's protocol bound to `config.address`, and
// listening. A port of 0 is chosen by the kernel for the first socket and reused for the rest;
// `bound` gets the final address.
//
// SO_REUSEPORT would let the group join any other reuseport socket of the same user on that
// address, so an address already in use would not be noticed. A probe socket without
// SO_REUSEPORT binds first: it fails with EADDRINUSE if anything listens there.
bool openListenerGroup(const ListenerConfig& config, size_t count, std::vector<UniqueFd>& out,
                       SocketAddress& bound, SocketError& err);

}  // namespace lb4
