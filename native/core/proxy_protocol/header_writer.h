#pragma once
// Writes the PROXY protocol header lb4 sends a backend first on each flow: the flow's client and
// the address that client connected to. Both addresses as one family (TCP4 or TCP6): an IPv4
// address beside an IPv6 one is written in its IPv4-mapped IPv6 form, and an IPv4-mapped IPv6
// pair (a dual-stack listener's IPv4 client) as the IPv4 addresses it stands for.

#include <cstddef>
#include <cstdint>

#include "enums.h"
#include "io/socket_address.h"
#include "proxy_protocol/proxy_header.h"

namespace lb4 {

// Writes the header of `version` (V1 or V2) into `out`; returns its length (0 for None).
// `datagram`: a UDP session's header, which only v2 can say (UDP4/UDP6: protocol byte 0x12 or
// 0x22); v1 has no word for UDP, so a datagram header of v1 is not written (0).
// `uniqueId` (v2, non-zero): the flow's or session's id, as connections() and the access log
// show it, in a PP2_TYPE_UNIQUE_ID TLV (0x05) as decimal digits, so that a backend's log can be
// joined with lb4's. It is the one TLV lb4 has something true to put in: it forwards bytes, so
// it knows no ALPN, authority (SNI), TLS details or network namespace of the client's.
size_t writeProxyHeader(ProxyVersion version, const SocketAddress& source, const SocketAddress& destination,
                        uint8_t out[kProxyHeaderWriteMax], bool datagram = false, uint64_t uniqueId = 0);

}  // namespace lb4
