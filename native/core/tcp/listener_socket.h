#pragma once
// Listening sockets: one per worker per listener, in one SO_REUSEPORT group, so the kernel
// spreads new connections across the workers and no accept lock is needed.

#include <cstdint>
#include <string>
#include <vector>

#include "engine_options.h"
#include "enums.h"
#include "io/socket_address.h"
#include "io/unique_fd.h"

namespace lb4 {

struct ListenerConfig {
  std::string name;
  SocketAddress address;
  bool dualStack = false;  // for "::": accept IPv4 clients too (IPV6_V6ONLY off)
  int backlog = static_cast<int>(optionDefault(EngineOption::backlog));
  Algorithm algorithm = Algorithm::RoundRobin;
};

struct SocketError {
  int error = 0;
  const char* syscall = "";
};

// Opens `count` reuseport sockets bound to `config.address` and listening. A port of 0 is chosen
// by the kernel for the first socket and reused for the rest; `bound` gets the final address.
//
// SO_REUSEPORT would let the group join any other reuseport socket of the same user on that
// address, so an address already in use would not be noticed. A probe socket without
// SO_REUSEPORT binds first: it fails with EADDRINUSE if anything listens there.
bool openListenerGroup(const ListenerConfig& config, size_t count, std::vector<UniqueFd>& out,
                       SocketAddress& bound, SocketError& err);

}  // namespace lb4
