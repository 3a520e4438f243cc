// The splice pump's pipe sizing, driven by hand on real loopback TCP sockets: which pipe a
// direction holds depends only on what the pump was given, not on timing.

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
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

// One bulk direction of a flow: `bytes` of a pattern already queued at its source socket, its
// destination socket's peer left unread (it holds megabytes), and a pump built with `pipeSize`
// (0: adaptive, as lb4 runs by default).
struct PumpRig {
  TcpPair source = tcpPair();
  TcpPair destination = tcpPair();
  std::vector<char> data;
  SplicePump pump;
  CounterBlock listenerCounters;
  CounterBlock backendCounters;
  Flow f;
  FlowSocket src;
  FlowSocket dst;
  Direction& d = f.down;
  bool ready = false;

  PumpRig(size_t bytes, int pipeSize, bool destinationWritable) : data(bytes), pump(4, pipeSize) {
    if (!source.sender || !source.receiver || !destination.sender || !destination.receiver) return;
    lb4test::fillPattern(bytes, 0, data.data(), data.size());
    if (!lb4test::sendAll(source.sender.get(), data.data(), data.size(), 2000)) return;
    if (!lb4test::eventually([&] { return queued(source.receiver.get()) == static_cast<int>(bytes); })) return;
    src.fd = std::move(source.receiver);
    src.readable = true;
    dst.fd = std::move(destination.sender);
    dst.writable = destinationWritable;
    d.bulk = true;
    ready = true;
  }

  PumpResult run() { return pump.pump(f, d, src, dst, false, listenerCounters, backendCounters, 0); }

  // Delivers what the pipe holds by hand, as a destination that took it would.
  bool takeFromPipe(std::vector<char>& out, size_t at) {
    const uint32_t n = d.pipeBytes;
    if (read(d.pipe.readFd(), out.data() + at, n) != static_cast<ssize_t>(n)) return false;
    d.pipeBytes = 0;
    return true;
  }

  // With the destination full: one read fills a standard pipe, its 64 KiB are taken by hand
  // into `out`, and the next read takes a large pipe and leaves bytes in it. True when it did.
  bool bytesInALargePipe(std::vector<char>& out) {
    if (run() != PumpResult::Idle || !takeFromPipe(out, 0) || run() != PumpResult::Idle) return false;
    return d.pipe.large && d.pipeBytes > 0;
  }

  // Lets the destination take everything; true when what arrived from `at` on is the rest of
  // the pattern, in order.
  bool drainAndCheck(std::vector<char>& out, size_t at) {
    dst.writable = true;
    for (int i = 0; i < 100 && (d.pipeBytes > 0 || src.readable); ++i) run();
    if (d.pipeBytes != 0 || d.pipe.valid()) return false;  // an empty pipe goes back to the pool
    return lb4test::recvExactly(destination.receiver.get(), out.data() + at, out.size() - at, 2000) && out == data;
  }
};

}  // namespace

TEST(splice_pump, a_read_that_fills_a_standard_pipe_takes_a_large_one_next) {
  PumpRig rig(1 << 20, 0, false);  // the destination is full: bytes stay in the pipe
  REQUIRE(rig.ready);

  // First read: a standard pipe, filled to the brim by one splice, so the next read wants more.
  CHECK(rig.run() == PumpResult::Idle);
  CHECK(rig.d.pipe.valid());
  CHECK(!rig.d.pipe.large);
  CHECK_EQ(rig.d.pipeBytes, 65536u);
  CHECK(rig.d.wantsLargePipe);

  // The destination takes the pipe's bytes, then the pump reads again: the emptied standard pipe
  // goes back and a large one takes what the socket holds.
  std::vector<char> out(rig.data.size());
  REQUIRE(rig.takeFromPipe(out, 0));
  CHECK(rig.run() == PumpResult::Idle);
  CHECK(rig.d.pipe.large);
  CHECK_EQ(rig.d.pipe.capacity, PipePool::kLargePipeSize);
  // More than a standard pipe holds in one splice (the kernel may stop short of the whole
  // socket when the pipe's slots run out first).
  CHECK(rig.d.pipeBytes > 65536u);
  CHECK_EQ(rig.pump.pipes().largeOpen(), 1u);

  // Every byte arrives in order once the destination writes: 64 KiB by hand, the rest spliced.
  CHECK(rig.drainAndCheck(out, 65536));
}

