#include "tcp/pipe_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
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

namespace {

constexpr uint64_t kDefaultPipeUserPagesSoft = 16384;  // PIPE_DEF_BUFFERS * INR_OPEN_CUR
constexpr ino_t kInitialUserNamespaceInode = 0xEFFFFFFDU;  // PROC_USER_INIT_INO

// A sysctl's text as a number: digits, then at most white space.
bool parsePages(const char* text, uint64_t& out) {
  if (text == nullptr || !std::isdigit(static_cast<unsigned char>(*text))) return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0) return false;
  while (std::isspace(static_cast<unsigned char>(*end))) ++end;
  if (*end != '\0') return false;
  out = v;
  return true;
}

// A small file's whole text ("" when it cannot be read).
std::string readText(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

uint64_t PipePool::pipeBudgetPages(const char* softText, const char* hardText) {
  uint64_t soft = kDefaultPipeUserPagesSoft, hard = 0;
  if (!parsePages(softText, soft)) soft = kDefaultPipeUserPagesSoft;
  if (!parsePages(hardText, hard)) hard = 0;
  if (soft == 0) return hard;
  if (hard == 0) return soft;
  return std::min(soft, hard);
}

bool PipePool::exemptFromPipeBudget(const char* procStatus, bool initialUserNamespace) {
  if (!initialUserNamespace || procStatus == nullptr) return false;
  const char* line = std::strstr(procStatus, "\nCapEff:");
  if (line == nullptr) return false;
  line += std::strlen("\nCapEff:");
  while (*line == ' ' || *line == '\t') ++line;
  if (!std::isxdigit(static_cast<unsigned char>(*line))) return false;
  const uint64_t caps = std::strtoull(line, nullptr, 16);
  // The kernel exempts CAP_SYS_RESOURCE (bit 24) and CAP_SYS_ADMIN (bit 21).
  return (caps >> 24 & 1) || (caps >> 21 & 1);
}

size_t PipePool::largePipesPerWorker(uint32_t workers) {
  const std::string soft = readText("/proc/sys/fs/pipe-user-pages-soft");
  const std::string hard = readText("/proc/sys/fs/pipe-user-pages-hard");
  const std::string status = readText("/proc/self/status");
  struct stat ns {};
  const bool initialUserNamespace =
      stat("/proc/self/ns/user", &ns) != 0 ? errno == ENOENT : ns.st_ino == kInitialUserNamespaceInode;
  return largePipesPerWorker(pipeBudgetPages(soft.c_str(), hard.c_str()),
                             exemptFromPipeBudget(status.c_str(), initialUserNamespace), workers,
                             sysconf(_SC_PAGESIZE));
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
