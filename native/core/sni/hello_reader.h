#pragma once
// Looks at a client's TLS ClientHello in its socket without taking it out: the bytes are peeked,
// so once a backend is chosen the splice pump forwards them as the first bytes of the flow,
// exactly as the client sent them. A hello that arrives in pieces costs nothing to wait for (the
// kernel holds it); the peek is bounded by kClientHelloMaxBytes.

#include <cstdint>

#include "sni/client_hello.h"

namespace lb4 {

enum class HelloReadStatus : uint8_t {
  Waiting,   // no whole hello yet: wait for the socket to be readable again
  Done,      // `hello` is whole
  Rejected,  // `hello.error` says why (a client that ended its stream first sent a malformed one)
  Failed,    // the socket failed (`error` holds errno): the client reset
};

struct HelloRead {
  HelloReadStatus status = HelloReadStatus::Waiting;
  ClientHello hello;
  int error = 0;
};

// Peeks at the nonblocking socket `fd`. `peerClosed`: its FIN was already reported, so bytes
// that are not a whole hello now never will be.
HelloRead peekClientHello(int fd, bool peerClosed);

}  // namespace lb4
