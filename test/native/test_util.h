#pragma once
// Helpers shared by the native tests: descriptors, polling with deadlines, loopback sockets, a
// backend server on its own thread, a client that moves a byte stream both ways, and a 64-bit
// FNV-1a hash to compare streams without keeping them. Loopback addresses only.

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/socket_address.h"
#include "io/unique_fd.h"

namespace lb4test {

// --- descriptors and time -------------------------------------------------------------------

// True while `fd` is an open descriptor of this process.
bool isOpen(int fd);
// errno of fcntl(fd, F_GETFD): 0 when open, EBADF when closed.
int descriptorError(int fd);
// Open descriptors of this process, as /proc/self/fd lists them.
int openDescriptorCount();
int64_t nowMs();
// Calls `done` every few milliseconds until it returns true or `timeoutMs` passes: for state
// with no descriptor to wait on, such as counters another thread writes.
bool eventually(const std::function<bool()>& done, int timeoutMs = 2000);
// poll(2) one descriptor for `events`; true when any of them (or an error/hangup) is reported.
bool waitFor(int fd, short events, int timeoutMs);

// How a child process ended: the signal that killed it (0 if it exited), its exit status, and
// what it wrote to stderr.
struct ChildOutcome {
  int signal = 0;
  int exitCode = -1;
  std::string stderrText;
};
// Runs `fn` in a forked child (which then exits 0) and waits for it: for code that must abort.
ChildOutcome runInChild(const std::function<void()>& fn, int timeoutMs = 5000);

// A one-shot signal between threads that a test can wait on with poll(2): an eventfd.
class Signal {
 public:
  Signal();
  void notify();
  bool wait(int timeoutMs);  // true if notified (and consumes it)
  int fd() const { return fd_.get(); }

 private:
  lb4::UniqueFd fd_;
};

// --- hashing and payloads --------------------------------------------------------------------

struct Fnv64 {
  uint64_t value = 1469598103934665603ULL;
  void update(const void* data, size_t n);
};

// A reproducible byte stream: byte `pos` of stream `seed`. fillPattern writes bytes
// [pos, pos + n) of it.
void fillPattern(uint64_t seed, uint64_t pos, char* out, size_t n);
uint64_t patternHash(uint64_t seed, uint64_t length, const std::string& prefix = std::string());

// --- sockets -----------------------------------------------------------------------------------

lb4::SocketAddress address(const char* ip, uint16_t port);
// A listening TCP socket (non-blocking) on `ip`:`port`, with or without SO_REUSEADDR and
// SO_REUSEPORT; `bound` gets the address the kernel chose.
lb4::UniqueFd listenOn(const char* ip, uint16_t port, lb4::SocketAddress& bound, bool reuseAddr = false,
                       bool reusePort = false, int backlog = 128);
// A port on 127.0.0.1 that nothing listens on: bound, read back, closed.
uint16_t unusedPort();
// A non-blocking connected TCP socket, or an invalid one (errno-like code in `error`).
lb4::UniqueFd connectTo(const lb4::SocketAddress& to, int timeoutMs, int* error = nullptr);
// Blocking-style I/O with a deadline on a non-blocking socket.
bool sendAll(int fd, const void* data, size_t n, int timeoutMs);
bool recvExactly(int fd, void* data, size_t n, int timeoutMs);
// What a peer did next: 0 after its FIN, an errno after a reset or error, -1 if it did not end
// in time. Bytes read meanwhile are discarded and counted into `*discarded`.
int waitForEnd(int fd, int timeoutMs, size_t* discarded = nullptr);
lb4::SocketAddress localAddress(int fd);

// --- a client that moves a stream both ways ----------------------------------------------------

// The request a client sends to a Scripted server: a 16-byte header (response length and seed,
// little endian) then `payloadBytes` of stream `payloadSeed`.
struct Transfer {
  uint64_t payloadBytes = 0;
  uint64_t payloadSeed = 1;
  uint64_t responseBytes = 0;
  uint64_t responseSeed = 2;

  std::string header() const;
  uint64_t requestBytes() const { return 16 + payloadBytes; }
  uint64_t requestHash() const { return patternHash(payloadSeed, payloadBytes, header()); }
};

struct TransferResult {
  bool ok = false;
  std::string error;
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t receivedHash = 0;
};

// Connects to `to`, sends the request while reading the response (both at once, so neither side
// waits on a full window), shuts down its writing side after the request, and reads until EOF.
TransferResult runTransfer(const lb4::SocketAddress& to, const Transfer& t, int timeoutMs);

// --- a backend server on its own thread --------------------------------------------------------

class TestServer {
 public:
  enum class Mode {
    Echo,      // echoes every byte; after the client's FIN and the echo, sends its own FIN
    Scripted,  // reads a Transfer header, sends the response it asks for, then its FIN; reads to EOF
  };
  // How one connection ended, once it has.
  struct Record {
    uint64_t received = 0;
    uint64_t receivedHash = 0;
    uint64_t sent = 0;
    int error = 0;  // 0: ended cleanly (FIN both ways); otherwise the errno that ended it
  };

  TestServer() = default;
  ~TestServer() { stop(); }
  bool start(Mode mode, const char* ip = "127.0.0.1");
  void stop();  // closes every connection and the listener, joins the thread
  const lb4::SocketAddress& address() const { return address_; }
  int accepted() const { return accepted_.load(); }
  int open() const { return open_.load(); }
  std::vector<Record> records();

 private:
  void run();

  Mode mode_ = Mode::Echo;
  lb4::SocketAddress address_;
  lb4::UniqueFd listener_;
  Signal quit_;
  std::thread thread_;
  std::atomic<int> accepted_{0};
  std::atomic<int> open_{0};
  std::mutex mutex_;
  std::vector<Record> records_;
};

}  // namespace lb4test
