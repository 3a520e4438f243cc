#include "test_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace lb4test {

using lb4::SocketAddress;
using lb4::UniqueFd;

bool isOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

int descriptorError(int fd) { return fcntl(fd, F_GETFD) == -1 ? errno : 0; }

int openDescriptorCount() {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int count = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // not the directory's own descriptor
}

int64_t nowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool eventually(const std::function<bool()>& done, int timeoutMs) {
  const int64_t deadline = nowMs() + timeoutMs;
  for (;;) {
    if (done()) return true;
    if (nowMs() >= deadline) return false;
    poll(nullptr, 0, 2);
  }
}

ChildOutcome runInChild(const std::function<void()>& fn, int timeoutMs) {
  ChildOutcome out;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return out;
  UniqueFd readEnd(fds[0]), writeEnd(fds[1]);
  pid_t pid = fork();
  if (pid < 0) return out;
  if (pid == 0) {
    dup2(writeEnd.get(), STDERR_FILENO);
    fn();
    _exit(0);
  }
  writeEnd.reset();
  // Read stderr to its end (the child's exit closes it), then reap the child.
  const int64_t deadline = nowMs() + timeoutMs;
  char buffer[512];
  for (;;) {
    int left = static_cast<int>(deadline - nowMs());
    if (left <= 0 || !waitFor(readEnd.get(), POLLIN, left)) break;
    ssize_t n = read(readEnd.get(), buffer, sizeof(buffer));
    if (n <= 0) break;
    out.stderrText.append(buffer, static_cast<size_t>(n));
  }
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == 0) {
    kill(pid, SIGKILL);  // hung: the outcome says so (SIGKILL)
    waitpid(pid, &status, 0);
  }
  if (WIFSIGNALED(status)) out.signal = WTERMSIG(status);
  if (WIFEXITED(status)) out.exitCode = WEXITSTATUS(status);
  return out;
}

bool waitFor(int fd, short events, int timeoutMs) {
  const int64_t deadline = nowMs() + timeoutMs;
  for (;;) {
    pollfd p{fd, events, 0};
    int left = static_cast<int>(std::max<int64_t>(0, deadline - nowMs()));
    int n = poll(&p, 1, left);
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

Signal::Signal() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

void Signal::notify() {
  uint64_t one = 1;
  ssize_t rc = write(fd_.get(), &one, sizeof(one));
  (void)rc;
}

bool Signal::wait(int timeoutMs) {
  if (!waitFor(fd_.get(), POLLIN, timeoutMs)) return false;
  uint64_t value;
  return read(fd_.get(), &value, sizeof(value)) == sizeof(value);
}

void Fnv64::update(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    value ^= p[i];
    value *= 1099511628211ULL;
  }
}

namespace {

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

void fillPattern(uint64_t seed, uint64_t pos, char* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint64_t at = pos + i;
    out[i] = static_cast<char>(splitmix(seed * 0x100000001b3ULL + (at >> 3)) >> ((at & 7) * 8));
  }
}

uint64_t patternHash(uint64_t seed, uint64_t length, const std::string& prefix) {
  Fnv64 h;
  h.update(prefix.data(), prefix.size());
  char chunk[16384];
  for (uint64_t pos = 0; pos < length;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof(chunk), length - pos));
    fillPattern(seed, pos, chunk, n);
    h.update(chunk, n);
    pos += n;
  }
  return h.value;
}

SocketAddress address(const char* ip, uint16_t port) {
  SocketAddress a;
  SocketAddress::fromIp(ip, port, a);
  return a;
}

SocketAddress localAddress(int fd) {
  SocketAddress a;
  a.prepareForKernel();
  if (getsockname(fd, a.get(), a.lengthPtr()) != 0) return SocketAddress();
  return a;
}

UniqueFd listenOn(const char* ip, uint16_t port, SocketAddress& bound, bool reuseAddr, bool reusePort, int backlog) {
  SocketAddress want = address(ip, port);
  UniqueFd fd(socket(want.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  int one = 1;
  if (reuseAddr) setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reusePort) setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(fd.get(), want.get(), want.length()) != 0 || listen(fd.get(), backlog) != 0) return UniqueFd();
  bound = localAddress(fd.get());
  return fd;
}

uint16_t unusedPort() {
  SocketAddress bound;
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  SocketAddress any = address("127.0.0.1", 0);
  if (!fd || bind(fd.get(), any.get(), any.length()) != 0) return 0;
  return localAddress(fd.get()).port();
}

UniqueFd connectTo(const SocketAddress& to, int timeoutMs, int* error) {
  int dummy;
  int& err = error ? *error : dummy;
  err = 0;
  UniqueFd fd(socket(to.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    err = errno;
    return fd;
  }
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd.get(), to.get(), to.length()) != 0) {
    if (errno != EINPROGRESS) {
      err = errno;
      return UniqueFd();
    }
    if (!waitFor(fd.get(), POLLOUT, timeoutMs)) {
      err = ETIMEDOUT;
      return UniqueFd();
    }
    socklen_t len = sizeof(err);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return UniqueFd();
  }
  return fd;
}

