// Taking a PROXY protocol header off a client socket. See header_reader.h.

#include "proxy_protocol/header_reader.h"

#include <sys/socket.h>

#include <cerrno>

#include "io/peek.h"
#include "proxy_protocol/header_parser.h"

namespace lb4 {

HeaderRead readProxyHeader(int fd, bool peerClosed) {
  HeaderRead out;
  // One byte more than the longest header accepted: a full buffer that parses as "need more"
  // cannot happen, since the parser calls a header oversized at the limit.
  uint8_t buffer[kProxyHeaderMaxLength + 1];
  const SysResult peeked = peekSocket(fd, buffer, sizeof(buffer));
  if (!peeked.ok()) {
    if (peeked.error == EAGAIN) return out;
    out.status = HeaderReadStatus::Failed;
    out.error = peeked.error;
    return out;
  }
  out.header = parseProxyHeader(buffer, static_cast<size_t>(peeked.value));
  switch (out.header.status) {
    case ProxyParseStatus::NeedMore:
      // recv() returned 0 (the end of stream) or a part of a header the FIN already followed.
      if (peeked.value == 0 || peerClosed) {
        out.status = HeaderReadStatus::Rejected;
        out.header.status = ProxyParseStatus::Error;
        out.header.error = ProxyHeaderError::Malformed;
      }
      return out;
    case ProxyParseStatus::Error:
      out.status = HeaderReadStatus::Rejected;
      return out;
    case ProxyParseStatus::Done:
      break;
  }
  // The header's bytes are in the receive queue (just peeked, and only this thread reads this
  // socket), so this read takes all of them at once.
  SysResult consumed;
  do {
    consumed = sysResult(recv(fd, buffer, out.header.length, MSG_DONTWAIT));
  } while (!consumed.ok() && consumed.error == EINTR);
  if (!consumed.ok() || static_cast<size_t>(consumed.value) != out.header.length) {
    out.status = HeaderReadStatus::Failed;
    out.error = consumed.ok() ? EIO : consumed.error;
    return out;
  }
  out.status = HeaderReadStatus::Accepted;
  return out;
}

}  // namespace lb4
