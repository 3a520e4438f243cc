#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/epoll_loop.h"
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
