#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <vector>

#include "tcp/flow_table.h"
#include "harness.h"
#include "test_util.h"

using lb4::Flow;
using lb4::FlowState;
using lb4::FlowTable;

TEST(flow_table, ids_are_unique_and_name_the_worker) {
  FlowTable w0(0), w1(1), w7(7), w255(255);
  std::set<uint64_t> ids;
  size_t opened = 0;
  for (int round = 0; round < 3; ++round) {
    for (FlowTable* t : {&w0, &w1, &w7, &w255}) {
      std::vector<Flow*> open;
      for (int i = 0; i < 100; ++i) open.push_back(&t->open());
      for (Flow* f : open) {
        ids.insert(f->id);
        ++opened;
        CHECK_NE(f->id, 0u);
        CHECK_LT(f->id, 1ULL << 53);  // crosses into JavaScript as a number
      }
      CHECK_EQ(open.front()->id % 256, t == &w0 ? 0u : t == &w1 ? 1u : t == &w7 ? 7u : 255u);
      for (Flow* f : open) CHECK_EQ(f->id % 256, open.front()->id % 256);
      // Retire and release every other round, so slots are reused and ids still never repeat.
      for (Flow* f : open) t->retire(*f);
      t->releaseClosed();
    }
  }
  CHECK_EQ(ids.size(), opened);
}

TEST(flow_table, a_slot_is_reused_only_after_release) {
  FlowTable t(3);
  Flow& a = t.open();
  Flow& b = t.open();
  const uint32_t aSlot = a.slot;
  const uint64_t aId = a.id;
  CHECK_NE(a.slot, b.slot);
  CHECK(a.state == FlowState::Connecting);
  a.listener = 9;
  a.up.bytes = 1234;
  a.attempts = 2;

  t.retire(a);
  CHECK(a.state == FlowState::Closed);
  // Within the same pass a new flow must not land in the retired slot: events already returned
  // for the old flow would find the new one.
  Flow& c = t.open();
  CHECK_NE(c.slot, aSlot);
  CHECK(t.at(aSlot) == &a);
  CHECK(t.at(aSlot)->state == FlowState::Closed);

  t.releaseClosed();
  Flow& d = t.open();
  CHECK_EQ(d.slot, aSlot);
  CHECK(&d == t.at(aSlot));
  // The reused slot holds a fresh flow.
  CHECK_NE(d.id, aId);
  CHECK(d.state == FlowState::Connecting);
  CHECK_EQ(d.listener, 0u);
  CHECK_EQ(d.up.bytes, 0u);
  CHECK_EQ(d.attempts, 0);
  CHECK(d.up.buffer == nullptr);
  (void)b;
}

TEST(flow_table, counts_live_flows) {
  FlowTable t(0);
  CHECK_EQ(t.live(), 0u);
  Flow& a = t.open();
  Flow& b = t.open();
  Flow& c = t.open();
  CHECK_EQ(t.live(), 3u);
  t.retire(b);
  CHECK_EQ(t.live(), 2u);
  t.releaseClosed();
  CHECK_EQ(t.live(), 2u);

  std::set<uint64_t> visited;
  t.forEach([&](Flow& f) { visited.insert(f.id); });
  CHECK_EQ(visited.size(), 2u);
  CHECK(visited.count(a.id) == 1 && visited.count(c.id) == 1);

  t.retire(a);
  t.retire(c);
  CHECK_EQ(t.live(), 0u);
  int seen = 0;
  t.forEach([&](Flow&) { ++seen; });
  CHECK_EQ(seen, 0);
  t.releaseClosed();
  CHECK_EQ(t.live(), 0u);
}

TEST(flow_table, at_is_bounded) {
  FlowTable t(0);
  CHECK(t.at(0) == nullptr);
  Flow& a = t.open();
  CHECK(t.at(a.slot) == &a);
  CHECK(t.at(a.slot + 1) == nullptr);
  CHECK(t.at(UINT32_MAX) == nullptr);
}

TEST(flow_table, release_frees_direction_buffers) {
  FlowTable t(0);
  Flow& a = t.open();
  a.up.buffer.reset(new char[16]);
  a.down.buffer.reset(new char[16]);
  t.retire(a);
  CHECK(a.up.buffer != nullptr);  // still there until the pass ends
  t.releaseClosed();
  CHECK(t.at(a.slot)->up.buffer == nullptr);
  CHECK(t.at(a.slot)->down.buffer == nullptr);
}

TEST(flow_table, a_flow_owns_its_descriptors) {
  // A flow's sockets and pipes are owned: whatever a flow still holds when its slot is reused
  // (or the table goes away) is closed, never leaked.
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
  {
    lb4::FlowTable t(0);
    Flow& a = t.open();
    a.client.fd.reset(sv[0]);
    a.backend.fd.reset(sv[1]);
    a.up.pipe.readEnd.reset(fds[0]);
    a.up.pipe.writeEnd.reset(fds[1]);
    t.retire(a);
    t.releaseClosed();
    CHECK(lb4test::isOpen(sv[0]));  // released slots keep their flow until reused
    Flow& b = t.open();             // the same slot, made anew
    CHECK_EQ(b.slot, 0u);
    CHECK_EQ(lb4test::descriptorError(sv[0]), EBADF);
    CHECK_EQ(lb4test::descriptorError(sv[1]), EBADF);
    CHECK_EQ(lb4test::descriptorError(fds[0]), EBADF);
    CHECK_EQ(lb4test::descriptorError(fds[1]), EBADF);

    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    b.client.fd.reset(sv[0]);
    b.backend.fd.reset(sv[1]);
    b.client.closeAbortively();
    CHECK(!b.client.fd);
    CHECK_EQ(lb4test::descriptorError(sv[0]), EBADF);
  }
  CHECK_EQ(lb4test::descriptorError(sv[1]), EBADF);  // the table's end closed the rest
}
