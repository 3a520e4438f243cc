// Peeking at a client's ClientHello. See hello_reader.h.

#include "sni/hello_reader.h"

#include <cerrno>

#include "io/peek.h"

namespace lb4 {

HelloRead peekClientHello(int fd, bool peerClosed) {
  HelloRead out;
  // Worker thread only, one call at a time: one buffer per thread instead of 16 KiB of stack.
  static thread_local uint8_t buffer[kClientHelloMaxBytes];
  const SysResult peeked = peekSocket(fd, buffer, sizeof(buffer));
  if (!peeked.ok()) {
    if (peeked.error == EAGAIN) return out;
    out.status = HelloReadStatus::Failed;
    out.error = peeked.error;
    return out;
  }
  out.hello = parseClientHello(buffer, static_cast<size_t>(peeked.value));
  switch (out.hello.status) {
    case HelloParseStatus::NeedMore:
      // The end of the stream came before a whole hello, or the bound was reached without one
      // (the parser says oversized before that, so this is a guard, not a path).
      if (peeked.value == 0 || peerClosed || static_cast<size_t>(peeked.value) >= sizeof(buffer)) {
        out.status = HelloReadStatus::Rejected;
        out.hello.status = HelloParseStatus::Error;
        out.hello.error = peeked.value > 0 && static_cast<size_t>(peeked.value) >= sizeof(buffer) ? HelloError::Oversized
                                                                                                   : HelloError::Malformed;
      }
      return out;
    case HelloParseStatus::Error:
      out.status = HelloReadStatus::Rejected;
      return out;
    case HelloParseStatus::Done:
      out.status = HelloReadStatus::Done;
      return out;
  }
  return out;
}

}  // namespace lb4
