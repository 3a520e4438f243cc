#pragma once
// A listener as the control plane configures it, whatever its protocol.

#include <string>

#include "engine_options.h"
#include "enums.h"
#include "io/socket_address.h"
#include "policy/listener_policy.h"
#include "proxy_protocol/proxy_settings.h"

namespace lb4 {

struct ListenerConfig {
  std::string name;
  Protocol protocol = Protocol::Tcp;
  SocketAddress address;
  bool dualStack = false;  // for "::": accept IPv4 clients too (IPV6_V6ONLY off)
  // Bind even though the address is not on any interface yet: a virtual IP that the HA peer holds
  // now and this node may take over, so a takeover opens nothing.
  bool freeBind = false;
  int backlog = static_cast<int>(optionDefault(EngineOption::backlog));
  Algorithm algorithm = Algorithm::RoundRobin;
  ProxySettings proxy;  // TCP only
  ListenerPolicy policy;
};

}  // namespace lb4
