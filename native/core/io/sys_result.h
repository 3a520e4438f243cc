#pragma once
// A system call's outcome: the value it returned and the errno that came with it, captured
// together at the call site so no later call can overwrite the errno before it is read.

#include <cerrno>
#include <sys/types.h>

namespace lb4 {

struct SysResult {
  ssize_t value;
  int error;  // 0 when value >= 0
  bool ok() const { return value >= 0; }
};

inline SysResult sysResult(ssize_t rc) { return rc < 0 ? SysResult{rc, errno} : SysResult{rc, 0}; }

// Network errors that end one flow but say nothing about lb4 itself.
inline bool isConnectionError(int err) {
  return err == ECONNRESET || err == EPIPE || err == ETIMEDOUT || err == ECONNREFUSED ||
         err == EHOSTUNREACH || err == ENETUNREACH || err == ECONNABORTED || err == ENOTCONN;
}

}  // namespace lb4
