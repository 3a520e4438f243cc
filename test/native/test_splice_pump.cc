// The splice pump's pipe sizing, driven by hand on real loopback TCP sockets: which pipe a
// direction holds depends only on what the pump was given, not on timing.

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "counters.h"
#include "harness.h"
#include "tcp/flow.h"
#include "tcp/splice_pump.h"
#include "test_util.h"

using lb4::CounterBlock;
using lb4::Direction;
using lb4::Flow;
using lb4::FlowSocket;
using lb4::PipePool;
using lb4::PumpResult;
using lb4::SocketAddress;
using lb4::SplicePump;
using lb4::UniqueFd;

namespace {

constexpr int kBigBuffer = 8 << 20;

// A connected loopback TCP pair whose receiving end queues megabytes without a reader.
struct TcpPair {
  UniqueFd sender;
  UniqueFd receiver;
};

TcpPair tcpPair() {
  SocketAddress bound;
  UniqueFd listener = lb4test::listenOn("127.0.0.1", 0, bound);
  // Buffer sizes set on the listener are inherited by the accepted socket. FORCE passes
  // net.core.rmem_max as root; otherwise rmem_max caps it.
  if (setsockopt(listener.get(), SOL_SOCKET, SO_RCVBUFFORCE, &kBigBuffer, sizeof kBigBuffer) != 0)
    setsockopt(listener.get(), SOL_SOCKET, SO_RCVBUF, &kBigBuffer, sizeof kBigBuffer);
  TcpPair p;
  p.sender = lb4test::connectTo(bound, 2000);
  if (setsockopt(p.sender.get(), SOL_SOCKET, SO_SNDBUFFORCE, &kBigBuffer, sizeof kBigBuffer) != 0)
    setsockopt(p.sender.get(), SOL_SOCKET, SO_SNDBUF, &kBigBuffer, sizeof kBigBuffer);
  p.receiver.reset(accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  return p;
}

int queued(int fd) {
  int n = 0;
  ioctl(fd, FIONREAD, &n);
  return n;
}

}  // namespace

TEST(splice_pump, a_read_that_fills_a_standard_pipe_takes_a_large_one_next) {
  TcpPair source = tcpPair();
  TcpPair destination = tcpPair();
  REQUIRE(source.sender && source.receiver && destination.sender && destination.receiver);
  const size_t total = 1 << 20;
  std::vector<char> data(total);
  lb4test::fillPattern(7, 0, data.data(), data.size());
  REQUIRE(lb4test::sendAll(source.sender.get(), data.data(), data.size(), 2000));
  REQUIRE(lb4test::eventually([&] { return queued(source.receiver.get()) == static_cast<int>(total); }));

  SplicePump pump(4, 0);
  CounterBlock listenerCounters;
  CounterBlock backendCounters;
  Flow f;
  FlowSocket src;
  src.fd = std::move(source.receiver);
  src.readable = true;
  FlowSocket dst;
  dst.fd = std::move(destination.sender);
  dst.writable = false;  // the destination is full: bytes stay in the pipe
  Direction& d = f.down;
  d.bulk = true;

  // First read: a standard pipe, filled to the brim by one splice, so the next read wants more.
  CHECK(pump.pump(f, d, src, dst, false, listenerCounters, backendCounters, 0) == PumpResult::Idle);
  CHECK(d.pipe.valid());
  CHECK(!d.pipe.large);
  CHECK_EQ(d.pipeBytes, 65536u);
  CHECK(d.wantsLargePipe);

  // The destination takes the pipe's bytes (done here by hand), then the pump reads again: the
  // emptied standard pipe goes back and a large one takes what the socket holds, up to 1 MiB.
  std::vector<char> out(total);
  REQUIRE(read(d.pipe.readFd(), out.data(), d.pipeBytes) == 65536);
  d.pipeBytes = 0;
  CHECK(pump.pump(f, d, src, dst, false, listenerCounters, backendCounters, 0) == PumpResult::Idle);
  CHECK(d.pipe.large);
  CHECK_EQ(d.pipe.capacity, PipePool::kLargePipeSize);
  // More than a standard pipe holds in one splice (the kernel may stop short of the whole
  // socket when the pipe's slots run out first).
  CHECK(d.pipeBytes > 65536u);
  CHECK_EQ(pump.pipes().largeOpen(), 1u);

  // Every byte arrives in order once the destination writes: 64 KiB by hand, the rest spliced.
  dst.writable = true;
  for (int i = 0; i < 100 && (d.pipeBytes > 0 || src.readable); ++i)
    pump.pump(f, d, src, dst, false, listenerCounters, backendCounters, 0);
  CHECK_EQ(d.pipeBytes, 0u);
  CHECK(!d.pipe.valid());  // an empty pipe goes back to the pool
  REQUIRE(lb4test::recvExactly(destination.receiver.get(), out.data() + 65536, total - 65536, 2000));
  CHECK(out == data);
}

TEST(splice_pump, a_small_read_never_asks_for_a_large_pipe) {
  TcpPair source = tcpPair();
  TcpPair destination = tcpPair();
  REQUIRE(source.sender && source.receiver && destination.sender && destination.receiver);
  std::string small(40000, 'x');
  REQUIRE(lb4test::sendAll(source.sender.get(), small.data(), small.size(), 2000));
  REQUIRE(lb4test::eventually([&] { return queued(source.receiver.get()) == static_cast<int>(small.size()); }));

  SplicePump pump(4, 0);
  CounterBlock listenerCounters;
  CounterBlock backendCounters;
  Flow f;
  FlowSocket src;
  src.fd = std::move(source.receiver);
  src.readable = true;
  FlowSocket dst;
  dst.fd = std::move(destination.sender);
  dst.writable = true;
  Direction& d = f.down;
  d.bulk = true;
  CHECK(pump.pump(f, d, src, dst, false, listenerCounters, backendCounters, 0) == PumpResult::Idle);
  CHECK(!d.wantsLargePipe);
  CHECK_EQ(pump.pipes().largeOpen(), 0u);
  std::string got(small.size(), '\0');
  REQUIRE(lb4test::recvExactly(destination.receiver.get(), got.data(), got.size(), 2000));
  CHECK(got == small);
}

TEST(splice_pump, a_fixed_pipe_size_keeps_every_read_in_a_standard_pipe) {
  TcpPair source = tcpPair();
  TcpPair destination = tcpPair();
  REQUIRE(source.sender && source.receiver && destination.sender && destination.receiver);
  const size_t total = 512 << 10;
  std::vector<char> data(total);
  lb4test::fillPattern(9, 0, data.data(), data.size());
  REQUIRE(lb4test::sendAll(source.sender.get(), data.data(), data.size(), 2000));
  REQUIRE(lb4test::eventually([&] { return queued(source.receiver.get()) == static_cast<int>(total); }));

  SplicePump pump(4, 65536);  // --pipe-size 65536
  CounterBlock listenerCounters;
  CounterBlock backendCounters;
  Flow f;
  FlowSocket src;
  src.fd = std::move(source.receiver);
  src.readable = true;
  FlowSocket dst;
  dst.fd = std::move(destination.sender);
  dst.writable = false;
  Direction& d = f.down;
  d.bulk = true;
  pump.pump(f, d, src, dst, false, listenerCounters, backendCounters, 0);
  CHECK_EQ(d.pipeBytes, 65536u);
  std::vector<char> out(total);
  REQUIRE(read(d.pipe.readFd(), out.data(), 65536) == 65536);
  d.pipeBytes = 0;
  pump.pump(f, d, src, dst, false, listenerCounters, backendCounters, 0);
  CHECK(!d.pipe.large);
  CHECK_EQ(d.pipeBytes, 65536u);
  CHECK_EQ(pump.pipes().largeOpen(), 0u);
  dst.writable = true;
  for (int i = 0; i < 100 && (d.pipeBytes > 0 || src.readable); ++i)
    pump.pump(f, d, src, dst, false, listenerCounters, backendCounters, 0);
  REQUIRE(lb4test::recvExactly(destination.receiver.get(), out.data() + 65536, total - 65536, 2000));
  CHECK(out == data);
}
