// The harness's runner: registration, failure records, TAP output, the descriptor-leak check and
// the per-test time limit. See harness.h.

#include "harness.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace lb4test {

namespace {

struct TestCase {
  const char* suite;
  const char* name;
  TestFn fn;
};

// A function-local static: registrars run during static initialisation, in any order.
std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

std::mutex resultMutex;
std::atomic<int> passedCount{0};
std::atomic<int> failedCount{0};
bool currentFailed = false;
std::vector<std::string> currentNotes;

// A test that hangs would hang the whole run; past this the run ends as a failure.
constexpr int kTestTimeLimitMs = 20000;

const char* baseName(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

// Open descriptors of this process, not counting the one opendir() itself uses.
int openDescriptorCount() {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int count = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;
}

std::string describeDescriptors() {
  std::string out;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return out;
  int self = dirfd(dir);
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.' || std::atoi(e->d_name) == self) continue;
    char link[256] = {0};
    std::string path = std::string("/proc/self/fd/") + e->d_name;
    ssize_t n = readlink(path.c_str(), link, sizeof(link) - 1);
    out += std::string(" ") + e->d_name + "=" + (n > 0 ? link : "?");
  }
  closedir(dir);
  return out;
}

// Ends the run if the current test outlives its time limit.
class Watchdog {
 public:
  Watchdog() : thread_([this] { run(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void arm(int number, const TestCase& test) {
    std::lock_guard<std::mutex> lock(mutex_);
    number_ = number;
    test_ = &test;
    deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTestTimeLimitMs);
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard<std::mutex> lock(mutex_);
    test_ = nullptr;
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!quit_) {
      if (!test_) {
        cv_.wait(lock);
        continue;
      }
      if (cv_.wait_until(lock, deadline_) == std::cv_status::timeout && test_ && !quit_ &&
          std::chrono::steady_clock::now() >= deadline_) {
        std::printf("not ok %d - %s: %s\n  # timed out after %d ms; the run stops here\n", number_, test_->suite,
                    test_->name, kTestTimeLimitMs);
        std::printf("# native: %d passed, %d failed\n", passedCount.load(), failedCount.load() + 1);
        std::fflush(stdout);
        _exit(1);
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool quit_ = false;
  int number_ = 0;
  const TestCase* test_ = nullptr;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

}  // namespace

Registrar::Registrar(const char* suite, const char* name, TestFn fn) { registry().push_back({suite, name, fn}); }

void fail(const char* file, int line, const std::string& message) {
  std::lock_guard<std::mutex> lock(resultMutex);
  currentFailed = true;
  currentNotes.push_back(std::string(baseName(file)) + ":" + std::to_string(line) + ": " + message);
}

void note(const std::string& message) {
  std::lock_guard<std::mutex> lock(resultMutex);
  currentNotes.push_back(message);
}

bool currentTestFailed() {
  std::lock_guard<std::mutex> lock(resultMutex);
  return currentFailed;
}

}  // namespace lb4test

int main(int argc, char** argv) {
  using namespace lb4test;
  // The hosting Node.js process ignores SIGPIPE; the data plane relies on that (splice(2) has no
  // MSG_NOSIGNAL), so the tests run the same way.
  signal(SIGPIPE, SIG_IGN);

  // Arguments: --list, or substrings; a test runs if "suite: name" contains any of them.
  std::vector<std::string> filters;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--list") == 0) {
      for (const TestCase& t : registry()) std::printf("%s: %s\n", t.suite, t.name);
      return 0;
    }
    filters.push_back(argv[i]);
  }
  std::vector<const TestCase*> selected;
  for (const TestCase& t : registry()) {
    std::string full = std::string(t.suite) + ": " + t.name;
    bool take = filters.empty();
    for (const std::string& f : filters) take = take || full.find(f) != std::string::npos;
    if (take) selected.push_back(&t);
  }

  std::printf("TAP version 13\n1..%zu\n", selected.size());
  std::fflush(stdout);
  int number = 0;
  Watchdog watchdog;
  for (const TestCase* t : selected) {
    ++number;
    {
      std::lock_guard<std::mutex> lock(resultMutex);
      currentFailed = false;
      currentNotes.clear();
    }
    const int fdsBefore = openDescriptorCount();
    const std::string fdListBefore = describeDescriptors();
    const auto started = std::chrono::steady_clock::now();
    watchdog.arm(number, *t);
    t->fn();
    watchdog.disarm();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    const int fdsAfter = openDescriptorCount();
    if (fdsAfter != fdsBefore) {
      fail(__FILE__, __LINE__,
           "open descriptors went from " + std::to_string(fdsBefore) + " to " + std::to_string(fdsAfter) +
               "\nbefore:" + fdListBefore + "\nafter: " + describeDescriptors());
    }
    std::lock_guard<std::mutex> lock(resultMutex);
    (currentFailed ? failedCount : passedCount)++;
    std::printf("%s %d - %s: %s\n", currentFailed ? "not ok" : "ok", number, t->suite, t->name);
    for (const std::string& n : currentNotes) {
      // Every diagnostic line starts with "#", so TAP readers never take one for a result.
      size_t start = 0;
      while (start <= n.size()) {
        size_t end = n.find('\n', start);
        if (end == std::string::npos) end = n.size();
        std::printf("  # %s\n", n.substr(start, end - start).c_str());
        start = end + 1;
      }
    }
    if (ms > 1000) std::printf("  # slow: %lld ms\n", static_cast<long long>(ms));
    std::fflush(stdout);
  }
  std::printf("# native: %d passed, %d failed\n", passedCount.load(), failedCount.load());
  std::fflush(stdout);
  return failedCount.load() > 0 ? 1 : 0;
}
