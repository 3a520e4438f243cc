#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "harness.h"
#include "io/sys_result.h"
#include "test_util.h"
#include "io/unique_fd.h"

using lb4::UniqueFd;

TEST(unique_fd, closes_once_and_moves) {
  int raw;
  {
    UniqueFd a(open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(a);
    raw = a.get();
    UniqueFd b(std::move(a));
    CHECK(!a);
    CHECK_EQ(b.get(), raw);
    UniqueFd c;
    c = std::move(b);
    CHECK(!b);
    CHECK_EQ(c.get(), raw);
    c = std::move(c);  // self-move keeps the descriptor
    CHECK_EQ(c.get(), raw);
    CHECK(lb4test::isOpen(raw));
  }
  CHECK_EQ(lb4test::descriptorError(raw), EBADF);
}

TEST(unique_fd, release_and_reset) {
  UniqueFd a(open("/dev/null", O_RDONLY | O_CLOEXEC));
  REQUIRE(a);
  int raw = a.release();
  CHECK(!a);
  CHECK(lb4test::isOpen(raw));
  a.reset(raw);
  CHECK_EQ(a.get(), raw);
  a.reset();
  CHECK_EQ(lb4test::descriptorError(raw), EBADF);
  CHECK_EQ(a.get(), -1);
}

TEST(sys_result, captures_errno_with_the_value) {
  lb4::SysResult bad = lb4::sysResult(close(-1));
  CHECK(!bad.ok());
  CHECK_EQ(bad.value, -1);
  CHECK_EQ(bad.error, EBADF);
  errno = EINTR;
  lb4::SysResult good = lb4::sysResult(5);
  CHECK(good.ok());
  CHECK_EQ(good.value, 5);
  CHECK_EQ(good.error, 0);
  CHECK(lb4::isConnectionError(ECONNRESET));
  CHECK(lb4::isConnectionError(EPIPE));
  CHECK(!lb4::isConnectionError(EAGAIN));
  CHECK(!lb4::isConnectionError(EMFILE));
}