TEST(splice_pump, a_small_read_never_asks_for_a_large_pipe) {
  PumpRig rig(40000, 0, true);
  REQUIRE(rig.ready);
  CHECK(rig.run() == PumpResult::Idle);
  CHECK(!rig.d.wantsLargePipe);
  CHECK_EQ(rig.pump.pipes().largeOpen(), 0u);
  std::vector<char> out(rig.data.size());
  CHECK(rig.drainAndCheck(out, 0));
}

TEST(splice_pump, a_fixed_pipe_size_keeps_every_read_in_a_standard_pipe) {
  PumpRig rig(512 << 10, 65536, false);  // --pipe-size 65536
  REQUIRE(rig.ready);
  rig.run();
  CHECK_EQ(rig.d.pipeBytes, 65536u);
  std::vector<char> out(rig.data.size());
  REQUIRE(rig.takeFromPipe(out, 0));
  rig.run();
  CHECK(!rig.d.pipe.large);
  CHECK_EQ(rig.d.pipeBytes, 65536u);
  CHECK_EQ(rig.pump.pipes().largeOpen(), 0u);
  CHECK(rig.drainAndCheck(out, 65536));
}

// Packets from a NIC arrive MSS-sized, and a pipe is full at 16 buffers, one per packet: reads
// stop near 23 KiB, never at the pipe's 64 KiB. The source here is a pipe filled by vmsplice(2)
// from one page per packet: a pipe, like a socket, splices out buffer by buffer, so the pump's
// reads stop at 16 packets as they do on such a socket.
TEST(splice_pump, reads_stopped_by_a_pipes_16_buffers_take_a_large_one) {
  constexpr size_t kPacket = 1448;
  constexpr size_t kPackets = 200;
  constexpr size_t kPage = 4096;
  int ends[2];
  REQUIRE(pipe2(ends, O_NONBLOCK | O_CLOEXEC) == 0);
  UniqueFd sourceRead(ends[0]);
  UniqueFd sourceWrite(ends[1]);
  REQUIRE(fcntl(sourceWrite.get(), F_SETPIPE_SZ, 1 << 20) >= static_cast<int>(kPackets * kPage));
  std::vector<char> data(kPackets * kPacket);
  lb4test::fillPattern(7, 0, data.data(), data.size());
  // The pages stay referenced by the pipe until the pump has moved them: they live to the end.
  std::vector<char> pages(kPackets * kPage);
  std::vector<iovec> packets(kPackets);
  for (size_t i = 0; i < kPackets; ++i) {
    std::memcpy(pages.data() + i * kPage, data.data() + i * kPacket, kPacket);
    packets[i] = {pages.data() + i * kPage, kPacket};
  }
  REQUIRE(vmsplice(sourceWrite.get(), packets.data(), kPackets, 0) == static_cast<ssize_t>(data.size()));

  TcpPair destination = tcpPair();
  REQUIRE(destination.sender);
  SplicePump pump(4, 0);
  CounterBlock listenerCounters;
  CounterBlock backendCounters;
  Flow f;
  FlowSocket src;
  FlowSocket dst;
  src.fd = std::move(sourceRead);
  src.readable = true;
  dst.fd = std::move(destination.sender);
  dst.writable = true;
  f.down.bulk = true;

  // One wake-up: a standard pipe takes 16 packets, goes out, takes 16 more: the source has more
  // than the pipe holds, so the emptied pipe goes back and a large one moves the rest.
  CHECK(pump.pump(f, f.down, src, dst, false, listenerCounters, backendCounters, 0) == PumpResult::Idle);
  CHECK_EQ(pump.pipes().largeOpen(), 1u);
  CHECK_EQ(f.down.bytes, data.size());
  std::vector<char> out(data.size());
  CHECK(lb4test::recvExactly(destination.receiver.get(), out.data(), out.size(), 2000));
  CHECK(out == data);
}

