#include "tcp/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>

namespace lb4 {

PipePool::PipePool(size_t maxIdle, int pipeSize, size_t maxLarge)
    : maxIdle_(maxIdle), requestedSize_(pipeSize), maxLarge_(maxLarge) {}

size_t PipePool::largePipesPerWorker(uint64_t softPages, bool privileged, uint32_t workers, long pageSize) {
  if (privileged || softPages == 0 || pageSize <= 0) return kMaxLargePipes;
  const uint64_t pagesPerLarge = std::max<uint64_t>(1, kLargePipeSize / static_cast<uint64_t>(pageSize));
  const uint64_t perWorker = softPages / 2 / pagesPerLarge / std::max<uint32_t>(1, workers);
  return static_cast<size_t>(std::min<uint64_t>(kMaxLargePipes, perWorker));
}

size_t PipePool::largePipesPerWorker(uint32_t workers) {
  uint64_t softPages = 0;
  std::ifstream sysctl("/proc/sys/fs/pipe-user-pages-soft");
  if (!(sysctl >> softPages)) softPages = 0;  // no such sysctl: the kernel has no budget either
  // The kernel exempts CAP_SYS_RESOURCE (bit 24) and CAP_SYS_ADMIN (bit 21).
  bool privileged = false;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    const uint64_t caps = std::strtoull(line.c_str() + 7, nullptr, 16);
    privileged = (caps >> 24 & 1) || (caps >> 21 & 1);
    break;
  }
  return largePipesPerWorker(softPages, privileged, workers, sysconf(_SC_PAGESIZE));
}

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
  if (largeRefused_ || largeOpen_ >= maxLarge_) return false;
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
