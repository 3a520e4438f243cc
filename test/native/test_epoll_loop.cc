#include <errno.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/epoll_loop.h"
#include "io/epoll_tag.h"
#include "harness.h"
#include "test_util.h"

using lb4::EpollLoop;
using lb4::UniqueFd;

TEST(epoll_loop, reports_ready_descriptors_with_their_tags) {
  EpollLoop loop(8);
  REQUIRE(loop.init().ok());
  UniqueFd a(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), b(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  REQUIRE(a && b);
  CHECK(loop.add(a.get(), EPOLLIN, 0x1234).ok());
  CHECK(loop.add(b.get(), EPOLLIN, (7ull << 2) | 3).ok());
  CHECK_EQ(loop.wait(0), 0);

  uint64_t one = 1;
  CHECK_EQ(write(b.get(), &one, sizeof(one)), 8);
  REQUIRE(loop.wait(1000) == 1);
  CHECK_EQ(loop.event(0).data.u64, (7ull << 2) | 3);
  CHECK((loop.event(0).events & EPOLLIN) != 0);

  CHECK_EQ(write(a.get(), &one, sizeof(one)), 8);
  CHECK_EQ(loop.wait(1000), 2);  // level-triggered: b is still readable

  loop.remove(b.get());
  REQUIRE(loop.wait(1000) == 1);
  CHECK_EQ(loop.event(0).data.u64, 0x1234u);
}

TEST(epoll_loop, errors_come_back_with_errno) {
  EpollLoop loop;
  REQUIRE(loop.init().ok());
  lb4::SysResult r = loop.add(-1, EPOLLIN, 0);
  CHECK(!r.ok());
  CHECK_EQ(r.error, EBADF);
  UniqueFd a(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  CHECK(loop.add(a.get(), EPOLLIN, 1).ok());
  r = loop.add(a.get(), EPOLLIN, 1);
  CHECK_EQ(r.error, EEXIST);
}

TEST(epoll_tag, kind_and_index_round_trip) {
  using lb4::TagKind;
  for (TagKind kind : {TagKind::Wake, TagKind::Listener, TagKind::TcpClient, TagKind::TcpBackend}) {
    for (uint64_t index : {uint64_t{0}, uint64_t{1}, uint64_t{255}, uint64_t{256}, uint64_t{1} << 32,
                           lb4::kTagIndexLimit - 1}) {
      const uint64_t tag = lb4::makeTag(kind, index);
      CHECK(lb4::tagKind(tag) == kind);
      CHECK_EQ(lb4::tagIndex(tag), index);
    }
  }
  // Eight bits of kind: room for 256 kinds, the index in the other 56 bits.
  CHECK_EQ(lb4::kTagIndexLimit, uint64_t{1} << 56);
  CHECK_EQ(lb4::makeTag(TagKind::TcpBackend, 7), (uint64_t{7} << 8) | 3);
  CHECK(lb4::makeTag(TagKind::TcpClient, 5) != lb4::makeTag(TagKind::TcpBackend, 5));
}

TEST(epoll_loop, an_impossible_wait_error_is_fatal_not_a_spin) {
  // A loop whose epoll instance was never made: epoll_wait says EBADF, which no retry fixes.
  lb4test::ChildOutcome child = lb4test::runInChild([] {
    EpollLoop loop;
    for (int i = 0; i < 3; ++i) loop.wait(0);
  });
  CHECK_EQ(child.signal, SIGABRT);
  CHECK_EQ(child.stderrText, "lb4: fatal: epoll_wait: Bad file descriptor (errno 9)\n");
}

TEST(epoll_loop, watch_returns_only_shortages_and_dies_on_bugs) {
  CHECK(lb4::isEpollShortage(ENOMEM));
  CHECK(lb4::isEpollShortage(ENOSPC));
  CHECK(!lb4::isEpollShortage(EEXIST));
  CHECK(!lb4::isEpollShortage(EBADF));
  {
    EpollLoop loop;
    REQUIRE(loop.init().ok());
    UniqueFd a(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    CHECK(loop.watch(a.get(), EPOLLIN, 1).ok());
  }
  // Registering a descriptor twice is lb4's own mistake.
  lb4test::ChildOutcome twice = lb4test::runInChild([] {
    EpollLoop loop;
    if (!loop.init().ok()) _exit(2);
    UniqueFd a(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    loop.watch(a.get(), EPOLLIN, 1);
    loop.watch(a.get(), EPOLLIN, 1);
  });
  CHECK_EQ(twice.signal, SIGABRT);
  CHECK_EQ(twice.stderrText, "lb4: fatal: epoll_ctl: File exists (errno 17)\n");
  // So is removing one that was never registered.
  lb4test::ChildOutcome stray = lb4test::runInChild([] {
    EpollLoop loop;
    if (!loop.init().ok()) _exit(2);
    UniqueFd a(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    loop.remove(a.get());
  });
  CHECK_EQ(stray.signal, SIGABRT);
  CHECK_EQ(stray.stderrText, "lb4: fatal: epoll_ctl: No such file or directory (errno 2)\n");
}
