#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"
#include "tcp/pipe_pool.h"
#include "test_util.h"

using lb4::Pipe;
using lb4::PipePool;
using lb4test::descriptorError;
using lb4test::isOpen;

namespace {

// A pipe's descriptor numbers, kept to look at after the pool has taken the pipe.
struct PipeNumbers {
  int readFd = -1;
  int writeFd = -1;
  explicit PipeNumbers(const Pipe& p) : readFd(p.readFd()), writeFd(p.writeFd()) {}
};

}  // namespace

TEST(pipe_pool, put_then_get_reuses_the_same_pipe) {
  PipePool pool(4, 0);
  Pipe a, b;
  REQUIRE(pool.get(a));
  REQUIRE(pool.get(b));
  CHECK(a.valid());
  CHECK(b.valid());
  CHECK_NE(a.readFd(), b.readFd());
  const int aRead = a.readFd(), aWrite = a.writeFd(), bRead = b.readFd(), bWrite = b.writeFd();
  CHECK(isOpen(aRead) && isOpen(aWrite));
  // Non-blocking and close-on-exec, both ends.
  CHECK((fcntl(aRead, F_GETFL) & O_NONBLOCK) != 0);
  CHECK((fcntl(aWrite, F_GETFL) & O_NONBLOCK) != 0);
  CHECK((fcntl(aRead, F_GETFD) & FD_CLOEXEC) != 0);

  pool.put(a);
  CHECK(!a.valid());  // put() resets the caller's handle
  CHECK_EQ(a.writeFd(), -1);
  pool.put(b);
  CHECK_EQ(pool.idle(), 2u);
  CHECK(isOpen(aRead) && isOpen(bRead));  // pooled, not closed

  Pipe c, d;
  REQUIRE(pool.get(c));
  REQUIRE(pool.get(d));
  CHECK_EQ(pool.idle(), 0u);
  // The same descriptors come back (most recently returned first).
  CHECK_EQ(c.readFd(), bRead);
  CHECK_EQ(c.writeFd(), bWrite);
  CHECK_EQ(d.readFd(), aRead);
  CHECK_EQ(d.writeFd(), aWrite);

  // A reused pipe still works.
  CHECK_EQ(write(c.writeFd(), "x", 1), 1);
  char ch = 0;
  CHECK_EQ(read(c.readFd(), &ch, 1), 1);
  CHECK_EQ(ch, 'x');
  pool.put(c);
  pool.put(d);
}

TEST(pipe_pool, keeps_at_most_max_idle) {
  PipePool pool(1, 0);
  Pipe p[3];
  for (auto& x : p) REQUIRE(pool.get(x));
  const PipeNumbers copy[3] = {PipeNumbers(p[0]), PipeNumbers(p[1]), PipeNumbers(p[2])};
  for (auto& x : p) pool.put(x);
  CHECK_EQ(pool.idle(), 1u);
  CHECK_EQ(pool.inUse(), 0u);
  // The first one back was kept; the two past maxIdle were closed, both ends.
  CHECK(isOpen(copy[0].readFd) && isOpen(copy[0].writeFd));
  for (int i = 1; i < 3; ++i) {
    CHECK_EQ(descriptorError(copy[i].readFd), EBADF);
    CHECK_EQ(descriptorError(copy[i].writeFd), EBADF);
  }

  // maxIdle 0: nothing is kept.
  PipePool none(0, 0);
  Pipe q;
  REQUIRE(none.get(q));
  const PipeNumbers qc(q);
  none.put(q);
  CHECK_EQ(none.idle(), 0u);
  CHECK_EQ(descriptorError(qc.readFd), EBADF);
  CHECK_EQ(descriptorError(qc.writeFd), EBADF);
}

TEST(pipe_pool, kill_closes_whatever_the_pipe_holds) {
  PipePool pool(4, 0);
  Pipe p;
  REQUIRE(pool.get(p));
  CHECK_EQ(write(p.writeFd(), "left over", 9), 9);
  const PipeNumbers copy(p);
  pool.kill(p);
  CHECK(!p.valid());
  CHECK_EQ(descriptorError(copy.readFd), EBADF);
  CHECK_EQ(descriptorError(copy.writeFd), EBADF);
  CHECK_EQ(pool.idle(), 0u);
  CHECK_EQ(pool.inUse(), 0u);
  // Killing or putting an empty handle does nothing.
  Pipe empty;
  pool.kill(empty);
  pool.put(empty);
  CHECK_EQ(pool.inUse(), 0u);
  CHECK_EQ(pool.idle(), 0u);
}

