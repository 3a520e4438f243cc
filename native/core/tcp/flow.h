#pragma once
// One proxied TCP connection: the client's socket, the backend's socket, and the two directions
// of bytes between them. A flow lives and dies on the worker that accepted it.

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "balance/backend_table.h"
#include "counters.h"
#include "enums.h"
#include "io/socket_address.h"
#include "io/unique_fd.h"
#include "sni/hello_reader.h"
#include "tcp/pipe_pool.h"

namespace lb4 {

// One of a flow's two sockets. It owns its descriptor: a flow that is reset, reused or
// destroyed cannot leak it.
struct FlowSocket {
  UniqueFd fd;
  // Edge-triggered readiness as last reported by epoll and not yet used up: set by an event,
  // cleared when a read or write says EAGAIN.
  bool readable = false;
  bool writable = false;
  // The peer's FIN (or a hangup) has been reported: a short read then no longer proves the
  // socket empty, since the end of stream is still to be read.
  bool peerClosed = false;
  // The peer sent TCP urgent data (EPOLLPRI). splice() stops at the urgent mark and says EAGAIN
  // (or 0) with data still behind it, so this socket is read with recv(), which steps over the
  // mark, until recv() says EAGAIN or 0.
  bool urgent = false;

  int get() const { return fd.get(); }
  // An orderly close: the peer reads the end of the stream (after anything still queued).
  void close() { fd.reset(); }
  // SO_LINGER with a zero timeout makes close() send a reset instead of a FIN and drop
  // whatever is still queued: the peer learns at once that the stream did not end cleanly.
  void closeAbortively() {
    if (!fd) return;
    linger lg{1, 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    fd.reset();
  }
};

// Bytes moving from one socket to the other. Small messages go through the worker's scratch
// buffer with recv/send (two syscalls, no pipe); once reads come in full, the direction switches
// to splice(2) through a pipe, so bulk bytes never enter user space. Bytes that could not be
// sent at once wait in the pipe, or in a small heap buffer on the copy path.
struct Direction {
  Pipe pipe;
  uint32_t pipeBytes = 0;           // bytes sitting in `pipe`
  std::unique_ptr<char[]> buffer;   // copy path only; freed when empty
  uint32_t bufferStart = 0;
  uint32_t bufferEnd = 0;
  bool bulk = false;                // recent reads were large: move bytes with splice
  bool wantsLargePipe = false;      // the source had more than a standard pipe takes: take a large one (pipe_pool.h)
  bool eof = false;                 // the source sent its FIN
  bool shutdownSent = false;        // ... and it has been passed on to the destination
  uint64_t bytes = 0;               // bytes delivered to the destination

  bool holdsBytes() const { return pipeBytes > 0 || bufferEnd > bufferStart; }
};

class FlowDeadlineList;

struct Flow {
  uint64_t id = 0;
  uint32_t slot = 0;
  uint32_t listener = 0;
  FlowState state = FlowState::Closed;
  CloseReason closeReason = CloseReason::Done;
  uint32_t attempts = 0;  // connect attempts made
  // The backend pool the client's TLS server name chose (SNI routing), by name: a retry after
  // a table change finds the same pool, or none. Empty: the listener's whole table. (Pool names
  // are short; most fit the string's inline buffer.)
  std::string pool;

  FlowSocket client;
  FlowSocket backend;
  Direction up;    // client -> backend
  Direction down;  // backend -> client

  SocketAddress clientAddress;
  uint64_t flowHash = 0;  // of the client's address: what a picker keeps a client together by
  SocketAddress backendAddress;
  uint32_t backendKey = 0;
  // The backend's own PROXY protocol version, copied at connect: a table swapped in while the
  // flow connects cannot change what this flow's backend is sent.
  std::optional<ProxyVersion> backendProxy;
  CounterSet* backendCounters = nullptr;  // set while a backend is assigned (and counted active)
  TriedBackends tried;
  // Counted against its source in the listener's SourceTracker (released when the flow ends).
  bool sourceCounted = false;
  // Awaiting a ClientHello: the bytes read so far. Once routed they move to `up`'s buffer and
  // go to the backend before anything else the client sends.
  HelloBuffer hello;

  int64_t startMs = 0;       // monotonic
  // Precise monotonic microseconds (monotonicUs) for the backend's latency histograms: when the
  // flow was accepted, and when the connect in progress was started.
  int64_t startUs = 0;
  int64_t connectStartUs = 0;
  int64_t lastActiveMs = 0;  // monotonic; the idle timeout counts from here
  // A listener that takes PROXY protocol headers: the address the client connected to, as the
  // header gave it. Otherwise (or for a header that named none) it is the client socket's own
  // local address, looked up only when a header is to be sent.
  SocketAddress destinationAddress;
  bool hasDestination = false;

  // The worker's list of flows waiting for a deadline (connecting, or awaiting a client's PROXY
  // protocol header or TLS ClientHello), in deadline order: see tcp/deadline_list.h.
  int64_t deadlineMs = 0;
  Flow* deadlinePrev = nullptr;
  Flow* deadlineNext = nullptr;
  FlowDeadlineList* deadlineList = nullptr;
  // The worker's list of flows that stopped early to let others run and have more to move.
  bool onYieldList = false;
};

}  // namespace lb4
