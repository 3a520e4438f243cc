#pragma once
// Hands commands from the control thread to one worker: a short mutex-guarded queue plus an
// eventfd in the worker's epoll set. As in libuv's async handle, an atomic flag is checked first,
// so a burst of posts costs one write(2) and the worker reads the eventfd once.

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "io/sys_result.h"
#include "io/unique_fd.h"

namespace lb4 {

template <typename T>
class WakeQueue {
 public:
  SysResult init() {
    SysResult r = sysResult(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (r.ok()) fd_.reset(static_cast<int>(r.value));
    return r;
  }
  int fd() const { return fd_.get(); }

  // Any thread.
  void post(T item) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      items_.push_back(std::move(item));
    }
    if (!pending_.exchange(true, std::memory_order_acq_rel)) {
      uint64_t one = 1;
      ssize_t rc = write(fd_.get(), &one, sizeof(one));
      (void)rc;  // EAGAIN means the counter is already non-zero: the worker will wake anyway
    }
  }

  // Worker thread, on the eventfd's readiness: takes everything posted so far.
  std::vector<T> take() {
    uint64_t count;
    ssize_t rc = read(fd_.get(), &count, sizeof(count));
    (void)rc;
    pending_.store(false, std::memory_order_release);
    std::vector<T> out;
    std::lock_guard<std::mutex> lock(mutex_);
    out.swap(items_);
    return out;
  }

 private:
  UniqueFd fd_;
  std::atomic<bool> pending_{false};
  std::mutex mutex_;
  std::vector<T> items_;
};

}  // namespace lb4
