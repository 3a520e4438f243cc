// The splice/copy pump: moves one direction of a TCP flow's bytes. See splice_pump.h.

#include "tcp/splice_pump.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "io/sys_result.h"

namespace lb4 {

namespace {

// A direction moves at most this much per wake-up before letting other flows run; the rest
// continues right after the current epoll pass. Two fills of a large pipe.
constexpr uint64_t kPumpBudget = 2 * PipePool::kLargePipeSize;

}  // namespace

SplicePump::SplicePump(size_t maxIdlePipes, int pipeSize, size_t maxLargePipes)
    : pipes_(maxIdlePipes, pipeSize, maxLargePipes), scratch_(new char[kScratchSize]) {}

// Moves bytes from `src` to `dst` until neither side can go on.
//
// Small messages take the copy path: recv into the worker's scratch buffer, send straight on
// (whatever the destination does not take waits in a per-flow heap buffer). Two syscalls per
// message, where splice would need three (in, out, and the read that says EAGAIN). A read that
// fills the scratch buffer marks the direction bulk, and bulk bytes go socket -> pipe -> socket
// with splice(2); a small read on an empty pipe turns it back.
//
// The kernel's answers that need care (HAProxy's raw_sock.c documents the same ones):
// - splice() from a socket into a pipe says EAGAIN both when the socket has nothing to read and
//   when the pipe is full. Only with an empty pipe does it certainly mean "nothing to read";
//   with bytes in the pipe the bytes go out first and the read is tried again.
// - A short recv() means the socket was emptied: edge-triggered epoll reports any byte that
//   arrives later, so no second read is needed to hear EAGAIN. Unless the peer's FIN was already
//   reported: then the end of stream still waits to be read.
// - splice() returns 0 at a TCP urgent mark too, not only at the end of stream.
// - A read of 0 is the peer's FIN. It is passed on (shutdown(SHUT_WR)) only once every byte
//   before it has been delivered, which is what makes half-close exact.
PumpResult SplicePump::pump(Flow& f, Direction& d, FlowSocket& src, FlowSocket& dst, bool toBackend, CounterBlock& lc,
                            CounterBlock& bc, int64_t now) {
  uint64_t budget = kPumpBudget;
  // Splice reads of this wake-up that found bulk bytes with the pipe empty (the large-pipe rule).
  unsigned bulkReadsIntoEmptyPipe = 0;
  const Counter bytesCounter = toBackend ? Counter::bytes_to_backend : Counter::bytes_to_client;
  auto delivered = [&](int64_t n, bool viaPipe) {
    d.bytes += n;
    const Counter how = viaPipe ? Counter::spliced_bytes : Counter::copied_bytes;
    lc.add(bytesCounter, n);
    lc.add(how, n);
    bc.add(bytesCounter, n);
    bc.add(how, n);
    f.lastActiveMs = now;
  };

  for (;;) {
    bool progress = false;

    if (dst.writable && d.holdsBytes()) {
      const bool viaPipe = d.pipeBytes > 0;
      SysResult w = viaPipe ? sysResult(splice(d.pipe.readFd(), nullptr, dst.get(), nullptr, d.pipeBytes,
                                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK))
                            : sysResult(send(dst.get(), d.buffer.get() + d.bufferStart, d.bufferEnd - d.bufferStart,
                                             MSG_NOSIGNAL | MSG_DONTWAIT));
      if (w.ok()) {
        if (viaPipe) {
          d.pipeBytes -= static_cast<uint32_t>(w.value);
        } else {
          d.bufferStart += static_cast<uint32_t>(w.value);
        }
        delivered(w.value, viaPipe);
        progress = true;
      } else if (w.error == EAGAIN) {
        dst.writable = false;
      } else if (w.error != EINTR) {
        return PumpResult::DestinationReset;
      }
    }
    // Pipes and buffers are held only while they hold bytes.
    if (d.pipe.valid() && d.pipeBytes == 0) pipes_.put(d.pipe);
    if (d.buffer && d.bufferStart == d.bufferEnd) {
      d.buffer.reset();
      d.bufferStart = d.bufferEnd = 0;
    }

    if (src.readable && !d.eof && budget > 0 && d.bufferStart == d.bufferEnd) {
      bool useSplice = d.bulk || d.pipeBytes > 0;
      // Past an urgent mark only recv() goes on; bytes already in the pipe go out first, so
      // nothing overtakes them.
      const bool holdForUrgent = src.urgent && d.pipeBytes > 0;
      if (src.urgent) useSplice = false;
      // No pipe to be had (descriptors or pipe memory ran out): copy instead.
      if (useSplice && !d.pipe.valid() && !(d.wantsLargePipe && pipes_.getLarge(d.pipe)) && !pipes_.get(d.pipe))
        useSplice = false;
      if (holdForUrgent) {
        // Nothing to read this round: the delivery above makes the progress, or EPOLLOUT does.
      } else if (useSplice) {
        const uint32_t before = d.pipeBytes;
        const uint32_t capacity = static_cast<uint32_t>(d.pipe.capacity);
        const uint32_t room = capacity - std::min(before, capacity);
        if (room > 0) {
          SysResult r = sysResult(splice(src.get(), nullptr, d.pipe.writeFd(), nullptr, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
          if (r.ok() && r.value > 0) {
            d.pipeBytes += static_cast<uint32_t>(r.value);
            budget -= std::min<uint64_t>(budget, r.value);
            f.lastActiveMs = now;
            progress = true;
            if (before == 0 && r.value < kScratchSize / 4) d.bulk = d.wantsLargePipe = false;
            // The source has more queued than a standard pipe holds: the pipe goes back once it
            // is empty, and the next read asks for a large one. Either one read filled the pipe's
            // bytes, or, the pipe delivered, a second read of this wake-up found bulk bytes again.
            // A pipe is also full at 16 buffers, one per packet when packets come MSS-sized
            // (a NIC, GRO or not): reads stop near 23 KiB, and the bytes test alone never fires.
            if (before == 0 && r.value >= kScratchSize / 4 && !d.pipe.large && pipes_.adaptive() &&
                (r.value == room || ++bulkReadsIntoEmptyPipe >= 2))
              d.wantsLargePipe = true;
          } else if (r.ok()) {
            // splice() also returns 0 at a TCP urgent mark, with data still behind it, even
            // when the FIN has arrived too. recv() on the copy path, which steps over the urgent
            // byte and returns 0 only at the real end, decides: one extra syscall per bulk flow.
            // It may read only once the pipe is empty (order); until then only delivery is
            // progress, or this loop would spin on the same 0.
            d.bulk = d.wantsLargePipe = false;
            if (before == 0) progress = true;
          } else if (r.error == EAGAIN) {
            if (d.pipeBytes == 0) src.readable = false;
          } else if (r.error != EINTR) {
            return PumpResult::SourceReset;
          }
        }
      } else {
        SysResult r = sysResult(recv(src.get(), scratch_.get(), kScratchSize, MSG_DONTWAIT));
        if (r.ok() && r.value > 0) {
          const uint32_t n = static_cast<uint32_t>(r.value);
          budget -= std::min<uint64_t>(budget, n);
          f.lastActiveMs = now;
          progress = true;
          if (n == kScratchSize) {
            d.bulk = true;
          } else if (!src.peerClosed && !src.urgent) {
            // (recv() also stops short just before an urgent mark.)
            src.readable = false;
          }
          uint32_t sent = 0;
          if (dst.writable) {
            SysResult w = sysResult(send(dst.get(), scratch_.get(), n, MSG_NOSIGNAL | MSG_DONTWAIT));
            if (w.ok()) {
              sent = static_cast<uint32_t>(w.value);
              delivered(w.value, false);
            } else if (w.error == EAGAIN) {
              dst.writable = false;
            } else if (w.error != EINTR) {
              return PumpResult::DestinationReset;
            }
          }
          if (sent < n) {
            d.buffer.reset(new char[kScratchSize]);
            std::memcpy(d.buffer.get(), scratch_.get() + sent, n - sent);
            d.bufferStart = 0;
            d.bufferEnd = n - sent;
          }
        } else if (r.ok()) {
          d.eof = true;
          src.urgent = false;
          progress = true;
        } else if (r.error == EAGAIN) {
          src.readable = false;
          src.urgent = false;  // past the mark: nothing more to read for now
        } else if (r.error != EINTR) {
          return PumpResult::SourceReset;
        }
      }
    }

    if (!progress) break;
  }
  // An empty pipe goes back even when the last read found nothing (a stale edge), so an idle
  // flow holds no pipe.
  if (d.pipe.valid() && d.pipeBytes == 0) pipes_.put(d.pipe);

  if (d.eof && !d.holdsBytes() && !d.shutdownSent) {
    // When the other direction is finished too, the flow closes right away and close() sends
    // this FIN: the shutdown() call would be one syscall for nothing.
    const Direction& other = &d == &f.up ? f.down : f.up;
    if (!other.shutdownSent) shutdown(dst.get(), SHUT_WR);
    d.shutdownSent = true;
  }
  bool moreToRead = src.readable && !d.eof && d.bufferStart == d.bufferEnd;
  return budget == 0 && moreToRead ? PumpResult::Yielded : PumpResult::Idle;
}

void SplicePump::release(Direction& d) {
  // A pipe with bytes left in it cannot go back to the pool: the next flow would read them.
  if (d.pipeBytes > 0) {
    pipes_.kill(d.pipe);
  } else {
    pipes_.put(d.pipe);
  }
  d.pipeBytes = 0;
}

}  // namespace lb4
