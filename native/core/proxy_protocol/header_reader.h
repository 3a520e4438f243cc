#pragma once
// Takes a client's PROXY protocol header off its socket, leaving the payload behind it in the
// socket for the splice pump. The bytes are peeked, not read, until a whole header is there:
// a header that arrives in pieces costs nothing to hold (the kernel holds it), and exactly the
// header's bytes are consumed, whatever the client sent behind it in the same segment.

#include <cstdint>

#include "proxy_protocol/proxy_header.h"

namespace lb4 {

enum class HeaderReadStatus : uint8_t {
  Waiting,   // no whole header yet: wait for the socket to be readable again
  Accepted,  // `header` is whole and its bytes are consumed
  Rejected,  // `header.error` says why (a client that ended its stream before a whole header
             // sent a malformed one)
  Failed,    // the socket failed (`error` holds errno): the client reset
};

struct HeaderRead {
  HeaderReadStatus status = HeaderReadStatus::Waiting;
  ProxyHeader header;
  int error = 0;
};

// Reads from the nonblocking socket `fd`. `peerClosed`: its FIN was already reported, so bytes
// that are not a whole header now never will be.
HeaderRead readProxyHeader(int fd, bool peerClosed);

}  // namespace lb4
