#pragma once
// The epoll instance of one worker: registration and one wait at a time, nothing more. Each
// registration carries a 64-bit tag that the worker decodes (io/epoll_tag.h).

#include <sys/epoll.h>

#include <cstdint>
#include <vector>

#include "io/sys_result.h"
#include "io/unique_fd.h"

namespace lb4 {

// epoll_ctl failures that are a shortage, not a bug: kernel memory (ENOMEM), or the user's
// limit on watched descriptors, /proc/sys/fs/epoll/max_user_watches (ENOSPC).
inline bool isEpollShortage(int err) { return err == ENOMEM || err == ENOSPC; }

class EpollLoop {
 public:
  explicit EpollLoop(int maxEvents = 256) : events_(maxEvents) {}
  SysResult init();
  // Registers `fd` and returns any error (for set-up, where the caller reports it).
  SysResult add(int fd, uint32_t events, uint64_t tag);
  // Registers `fd` on the hot path. Only a shortage (isEpollShortage) comes back, for the
  // caller to handle; any other error means lb4 passed a descriptor it does not own or had
  // registered already, and is fatal.
  SysResult watch(int fd, uint32_t events, uint64_t tag);
  // Closing a descriptor removes it from the set too; remove() is for descriptors that stay
  // open. Removing a descriptor that is not registered is fatal (a bookkeeping bug).
  void remove(int fd);
  // Waits up to `timeoutMs` (-1: forever) and returns how many events are ready, 0 on EINTR.
  // Any other failure is fatal: looping on it would spin the worker.
  int wait(int timeoutMs);
  const epoll_event& event(int i) const { return events_[i]; }

 private:
  UniqueFd epfd_;
  std::vector<epoll_event> events_;
};

}  // namespace lb4
