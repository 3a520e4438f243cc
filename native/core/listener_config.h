#pragma once
// A listener as the control plane configures it, whatever its protocol.

#include <string>

#include "engine_options.h"
#include "enums.h"
#include "io/socket_address.h"

namespace lb4 {

struct ListenerConfig {
  std::string name;
  Protocol protocol = Protocol::Tcp;
  SocketAddress address;
  bool dualStack = false;  // for "::": accept IPv4 clients too (IPV6_V6ONLY off)
  int backlog = static_cast<int>(optionDefault(EngineOption::backlog));
  Algorithm algorithm = Algorithm::RoundRobin;
};

}  // namespace lb4
