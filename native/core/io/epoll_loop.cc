#include "io/epoll_loop.h"

namespace lb4 {

SysResult EpollLoop::init() {
  SysResult r = sysResult(epoll_create1(EPOLL_CLOEXEC));
  if (r.ok()) epfd_.reset(static_cast<int>(r.value));
  return r;
}

SysResult EpollLoop::add(int fd, uint32_t events, uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  return sysResult(epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev));
}

void EpollLoop::remove(int fd) { epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr); }

int EpollLoop::wait(int timeoutMs) {
  int n = epoll_wait(epfd_.get(), events_.data(), static_cast<int>(events_.size()), timeoutMs);
  return n < 0 ? 0 : n;  // EINTR is the only expected failure; the caller loops anyway
}

}  // namespace lb4
