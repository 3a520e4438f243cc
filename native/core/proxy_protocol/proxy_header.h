#pragma once
// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2): what a parsed
// header says, and the limits both directions keep to. A header carries the addresses of the
// connection a proxy in front of lb4 accepted (source: the real client; destination: the address
// that client connected to), so lb4 can treat the real client as the flow's client, and so a
// backend behind lb4 can learn it in turn.

#include <cstddef>
#include <cstdint>

#include "io/socket_address.h"

namespace lb4 {

// The 12 bytes every version 2 header starts with; no version 1 header (ASCII "PROXY ") and no
// common protocol's first bytes look like them.
inline constexpr uint8_t kProxyV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// The spec's bound on a version 1 line, "PROXY" to the CRLF included.
inline constexpr size_t kProxyV1MaxLength = 107;
// What lb4 accepts of a version 2 header: the 16 fixed bytes, the addresses, and room for a few
// TLVs (ALPN, authority, unique id). The format allows 64 KiB; a longer header is refused as
// oversized rather than held in memory for each waiting client.
inline constexpr size_t kProxyHeaderMaxLength = 1024;
// The longest header lb4 writes: a version 1 TCP6 line (version 2 needs 16 + 36 bytes).
inline constexpr size_t kProxyHeaderWriteMax = kProxyV1MaxLength;

enum class ProxyParseStatus : uint8_t {
  NeedMore,  // every byte so far fits a header that is not complete yet
  Done,      // a whole header: `length` bytes; the stream's payload starts after them
  Error,     // not a header lb4 accepts: `error` says why
};

enum class ProxyHeaderError : uint8_t {
  None,
  Malformed,  // not the PROXY protocol, or a header that breaks its rules
  Oversized,  // longer than the limit above (a v1 line with no CRLF within 107 bytes)
};

struct ProxyHeader {
  ProxyParseStatus status = ProxyParseStatus::NeedMore;
  ProxyHeaderError error = ProxyHeaderError::None;
  uint8_t version = 0;  // 1 or 2, once known
  size_t length = 0;    // Done: the header's size in bytes
  // Done: the header names no addresses (a v2 LOCAL command, as a proxy's own health check sends,
  // a v1 UNKNOWN line, or a v2 family lb4 does not route, such as AF_UNIX). The connection's own
  // addresses stay the flow's.
  bool local = false;
  SocketAddress source;       // the real client (Done and not local)
  SocketAddress destination;  // the address that client connected to (Done and not local)
};

}  // namespace lb4
