#pragma once
// Reads the server name a TLS client asks for (RFC 6066 server_name) from the bytes it sent
// first, without decrypting anything: the ClientHello travels in clear. A pure function of those
// bytes, like the PROXY protocol parser: the caller (sni/hello_reader) passes what has arrived,
// calls again with more when told NeedMore, and routes when Done. The ClientHello may span
// several TLS records (and so several TCP segments); every prefix of a valid hello gives
// NeedMore, and bytes after the hello change nothing.

#include <cstddef>
#include <cstdint>
#include <string>

namespace lb4 {

// The most record bytes (headers included) lb4 reads to find a whole ClientHello. A typical
// hello is 200-600 bytes; post-quantum key shares bring it to about 1.8 KiB. 16 KiB is one
// record's worth, and what HAProxy's tune.bufsize lets req.ssl_sni see.
constexpr size_t kClientHelloMaxBytes = 16384;

enum class HelloParseStatus : uint8_t { NeedMore, Done, Error };
enum class HelloError : uint8_t {
  None,
  Malformed,  // not TLS, not a ClientHello, or a length or server name that does not add up
  Oversized,  // the ClientHello needs more than the size bound
};

struct ClientHello {
  HelloParseStatus status = HelloParseStatus::NeedMore;
  HelloError error = HelloError::None;
  // Done: whether the hello named a server (host_name), and the name in lower case with no
  // trailing dot, as routes are written.
  bool hasServerName = false;
  std::string serverName;
  // NeedMore: the fewest bytes (from the start) that could make the answer change: the end of
  // the record being read, or the next record's header plus the handshake bytes still missing.
  // A reader holds what arrives until it has that many before asking again, so a hello sent a
  // byte per segment is parsed a few times, not once per byte.
  size_t needBytes = 0;
};

ClientHello parseClientHello(const uint8_t* data, size_t size, size_t maxBytes = kClientHelloMaxBytes);

// Whether `name` (no trailing dot) is a host name lb4 routes by: 1-253 bytes of dot-separated
// labels of 1-63 letters, digits, '-' or '_'. Shared by the parser and the route table.
bool isRoutableHostName(const std::string& name);

}  // namespace lb4
