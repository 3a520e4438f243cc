#pragma once
// A listener's PROXY protocol settings: the header it sends each backend, and the networks it
// takes one from. Set when the listener opens; a reload may replace them (SetListenerProxy), and
// flows accepted after that use the new ones.

#include "enums.h"
#include "policy/network_set.h"
#include "sni/sni_routes.h"

namespace lb4 {

struct ProxySettings {
  ProxyVersion send = ProxyVersion::None;
  // Empty: clients send no header. Otherwise every client must be in one of these networks and
  // start with a header (either version) within the header timeout. The same network set the
  // access lists use.
  NetworkSet accept;
  // Routing by TLS server name (sni/): off, or the routes from names to backend pools. It rides
  // with the PROXY protocol settings because it is the same kind of thing: what a listener does
  // with a client's first bytes before it connects, set at open and replaced by a reload.
  SniRoutes sni;
};

}  // namespace lb4
