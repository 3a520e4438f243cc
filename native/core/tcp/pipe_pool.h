#pragma once
// A worker's pool of pipes for splice(2). Contract: a pipe is taken with get() when a direction
// has bytes to move, and given back with put() only when it is empty, so a pooled pipe never
// holds another flow's bytes. A pipe whose state is unknown (an error, or bytes left in it when a
// flow dies) goes to kill(), which closes it. Pipes cost descriptors and pinned kernel memory
// (an unprivileged user's total is capped), so idle flows hold none and the pool keeps at most
// `maxIdle` spare pipes (of both sizes). Single-threaded: owned by one worker.
//
// Two sizes. Every pipe starts at the standard capacity (the kernel's 64 KiB by default). A
// direction that fills a whole standard pipe in one read, or reads bulk bytes again in the same
// wake-up after its pipe was emptied (a pipe is also full at 16 buffers, one per MSS-sized
// packet from a NIC: about 23 KiB), has more queued than a pipe holds: with
// the pool adaptive (no fixed `pipeSize`), it may take a large pipe (1 MiB) instead, which moves
// what the socket holds in one splice each way and so halves the wake-ups (and the context
// switches of the peers it wakes) per byte. Large pipes are few: at most kMaxLargePipes per
// worker, in use and spare together, so the bytes a worker can hold in pipes stay bounded
// (32 MiB) however many bulk flows it carries; past that, flows keep standard pipes. An
// unprivileged process gets fewer: its workers' large pipes together stay within half of the
// user's pipe budget (largePipesPerWorker).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/unique_fd.h"

namespace lb4 {

// A pipe's two ends, owned: a Pipe that goes out of scope closes both. Move-only.
struct Pipe {
  UniqueFd readEnd;
  UniqueFd writeEnd;
  int capacity = 0;  // bytes it holds when full, as the kernel reports it
  bool large = false;
  bool valid() const { return static_cast<bool>(readEnd); }
  int readFd() const { return readEnd.get(); }
  int writeFd() const { return writeEnd.get(); }
};

class PipePool {
 public:
  static constexpr int kLargePipeSize = 1 << 20;
  static constexpr size_t kMaxLargePipes = 32;

  // `pipeSize` 0: standard pipes at the kernel's default capacity, and at most `maxLarge` large
  // pipes for bulk directions. Otherwise F_SETPIPE_SZ asks every pipe for `pipeSize` and none is
  // large.
  PipePool(size_t maxIdle, int pipeSize, size_t maxLarge = kMaxLargePipes);

  // How many large pipes each of `workers` workers may hold so that all of them together take at
  // most half of an unprivileged user's pipe budget (`softPages`: fs.pipe-user-pages-soft; 0: no
  // budget). Past that budget the kernel gives every new pipe of the user 2 pages instead of 16:
  // lb4's standard pipes and the user's other programs' alike. A process with CAP_SYS_RESOURCE
  // or CAP_SYS_ADMIN (`privileged`) has no budget. At most kMaxLargePipes.
  static size_t largePipesPerWorker(uint64_t softPages, bool privileged, uint32_t workers, long pageSize);
  // The same for this process: reads the sysctls and the process's effective capabilities.
  static size_t largePipesPerWorker(uint32_t workers);
  // The user's pipe budget in pages from the texts of fs.pipe-user-pages-soft and -hard: the
  // smaller limit that is set (0: neither). Unreadable or garbage text counts as the kernel's
  // default (16384 soft, 0 hard): not knowing the budget is no reason to assume there is none.
  static uint64_t pipeBudgetPages(const char* softText, const char* hardText);
  // Whether the kernel exempts a process from that budget, from /proc/self/status: CapEff holds
  // CAP_SYS_RESOURCE or CAP_SYS_ADMIN, and the process is in the initial user namespace, the one
  // the kernel's capable() asks; capabilities held inside a user namespace (a rootless
  // container, `unshare -U -r`) do not exempt. No readable CapEff: not exempt.
  static bool exemptFromPipeBudget(const char* procStatus, bool initialUserNamespace);
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // Returns false when the kernel has no pipe to give (EMFILE, ENFILE, ENOMEM): the caller then
  // copies through user space instead of splicing.
  bool get(Pipe& out);
  // A large pipe, when the pool is adaptive and under its large-pipe budget; false otherwise
  // (also when the kernel refuses to grow a pipe past an unprivileged user's budget), and the
  // caller takes a standard one with get().
  bool getLarge(Pipe& out);
  // `p` must be empty. Takes `p` (pooled or closed) and leaves it invalid.
  void put(Pipe& p);
  // Closes `p`, whatever it holds, and leaves it invalid.
  void kill(Pipe& p);

  // Whether a direction that fills a standard pipe should ask for a large one.
  bool adaptive() const { return requestedSize_ == 0; }
  size_t idle() const { return idle_.size() + idleLarge_.size(); }
  size_t inUse() const { return inUse_; }
  size_t largeOpen() const { return largeOpen_; }

 private:
  bool open(Pipe& out, int size);
  void release(Pipe& p);

  size_t maxIdle_;
  int requestedSize_;
  size_t maxLarge_;
  size_t inUse_ = 0;
  size_t largeOpen_ = 0;  // large pipes in use or spare
  bool largeRefused_ = false;  // the kernel refused to grow a pipe: stop asking
  std::vector<Pipe> idle_;
  std::vector<Pipe> idleLarge_;
};

}  // namespace lb4
