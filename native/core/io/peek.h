#pragma once
// Looks at what a socket holds without taking it: the PROXY header and TLS ClientHello readers
// decide from the bytes so far whether a whole header or hello is there, and leave them in the
// socket until it is (so the hello still reaches the backend untouched).

#include <sys/socket.h>

#include <cstddef>

#include "io/sys_result.h"

namespace lb4 {

// recv(MSG_PEEK | MSG_DONTWAIT) into `buffer`, retried on EINTR.
inline SysResult peekSocket(int fd, void* buffer, size_t size) {
  SysResult peeked;
  do {
    peeked = sysResult(recv(fd, buffer, size, MSG_PEEK | MSG_DONTWAIT));
  } while (!peeked.ok() && peeked.error == EINTR);
  return peeked;
}

}  // namespace lb4