TEST(pipe_pool, default_capacity_is_64k) {
  PipePool pool(4, 0);
  Pipe p;
  REQUIRE(pool.get(p));
  CHECK_EQ(p.capacity, 65536);
  CHECK(!p.large);
  CHECK_EQ(fcntl(p.writeFd(), F_GETPIPE_SZ), 65536);
  pool.put(p);
}

TEST(pipe_pool, honours_a_pipe_size_request) {
  const int want = 256 * 1024;
  PipePool pool(4, want);
  Pipe p;
  REQUIRE(pool.get(p));
  const int real = fcntl(p.writeFd(), F_GETPIPE_SZ);
  lb4test::note("F_GETPIPE_SZ after a 256 KiB request: " + std::to_string(real));
  CHECK_EQ(p.capacity, want);
  CHECK_EQ(real, want);
  // The pipe really holds `capacity` bytes: one non-blocking write of that much fits whole.
  std::string bytes(static_cast<size_t>(p.capacity), 'z');
  CHECK_EQ(write(p.writeFd(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  CHECK_EQ(write(p.writeFd(), "!", 1), -1);  // and not a byte more
  pool.kill(p);
}

TEST(pipe_pool, capacity_never_exceeds_the_real_pipe) {
  // A size the kernel rounds up (to a power of two pages): the capacity is what the kernel
  // reports, never more than the pipe holds.
  for (int want : {1000, 100000, 70000, 4096}) {
    PipePool pool(2, want);
    Pipe p;
    REQUIRE(pool.get(p));
    const int real = fcntl(p.writeFd(), F_GETPIPE_SZ);
    CHECK_GT(p.capacity, 0);
    CHECK_EQ(p.capacity, real);
    pool.put(p);
  }
}

TEST(pipe_pool, counts_pipes_in_use) {
  PipePool pool(8, 0);
  std::vector<Pipe> p(3);
  for (auto& x : p) REQUIRE(pool.get(x));
  CHECK_EQ(pool.inUse(), 3u);
  pool.put(p[0]);
  CHECK_EQ(pool.inUse(), 2u);
  CHECK_EQ(pool.idle(), 1u);
  pool.kill(p[1]);
  CHECK_EQ(pool.inUse(), 1u);
  CHECK_EQ(pool.idle(), 1u);
  Pipe again;
  REQUIRE(pool.get(again));  // from the idle list
  CHECK_EQ(pool.inUse(), 2u);
  CHECK_EQ(pool.idle(), 0u);
  pool.put(again);
  pool.put(p[2]);
  CHECK_EQ(pool.inUse(), 0u);
  CHECK_EQ(pool.idle(), 2u);
}

TEST(pipe_pool, destructor_closes_idle_pipes) {
  int readFd = -1, writeFd = -1;
  {
    PipePool pool(4, 0);
    Pipe p;
    REQUIRE(pool.get(p));
    readFd = p.readFd();
    writeFd = p.writeFd();
    pool.put(p);
    CHECK(isOpen(readFd));
  }
  CHECK_EQ(descriptorError(readFd), EBADF);
  CHECK_EQ(descriptorError(writeFd), EBADF);
}

TEST(pipe_pool, a_pipe_closes_its_ends_when_dropped) {
  // A pipe the pool handed out and nobody gave back (a bug, or an early return) must not leak
  // its descriptors: Pipe owns them.
  int readFd = -1, writeFd = -1;
  {
    PipePool pool(4, 0);
    Pipe p;
    REQUIRE(pool.get(p));
    readFd = p.readFd();
    writeFd = p.writeFd();
    Pipe moved = std::move(p);
    CHECK(!p.valid());
    CHECK_EQ(moved.readFd(), readFd);
    CHECK(isOpen(readFd) && isOpen(writeFd));
  }
  CHECK_EQ(descriptorError(readFd), EBADF);
  CHECK_EQ(descriptorError(writeFd), EBADF);
}

TEST(pipe_pool, large_pipes_hold_a_mebibyte_and_are_bounded_per_worker) {
  PipePool pool(4, 0);
  CHECK(pool.adaptive());
  std::vector<Pipe> large(PipePool::kMaxLargePipes);
  for (auto& p : large) {
    REQUIRE(pool.getLarge(p));
    CHECK(p.large);
    CHECK_EQ(p.capacity, PipePool::kLargePipeSize);
    CHECK_EQ(fcntl(p.writeFd(), F_GETPIPE_SZ), PipePool::kLargePipeSize);
  }
  CHECK_EQ(pool.largeOpen(), PipePool::kMaxLargePipes);
  // Past the budget: no large pipe, and the caller falls back to a standard one.
  Pipe over;
  CHECK(!pool.getLarge(over));
  CHECK(!over.valid());
  REQUIRE(pool.get(over));
  CHECK(!over.large);
  CHECK_EQ(over.capacity, 65536);
  // A large pipe given back is spare, not closed, and still counts against the budget; the next
  // getLarge() takes it again, and a standard get() never hands one out.
  const int spareRead = large[0].readFd();
  pool.put(large[0]);
  CHECK_EQ(pool.largeOpen(), PipePool::kMaxLargePipes);
  Pipe standard;
  REQUIRE(pool.get(standard));
  CHECK(!standard.large);
  CHECK_NE(standard.readFd(), spareRead);
  Pipe again;
  REQUIRE(pool.getLarge(again));
  CHECK_EQ(again.readFd(), spareRead);
  // A killed large pipe frees its place in the budget.
  pool.kill(again);
  CHECK_EQ(pool.largeOpen(), PipePool::kMaxLargePipes - 1);
  CHECK_EQ(descriptorError(spareRead), EBADF);
  Pipe freed;
  REQUIRE(pool.getLarge(freed));
  CHECK(freed.large);
  pool.put(freed);
  for (size_t i = 1; i < large.size(); ++i) pool.put(large[i]);
  pool.put(over);
  pool.put(standard);
  CHECK_EQ(pool.inUse(), 0u);
}

TEST(pipe_pool, a_fixed_pipe_size_turns_large_pipes_off) {
  PipePool pool(4, 128 * 1024);
  CHECK(!pool.adaptive());
  Pipe p;
  CHECK(!pool.getLarge(p));
  CHECK(!p.valid());
  CHECK_EQ(pool.largeOpen(), 0u);
}

// An unprivileged user's pipes share fs.pipe-user-pages-soft (16384 pages by default); past it
// the kernel gives every new pipe of the user 2 pages. lb4's large pipes keep to half of it.
TEST(pipe_pool, large_pipes_per_worker_keep_to_half_of_an_unprivileged_users_budget) {
  CHECK_EQ(PipePool::largePipesPerWorker(16384, false, 1, 4096), 32u);  // 32 x 256 pages = 8192
  CHECK_EQ(PipePool::largePipesPerWorker(16384, false, 2, 4096), 16u);
  CHECK_EQ(PipePool::largePipesPerWorker(16384, false, 8, 4096), 4u);
  CHECK_EQ(PipePool::largePipesPerWorker(16384, false, 64, 4096), 0u);
  CHECK_EQ(PipePool::largePipesPerWorker(1 << 20, false, 1, 4096), PipePool::kMaxLargePipes);
  CHECK_EQ(PipePool::largePipesPerWorker(16384, true, 64, 4096), PipePool::kMaxLargePipes);
  CHECK_EQ(PipePool::largePipesPerWorker(0, false, 64, 4096), PipePool::kMaxLargePipes);  // no budget
  CHECK_EQ(PipePool::largePipesPerWorker(16384, false, 2, 65536), 32u);                  // 16-page large pipes
}

TEST(pipe_pool, get_large_stops_at_the_pools_large_pipe_budget) {
  PipePool pool(4, 0, 2);
  Pipe a, b, c;
  REQUIRE(pool.getLarge(a));
  REQUIRE(a.large);  // the tests run as root: the kernel grows the pipe
  REQUIRE(pool.getLarge(b));
  CHECK(!pool.getLarge(c));
  CHECK(!c.valid());
  CHECK_EQ(pool.largeOpen(), 2u);
  pool.put(a);
  CHECK(pool.getLarge(c));  // a spare large pipe is reused, within the budget
  CHECK(c.large);
  pool.put(b);
  pool.put(c);
}

// The kernel asks capable(), in the initial user namespace, whether a pipe's user is exempt from
// the pipe budget: a process with every capability inside a user namespace of its own (a rootless
// container, `unshare -U -r`) still has the budget, and its large pipes must keep to half of it.
TEST(pipe_pool, capabilities_inside_a_user_namespace_do_not_lift_the_pipe_budget) {
  const uint32_t workers = 2;
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Exit codes: 0 right, 1 wrong count, 2 the kernel still exempts (premise), 3 cannot check here.
    if (unshare(CLONE_NEWUSER) != 0) _exit(3);
    // The premise: the kernel refuses what only CAP_SYS_RESOURCE may do, a pipe past
    // fs.pipe-max-size, though CapEff now lists every capability.
    int fds[2];
    if (pipe(fds) != 0) _exit(3);
    long maxSize = 0;
    std::ifstream("/proc/sys/fs/pipe-max-size") >> maxSize;
    if (maxSize <= 0 || maxSize > (1L << 29)) _exit(3);  // no size past it to ask for
    if (fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(maxSize) * 2) >= 0 || errno != EPERM) _exit(2);
    std::ifstream soft("/proc/sys/fs/pipe-user-pages-soft");
    uint64_t softPages = 0;
    soft >> softPages;
    const size_t want = PipePool::largePipesPerWorker(softPages, false, workers, sysconf(_SC_PAGESIZE));
    _exit(PipePool::largePipesPerWorker(workers) == want ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 3) {
    lb4test::note("no user namespace (or no checkable fs.pipe-max-size) here: nothing to check");
    return;
  }
  CHECK_EQ(WEXITSTATUS(status), 0);
}

TEST(pipe_pool, the_pipe_budget_reads_both_sysctls_and_survives_garbage) {
  CHECK_EQ(PipePool::pipeBudgetPages("16384\n", "0\n"), 16384u);
  CHECK_EQ(PipePool::pipeBudgetPages("16384\n", "4096\n"), 4096u);  // a hard limit below the soft one
  CHECK_EQ(PipePool::pipeBudgetPages("16384\n", "65536\n"), 16384u);
  CHECK_EQ(PipePool::pipeBudgetPages("0\n", "0\n"), 0u);  // no budget at all
  CHECK_EQ(PipePool::pipeBudgetPages("0\n", "8192\n"), 8192u);
  // Unreadable or garbage: the kernel's default soft limit, never "no budget".
  CHECK_EQ(PipePool::pipeBudgetPages("", ""), 16384u);
  CHECK_EQ(PipePool::pipeBudgetPages(nullptr, nullptr), 16384u);
  CHECK_EQ(PipePool::pipeBudgetPages("lots\n", "x"), 16384u);
  CHECK_EQ(PipePool::pipeBudgetPages("-1\n", "12abc"), 16384u);
  CHECK_EQ(PipePool::pipeBudgetPages("99999999999999999999999\n", "0"), 16384u);  // out of range
}

TEST(pipe_pool, only_caps_in_the_initial_user_namespace_exempt_from_the_pipe_budget) {
  const char* root = "Name:\tlb4\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
  CHECK(PipePool::exemptFromPipeBudget(root, true));
  CHECK(!PipePool::exemptFromPipeBudget(root, false));  // a user namespace of its own
  CHECK(PipePool::exemptFromPipeBudget("Name:\tx\nCapEff:\t0000000001000000\n", true));   // CAP_SYS_RESOURCE
  CHECK(PipePool::exemptFromPipeBudget("Name:\tx\nCapEff:\t0000000000200000\n", true));   // CAP_SYS_ADMIN
  CHECK(!PipePool::exemptFromPipeBudget("Name:\tx\nCapEff:\t0000000000000400\n", true));  // NET_BIND_SERVICE only
  // CapBnd or CapPrm holding the bits is not enough: only the effective set counts.
  CHECK(!PipePool::exemptFromPipeBudget("Name:\tx\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000000000\n", true));
  CHECK(!PipePool::exemptFromPipeBudget("Name:\tx\nCapEff:\tzz\n", true));
  CHECK(!PipePool::exemptFromPipeBudget("Name:\tx\n", true));
  CHECK(!PipePool::exemptFromPipeBudget("", true));
  CHECK(!PipePool::exemptFromPipeBudget(nullptr, true));
}
