#pragma once
// A worker's pool of pipes for splice(2). Contract: a pipe is taken with get() when a direction
// has bytes to move, and given back with put() only when it is empty, so a pooled pipe never
// holds another flow's bytes. A pipe whose state is unknown (an error, or bytes left in it when a
// flow dies) goes to kill(), which closes it. Pipes cost descriptors and pinned kernel memory
// (an unprivileged user's total is capped), so idle flows hold none and the pool keeps at most
// `maxIdle` spare pipes. Single-threaded: owned by one worker.

#include <cstddef>
#include <vector>

#include "io/unique_fd.h"

namespace lb4 {

// A pipe's two ends, owned: a Pipe that goes out of scope closes both. Move-only.
struct Pipe {
  UniqueFd readEnd;
  UniqueFd writeEnd;
  bool valid() const { return static_cast<bool>(readEnd); }
  int readFd() const { return readEnd.get(); }
  int writeFd() const { return writeEnd.get(); }
};

class PipePool {
 public:
  // `pipeSize` 0 keeps the kernel's default capacity (64 KiB); otherwise F_SETPIPE_SZ asks for it.
  PipePool(size_t maxIdle, int pipeSize);
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // Returns false when the kernel has no pipe to give (EMFILE, ENFILE, ENOMEM): the caller then
  // copies through user space instead of splicing.
  bool get(Pipe& out);
  // `p` must be empty. Takes `p` (pooled or closed) and leaves it invalid.
  void put(Pipe& p);
  // Closes `p`, whatever it holds, and leaves it invalid.
  void kill(Pipe& p);

  // The capacity of the pool's pipes in bytes.
  int capacity() const { return capacity_; }
  size_t idle() const { return idle_.size(); }
  size_t inUse() const { return inUse_; }

 private:
  size_t maxIdle_;
  int requestedSize_;
  int capacity_;
  size_t inUse_ = 0;
  std::vector<Pipe> idle_;
};

}  // namespace lb4
