#include "tcp/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

namespace lb4 {

PipePool::PipePool(size_t maxIdle, int pipeSize) : maxIdle_(maxIdle), requestedSize_(pipeSize) {}

// A new pipe of `size` bytes (0: the kernel's default). Past the per-user pipe budget the
// kernel refuses to grow a pipe (EPERM), and it makes new pipes smaller than the default, so the
// capacity is what the kernel reports, never what was asked.
bool PipePool::open(Pipe& out, int size) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  out.readEnd.reset(fds[0]);
  out.writeEnd.reset(fds[1]);
  out.large = false;
  int got = size > 0 ? fcntl(out.writeFd(), F_SETPIPE_SZ, size) : -1;
  if (got < 0) got = fcntl(out.writeFd(), F_GETPIPE_SZ);
  out.capacity = got > 0 ? got : 4096;
  return true;
}

bool PipePool::get(Pipe& out) {
  if (!idle_.empty()) {
    out = std::move(idle_.back());
    idle_.pop_back();
  } else if (!open(out, requestedSize_)) {
    return false;
  }
  ++inUse_;
  return true;
}

bool PipePool::getLarge(Pipe& out) {
  if (!adaptive()) return false;
  if (!idleLarge_.empty()) {
    out = std::move(idleLarge_.back());
    idleLarge_.pop_back();
    ++inUse_;
    return true;
  }
  if (largeRefused_ || largeOpen_ >= kMaxLargePipes) return false;
  if (!open(out, kLargePipeSize)) return false;
  if (out.capacity < kLargePipeSize) {
    // Refused (an unprivileged user past fs.pipe-user-pages-soft): this pipe serves as a
    // standard one, and the pool stops asking, one failed fcntl() instead of one per bulk read.
    largeRefused_ = true;
    ++inUse_;
    return true;
  }
  out.large = true;
  ++largeOpen_;
  ++inUse_;
  return true;
}

void PipePool::release(Pipe& p) {
  if (p.large) --largeOpen_;
  p = Pipe{};  // closes both ends
}

void PipePool::put(Pipe& p) {
  if (!p.valid()) return;
  --inUse_;
  // Spares of both sizes together stay within maxIdle.
  if (idle() >= maxIdle_) {
    release(p);
  } else if (p.large) {
    idleLarge_.push_back(std::move(p));
  } else {
    idle_.push_back(std::move(p));
  }
}

void PipePool::kill(Pipe& p) {
  if (!p.valid()) return;
  --inUse_;
  release(p);
}

}  // namespace lb4