bool sendAll(int fd, const void* data, size_t n, int timeoutMs) {
  const int64_t deadline = nowMs() + timeoutMs;
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR) return false;
    if (!waitFor(fd, POLLOUT, static_cast<int>(std::max<int64_t>(0, deadline - nowMs())))) return false;
  }
  return true;
}

bool recvExactly(int fd, void* data, size_t n, int timeoutMs) {
  const int64_t deadline = nowMs() + timeoutMs;
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EINTR)) return false;
    if (!waitFor(fd, POLLIN, static_cast<int>(std::max<int64_t>(0, deadline - nowMs())))) return false;
  }
  return true;
}

int waitForEnd(int fd, int timeoutMs, size_t* discarded) {
  const int64_t deadline = nowMs() + timeoutMs;
  char buf[4096];
  for (;;) {
    ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r == 0) return 0;
    if (r > 0) {
      if (discarded) *discarded += static_cast<size_t>(r);
      continue;
    }
    if (errno != EAGAIN && errno != EINTR) return errno;
    if (!waitFor(fd, POLLIN, static_cast<int>(std::max<int64_t>(0, deadline - nowMs())))) return -1;
  }
}

std::string Transfer::header() const {
  std::string h(16, '\0');
  for (int i = 0; i < 8; ++i) {
    h[i] = static_cast<char>(responseBytes >> (8 * i));
    h[8 + i] = static_cast<char>(responseSeed >> (8 * i));
  }
  return h;
}

TransferResult runTransfer(const SocketAddress& to, const Transfer& t, int timeoutMs) {
  TransferResult result;
  const int64_t deadline = nowMs() + timeoutMs;
  int err = 0;
  UniqueFd fd = connectTo(to, timeoutMs, &err);
  if (!fd) {
    result.error = std::string("connect: ") + std::strerror(err);
    return result;
  }
  const std::string header = t.header();
  const uint64_t total = t.requestBytes();
  Fnv64 hash;
  bool eof = false, shut = false;
  std::unique_ptr<char[]> out(new char[65536]);
  std::unique_ptr<char[]> in(new char[65536]);
  while (!eof || !shut) {
    if (!shut && result.sent == total) {
      shutdown(fd.get(), SHUT_WR);
      shut = true;
      continue;
    }
    pollfd p{fd.get(), static_cast<short>((eof ? 0 : POLLIN) | (shut ? 0 : POLLOUT)), 0};
    int left = static_cast<int>(deadline - nowMs());
    if (left <= 0) {
      result.error = "timed out after " + std::to_string(result.sent) + " bytes sent, " +
                     std::to_string(result.received) + " received";
      return result;
    }
    if (poll(&p, 1, left) < 0 && errno != EINTR) {
      result.error = std::string("poll: ") + std::strerror(errno);
      return result;
    }
    if (!eof && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      for (int i = 0; i < 16; ++i) {
        ssize_t r = recv(fd.get(), in.get(), 65536, MSG_DONTWAIT);
        if (r > 0) {
          hash.update(in.get(), static_cast<size_t>(r));
          result.received += static_cast<uint64_t>(r);
          continue;
        }
        if (r == 0) {
          eof = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          result.error = std::string("recv: ") + std::strerror(errno);
          return result;
        }
        break;
      }
    }
    if (!shut && (p.revents & (POLLOUT | POLLERR))) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(65536, total - result.sent));
      for (size_t i = 0; i < n; ++i) {
        uint64_t at = result.sent + i;
        if (at < 16) {
          out[i] = header[at];
        } else {
          fillPattern(t.payloadSeed, at - 16, out.get() + i, n - i);
          break;
        }
      }
      ssize_t w = send(fd.get(), out.get(), n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        result.sent += static_cast<uint64_t>(w);
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        result.error = std::string("send: ") + std::strerror(errno);
        return result;
      }
    }
  }
  result.receivedHash = hash.value;
  result.ok = true;
  return result;
}

// --- TestServer ---------------------------------------------------------------------------------

bool TestServer::start(Mode mode, const char* ip) {
  mode_ = mode;
  listener_ = listenOn(ip, 0, address_);
  if (!listener_) return false;
  thread_ = std::thread([this] { run(); });
  return true;
}

void TestServer::stop() {
  if (!thread_.joinable()) return;
  quit_.notify();
  thread_.join();
  listener_.reset();
}

std::vector<TestServer::Record> TestServer::records() {
  std::lock_guard<std::mutex> lock(mutex_);
  return records_;
}

