#pragma once
// Reads a client's TLS ClientHello off its socket into the flow's own buffer, which the splice
// pump later sends to the backend first, byte for byte as the client sent it (HAProxy keeps the
// hello in its buffer the same way). Taking the bytes out, rather than peeking at them in the
// socket, keeps every look cheap: a hello sent a byte per TCP segment would otherwise leave
// thousands of one-byte packets in the receive queue, each peek walking all of them (a 16 KiB
// hello cost about a second of CPU). And the parser is asked again only once the bytes it said
// it needs are there, so a hello in a thousand records is parsed a few dozen times, not a
// thousand. The buffer grows with the hello, to at most kClientHelloMaxBytes.

#include <cstdint>
#include <memory>

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

// The bytes of one client's hello read so far (and whatever it sent after, up to the bound).
struct HelloBuffer {
  std::unique_ptr<char[]> bytes;
  uint32_t size = 0;
  uint32_t capacity = 0;
  uint32_t need = 1;        // parse again once `size` reaches this (the parser's needBytes)
  bool endOfStream = false; // the client's FIN was read: pass it on after the buffered bytes
};

// Reads what the nonblocking socket `fd` has into `buffer` (until EAGAIN, the FIN or the bound),
// then parses if there is enough to tell. `peerClosed`: the FIN was already reported by epoll.
HelloRead readClientHello(int fd, bool peerClosed, HelloBuffer& buffer);

}  // namespace lb4
