#include "tcp/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

namespace lb4 {

namespace {
constexpr int kDefaultPipeCapacity = 65536;

void closePipe(Pipe& p) {
  if (p.readFd >= 0) ::close(p.readFd);
  if (p.writeFd >= 0) ::close(p.writeFd);
  p = Pipe{};
}
}  // namespace

PipePool::PipePool(size_t maxIdle, int pipeSize)
    : maxIdle_(maxIdle), requestedSize_(pipeSize), capacity_(pipeSize > 0 ? pipeSize : kDefaultPipeCapacity) {}

PipePool::~PipePool() {
  for (auto& p : idle_) closePipe(p);
}

bool PipePool::get(Pipe& out) {
  if (!idle_.empty()) {
    out = idle_.back();
    idle_.pop_back();
    ++inUse_;
    return true;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  out.readFd = fds[0];
  out.writeFd = fds[1];
  if (requestedSize_ > 0) {
    // Past the per-user pipe budget the kernel refuses to grow a pipe (EPERM); the pipe still
    // works at its default size, so keep it and remember the size that stuck.
    int got = fcntl(out.writeFd, F_SETPIPE_SZ, requestedSize_);
    if (got < 0) got = fcntl(out.writeFd, F_GETPIPE_SZ);
    if (got > 0 && got < capacity_) capacity_ = got;
  }
  ++inUse_;
  return true;
}

void PipePool::put(Pipe& p) {
  if (!p.valid()) return;
  --inUse_;
  if (idle_.size() < maxIdle_) {
    idle_.push_back(p);
    p = Pipe{};
  } else {
    closePipe(p);
  }
}

void PipePool::kill(Pipe& p) {
  if (!p.valid()) return;
  --inUse_;
  closePipe(p);
}

}  // namespace lb4
