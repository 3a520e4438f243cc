#include "io/epoll_loop.h"

#include "io/fatal.h"

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

SysResult EpollLoop::watch(int fd, uint32_t events, uint64_t tag) {
  SysResult r = add(fd, events, tag);
  if (!r.ok() && !isEpollShortage(r.error)) fatalSyscall("epoll_ctl", r.error);
  return r;
}

void EpollLoop::remove(int fd) {
  if (epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr) != 0) fatalSyscall("epoll_ctl", errno);
}

int EpollLoop::wait(int timeoutMs) {
  int n = epoll_wait(epfd_.get(), events_.data(), static_cast<int>(events_.size()), timeoutMs);
  if (n >= 0) return n;
  // EINTR: a signal arrived (workers block them all, but a debugger or a profiler may still
  // interrupt). The caller loops anyway. EBADF, EFAULT, EINVAL cannot happen with a valid
  // instance and buffer.
  if (errno != EINTR) fatalSyscall("epoll_wait", errno);
  return 0;
}

}  // namespace lb4
