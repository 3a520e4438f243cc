// Reading a client's ClientHello into its flow's buffer. See hello_reader.h.

#include "sni/hello_reader.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "io/sys_result.h"

namespace lb4 {

namespace {

// Most hellos fit the first allocation; post-quantum ones need one doubling.
constexpr uint32_t kFirstCapacity = 2048;

void grow(HelloBuffer& b) {
  uint32_t capacity = b.capacity == 0 ? kFirstCapacity : b.capacity * 2;
  if (capacity > kClientHelloMaxBytes) capacity = kClientHelloMaxBytes;
  std::unique_ptr<char[]> bytes(new char[capacity]);
  if (b.size > 0) std::memcpy(bytes.get(), b.bytes.get(), b.size);
  b.bytes = std::move(bytes);
  b.capacity = capacity;
}

}  // namespace

HelloRead readClientHello(int fd, bool peerClosed, HelloBuffer& b) {
  HelloRead out;
  while (!b.endOfStream && b.size < kClientHelloMaxBytes) {
    if (b.size == b.capacity) grow(b);
    SysResult r = sysResult(recv(fd, b.bytes.get() + b.size, b.capacity - b.size, MSG_DONTWAIT));
    if (r.ok() && r.value > 0) {
      b.size += static_cast<uint32_t>(r.value);
    } else if (r.ok()) {
      b.endOfStream = true;
    } else if (r.error == EAGAIN) {
      break;
    } else if (r.error != EINTR) {
      out.status = HelloReadStatus::Failed;
      out.error = r.error;
      return out;
    }
  }
  const bool full = b.size >= kClientHelloMaxBytes;
  // Nothing the parser could answer differently yet.
  if (b.size < b.need && !b.endOfStream && !full) return out;
  out.hello = parseClientHello(reinterpret_cast<const uint8_t*>(b.bytes.get()), b.size);
  switch (out.hello.status) {
    case HelloParseStatus::NeedMore:
      // The end of the stream came before a whole hello, or the bound was reached without one
      // (the parser says oversized before that, so this is a guard, not a path).
      if (b.endOfStream || peerClosed || full) {
        out.status = HelloReadStatus::Rejected;
        out.hello.status = HelloParseStatus::Error;
        out.hello.error = full ? HelloError::Oversized : HelloError::Malformed;
      } else {
        b.need = static_cast<uint32_t>(out.hello.needBytes);
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
