#pragma once
// A listener's PROXY protocol settings: the header it sends each backend, and the networks it
// takes one from. Set when the listener opens; a reload may replace them (SetListenerProxy), and
// flows accepted after that use the new ones.

#include "enums.h"
#include "proxy_protocol/trusted_networks.h"

namespace lb4 {

struct ProxySettings {
  ProxyVersion send = ProxyVersion::None;
  // Empty: clients send no header. Otherwise every client must be in one of these networks and
  // start with a header (either version) within the header timeout.
  TrustedNetworks accept;
};

}  // namespace lb4