// Many bulk directions on one worker, their sources stopping reads at 16 packets, their
// destinations slow (socket buffers that take two standard pipes' worth, then 8 KiB per
// wake-up): each direction's second read of its first wake-up asks for a large pipe, the first
// two get one and stall holding it, the rest are refused. At most the pool's cap of large pipes
// is ever open, the directions past it move every byte through standard pipes, all in order,
// and once all is delivered no pipe is held.
TEST(splice_pump, many_bulk_directions_keep_to_the_large_pipe_cap_and_deliver_in_order) {
  constexpr size_t kFlows = 6;
  constexpr size_t kCap = 2;
  constexpr size_t kPacket = 1448;
  constexpr size_t kPackets = 240;
  constexpr size_t kPage = 4096;
  constexpr int kSmall = 32 * 1024;
  struct Leg {
    UniqueFd sourceWrite;
    std::vector<char> data, pages, out;
    size_t got = 0;
    UniqueFd receiver;
    Flow f;
    FlowSocket src, dst;
  };
  SplicePump pump(4, 0, kCap);
  CounterBlock lc, bc;
  std::vector<Leg> legs(kFlows);
  for (size_t i = 0; i < kFlows; ++i) {
    Leg& l = legs[i];
    int ends[2];
    REQUIRE(pipe2(ends, O_NONBLOCK | O_CLOEXEC) == 0);
    l.src.fd.reset(ends[0]);
    l.sourceWrite.reset(ends[1]);
    REQUIRE(fcntl(l.sourceWrite.get(), F_SETPIPE_SZ, 1 << 20) >= static_cast<int>(kPackets * kPage));
    l.data.resize(kPackets * kPacket);
    lb4test::fillPattern(100 + i, 0, l.data.data(), l.data.size());
    l.pages.resize(kPackets * kPage);
    std::vector<iovec> packets(kPackets);
    for (size_t k = 0; k < kPackets; ++k) {
      std::memcpy(l.pages.data() + k * kPage, l.data.data() + k * kPacket, kPacket);
      packets[k] = {l.pages.data() + k * kPage, kPacket};
    }
    REQUIRE(vmsplice(l.sourceWrite.get(), packets.data(), kPackets, 0) == static_cast<ssize_t>(l.data.size()));
    SocketAddress bound;
    UniqueFd listener = lb4test::listenOn("127.0.0.1", 0, bound);
    setsockopt(listener.get(), SOL_SOCKET, SO_RCVBUF, &kSmall, sizeof kSmall);
    l.dst.fd = lb4test::connectTo(bound, 2000);
    REQUIRE(l.dst.fd);
    setsockopt(l.dst.fd.get(), SOL_SOCKET, SO_SNDBUF, &kSmall, sizeof kSmall);
    l.receiver.reset(accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    REQUIRE(l.receiver);
    l.out.resize(l.data.size());
    l.src.readable = true;
    l.f.down.bulk = true;
  }
  size_t mostLarge = 0, mostInUse = 0;
  bool allDone = false;
  for (int round = 0; round < 5000 && !allDone; ++round) {
    allDone = true;
    for (Leg& l : legs) {
      l.dst.writable = true;
      l.src.readable = true;  // a stale edge at worst: the pump hears EAGAIN
      pump.pump(l.f, l.f.down, l.src, l.dst, false, lc, bc, 0);
      mostLarge = std::max(mostLarge, pump.pipes().largeOpen());
      mostInUse = std::max(mostInUse, pump.pipes().inUse());
      // The slow destination: a little read per wake-up.
      const ssize_t n = recv(l.receiver.get(), l.out.data() + l.got, std::min<size_t>(8192, l.out.size() - l.got), 0);
      if (n > 0) l.got += static_cast<size_t>(n);
      if (l.got < l.out.size()) allDone = false;
    }
  }
  lb4test::note("most large pipes open: " + std::to_string(mostLarge) +
                ", most pipes in use: " + std::to_string(mostInUse));
  CHECK(allDone);
  CHECK_LE(mostLarge, kCap);
  CHECK_EQ(mostLarge, kCap);  // the rule fired for more directions than the cap allows
  CHECK_GT(mostInUse, kCap);  // ... and those past it kept standard pipes
  for (Leg& l : legs) {
    CHECK_EQ(l.f.down.bytes, l.data.size());
    CHECK(l.out == l.data);
    CHECK(!l.f.down.pipe.valid());
  }
  CHECK_EQ(pump.pipes().inUse(), 0u);
  CHECK_LE(pump.pipes().largeOpen(), kCap);
}

// A flow reset while its large pipe holds bytes: the pipe is closed, not pooled (the next flow
// would read the bytes), and its place under the large-pipe cap is free again.
TEST(splice_pump, a_large_pipe_holding_bytes_at_a_reset_is_closed_and_frees_its_place) {
  PumpRig rig(1 << 20, 0, false);
  REQUIRE(rig.ready);
  std::vector<char> out(rig.data.size());
  REQUIRE(rig.bytesInALargePipe(out));
  const int readEnd = rig.d.pipe.readFd(), writeEnd = rig.d.pipe.writeFd();
  rig.pump.release(rig.d);
  CHECK(!rig.d.pipe.valid());
  CHECK_EQ(rig.d.pipeBytes, 0u);
  CHECK_EQ(lb4test::descriptorError(readEnd), EBADF);
  CHECK_EQ(lb4test::descriptorError(writeEnd), EBADF);
  CHECK_EQ(rig.pump.pipes().largeOpen(), 0u);
  CHECK_EQ(rig.pump.pipes().inUse(), 0u);
  CHECK_EQ(rig.pump.pipes().idle(), 1u);  // only the standard pipe it gave back before
}

// While a large pipe still holds bulk bytes the destination has not taken, the source sends an
// urgent byte, more bytes and its FIN: the bytes in the pipe go out first, then everything after
// the mark (the urgent byte itself is out of band), then the FIN, and nothing in between.
TEST(splice_pump, urgent_data_and_a_fin_behind_a_full_large_pipe_keep_their_order) {
  PumpRig rig(1 << 20, 0, false);
  REQUIRE(rig.ready);
  std::vector<char> head(rig.data.size());
  const uint32_t byHand = 65536;
  REQUIRE(rig.bytesInALargePipe(head));

  std::vector<char> tail(100000);
  lb4test::fillPattern(9, 0, tail.data(), tail.size());
  REQUIRE(send(rig.source.sender.get(), "U", 1, MSG_OOB) == 1);
  REQUIRE(lb4test::sendAll(rig.source.sender.get(), tail.data(), tail.size(), 2000));
  REQUIRE(shutdown(rig.source.sender.get(), SHUT_WR) == 0);
  rig.src.readable = rig.src.urgent = rig.src.peerClosed = true;
  rig.run();  // the destination still full: nothing may overtake the pipe's bytes
  rig.dst.writable = true;
  for (int i = 0; i < 200 && !rig.d.shutdownSent; ++i) {
    if (rig.run() != PumpResult::Idle && rig.d.shutdownSent) break;
    rig.dst.writable = rig.src.readable = true;  // a wake-up for each, as epoll would report
  }
  CHECK(rig.d.eof);
  CHECK(rig.d.shutdownSent);
  CHECK(!rig.d.pipe.valid());
  CHECK_EQ(rig.pump.pipes().largeOpen(), 1u);  // spare, not closed

  std::vector<char> want(rig.data.begin() + byHand, rig.data.end());
  want.insert(want.end(), tail.begin(), tail.end());
  std::vector<char> got(want.size());
  CHECK(lb4test::recvExactly(rig.destination.receiver.get(), got.data(), got.size(), 2000));
  CHECK(got == want);
  char extra = 0;
  CHECK(lb4test::waitFor(rig.destination.receiver.get(), POLLIN, 2000));
  CHECK_EQ(recv(rig.destination.receiver.get(), &extra, 1, MSG_DONTWAIT), 0);  // the FIN, right after
}
