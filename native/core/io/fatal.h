#pragma once
// The end for a state that cannot happen. A system call that fails in a way only a bug in lb4
// explains (epoll_wait on a descriptor that is not an epoll instance, epoll_ctl on a descriptor
// lb4 closed or registered twice) must not be retried or ignored: the worker would spin or lose
// descriptors silently. It says what failed on stderr and aborts, leaving a core to look at.

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lb4 {

namespace detail {
// strerror_r comes in two shapes: GNU's returns the text, XSI's fills the buffer.
inline const char* errorText(const char* text, const char*) { return text; }
inline const char* errorText(int, const char* buffer) { return buffer; }
}  // namespace detail

// Prints "lb4: fatal: <syscall>: <strerror> (errno N)" to stderr and aborts. Any thread.
[[noreturn]] inline void fatalSyscall(const char* syscall, int error) {
  char buffer[128] = "unknown error";
  const char* text = detail::errorText(strerror_r(error, buffer, sizeof(buffer)), buffer);
  std::fprintf(stderr, "lb4: fatal: %s: %s (errno %d)\n", syscall, text, error);
  std::fflush(stderr);
  std::abort();
}

}  // namespace lb4
