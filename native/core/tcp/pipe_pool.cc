#include "tcp/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

namespace lb4 {

namespace {
constexpr int kDefaultPipeCapacity = 65536;
}  // namespace

PipePool::PipePool(size_t maxIdle, int pipeSize)
    : maxIdle_(maxIdle), requestedSize_(pipeSize), capacity_(pipeSize > 0 ? pipeSize : kDefaultPipeCapacity) {}

bool PipePool::get(Pipe& out) {
  if (!idle_.empty()) {
    out = std::move(idle_.back());
    idle_.pop_back();
    ++inUse_;
    return true;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  out.readEnd.reset(fds[0]);
  out.writeEnd.reset(fds[1]);
  if (requestedSize_ > 0) {
    // Past the per-user pipe budget the kernel refuses to grow a pipe (EPERM); the pipe still
    // works at its default size, so keep it and remember the size that stuck.
    int got = fcntl(out.writeFd(), F_SETPIPE_SZ, requestedSize_);
    if (got < 0) got = fcntl(out.writeFd(), F_GETPIPE_SZ);
    if (got > 0 && got < capacity_) capacity_ = got;
  }
  ++inUse_;
  return true;
}

void PipePool::put(Pipe& p) {
  if (!p.valid()) return;
  --inUse_;
  if (idle_.size() < maxIdle_) {
    idle_.push_back(std::move(p));
  } else {
    p = Pipe{};  // closes both ends
  }
}

void PipePool::kill(Pipe& p) {
  if (!p.valid()) return;
  --inUse_;
  p = Pipe{};  // closes both ends
}

}  // namespace lb4