namespace {

struct Connection {
  UniqueFd fd;
  bool inEof = false;
  bool outShut = false;
  // Echo: bytes read and not yet sent back.
  std::string pending;
  size_t pendingStart = 0;
  // Scripted: the header, then the response it asks for.
  std::string header;
  bool haveHeader = false;
  uint64_t responseBytes = 0;
  uint64_t responseSeed = 0;
  Fnv64 hash;
  TestServer::Record record;
};

constexpr size_t kEchoHighWater = 1 << 20;

}  // namespace

void TestServer::run() {
  std::vector<std::unique_ptr<Connection>> conns;
  std::unique_ptr<char[]> buf(new char[65536]);
  auto finish = [&](Connection& c, int error) {
    c.record.receivedHash = c.hash.value;
    c.record.error = error;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      records_.push_back(c.record);
    }
    c.fd.reset();
    open_--;
  };
  for (;;) {
    std::vector<pollfd> fds;
    fds.push_back({quit_.fd(), POLLIN, 0});
    fds.push_back({listener_.get(), POLLIN, 0});
    for (auto& c : conns) {
      short ev = 0;
      bool room = mode_ != Mode::Echo || c->pending.size() - c->pendingStart < kEchoHighWater;
      if (!c->inEof && room) ev |= POLLIN;
      bool wantWrite = mode_ == Mode::Echo ? c->pendingStart < c->pending.size()
                                           : c->haveHeader && c->record.sent < c->responseBytes;
      if (wantWrite) ev |= POLLOUT;
      fds.push_back({c->fd.get(), ev, 0});
    }
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) break;
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        auto c = std::make_unique<Connection>();
        c->fd.reset(fd);
        conns.push_back(std::move(c));
        accepted_++;
        open_++;
      }
    }
    // Connections accepted just now were not polled this round: fds has the older ones only.
    for (size_t i = 0; i + 2 < fds.size(); ++i) {
      Connection& c = *conns[i];
      const short re = fds[i + 2].revents;
      if (!c.fd || re == 0) continue;
      int error = 0;
      if (re & (POLLIN | POLLHUP | POLLERR)) {
        for (int k = 0; k < 16 && !c.inEof; ++k) {
          ssize_t r = recv(c.fd.get(), buf.get(), 65536, MSG_DONTWAIT);
          if (r == 0) {
            c.inEof = true;
            break;
          }
          if (r < 0) {
            if (errno != EAGAIN && errno != EINTR) error = errno;
            break;
          }
          c.hash.update(buf.get(), static_cast<size_t>(r));
          c.record.received += static_cast<uint64_t>(r);
          if (mode_ == Mode::Echo) {
            c.pending.append(buf.get(), static_cast<size_t>(r));
            if (c.pending.size() - c.pendingStart >= kEchoHighWater) break;
          } else if (!c.haveHeader) {
            size_t take = std::min<size_t>(16 - c.header.size(), static_cast<size_t>(r));
            c.header.append(buf.get(), take);
            if (c.header.size() == 16) {
              c.haveHeader = true;
              for (int b = 0; b < 8; ++b) {
                c.responseBytes |= static_cast<uint64_t>(static_cast<unsigned char>(c.header[b])) << (8 * b);
                c.responseSeed |= static_cast<uint64_t>(static_cast<unsigned char>(c.header[8 + b])) << (8 * b);
              }
            }
          }
        }
      }
      // A client that ends before a whole header asks for no response.
      if (mode_ == Mode::Scripted && c.inEof && !c.haveHeader) c.haveHeader = true;
      if (!error && (re & (POLLOUT | POLLERR))) {
        const char* data = nullptr;
        size_t n = 0;
        if (mode_ == Mode::Echo) {
          data = c.pending.data() + c.pendingStart;
          n = c.pending.size() - c.pendingStart;
        } else if (c.haveHeader) {
          n = static_cast<size_t>(std::min<uint64_t>(65536, c.responseBytes - c.record.sent));
          fillPattern(c.responseSeed, c.record.sent, buf.get(), n);
          data = buf.get();
        }
        if (n > 0) {
          ssize_t w = send(c.fd.get(), data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
          if (w > 0) {
            c.record.sent += static_cast<uint64_t>(w);
            if (mode_ == Mode::Echo) {
              c.pendingStart += static_cast<size_t>(w);
              if (c.pendingStart == c.pending.size()) {
                c.pending.clear();
                c.pendingStart = 0;
              }
            }
          } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            error = errno;
          }
        }
      }
      if (error) {
        finish(c, error);
        continue;
      }
      const bool doneWriting = mode_ == Mode::Echo ? c.inEof && c.pendingStart == c.pending.size()
                                                   : c.haveHeader && c.record.sent == c.responseBytes;
      if (doneWriting && !c.outShut) {
        shutdown(c.fd.get(), SHUT_WR);
        c.outShut = true;
      }
      if (c.inEof && c.outShut) finish(c, 0);
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(), [](const std::unique_ptr<Connection>& c) { return !c->fd; }),
                conns.end());
  }
  // Connections still open when the server stops end here (their descriptors close).
  open_ -= static_cast<int>(conns.size());
}

}  // namespace lb4test
