#pragma once
// The epoll instance of one worker: registration and one wait at a time, nothing more. Each
// registration carries a 64-bit tag that the worker decodes (what kind of descriptor, which slot).

#include <sys/epoll.h>

#include <cstdint>
#include <vector>

#include "io/sys_result.h"
#include "io/unique_fd.h"

namespace lb4 {

class EpollLoop {
 public:
  explicit EpollLoop(int maxEvents = 256) : events_(maxEvents) {}
  SysResult init();
  SysResult add(int fd, uint32_t events, uint64_t tag);
  // Closing a descriptor removes it from the set too; remove() is for descriptors that stay open.
  void remove(int fd);
  // Waits up to `timeoutMs` (-1: forever) and returns how many events are ready, 0 on EINTR.
  int wait(int timeoutMs);
  const epoll_event& event(int i) const { return events_[i]; }

 private:
  UniqueFd epfd_;
  std::vector<epoll_event> events_;
};

}  // namespace lb4
