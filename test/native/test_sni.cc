// SNI routing: the ClientHello parser against built hellos and their error cases, the route
// table's matching rules, peeking at a hello on a real socket, and a short fuzz pass (the long
// one is lb4_sni_fuzz).

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "client_hello_fuzz.h"
#include "harness.h"
#include "io/unique_fd.h"
#include "sni/client_hello.h"
#include "sni/hello_reader.h"
#include "sni/sni_routes.h"
#include "balance/backend_table.h"
#include "listener_slot.h"

using lb4::ClientHello;
using lb4::HelloError;
using lb4::HelloParseStatus;
using lb4test::buildClientHello;
using lb4test::HelloShape;

namespace {

ClientHello parse(const std::vector<uint8_t>& b) { return lb4::parseClientHello(b.data(), b.size()); }

HelloShape named(const std::string& name) {
  HelloShape s;
  s.serverName = name;
  return s;
}

}  // namespace

TEST(sni, parses_the_server_name_and_needs_more_for_every_prefix) {
  std::vector<uint8_t> hello = buildClientHello(named("API.Example.com."));
  ClientHello h = parse(hello);
  REQUIRE(h.status == HelloParseStatus::Done);
  CHECK(h.hasServerName);
  CHECK_EQ(h.serverName, "api.example.com");
  for (size_t n = 0; n < hello.size(); ++n)
    CHECK(lb4::parseClientHello(hello.data(), n).status == HelloParseStatus::NeedMore);
}

TEST(sni, a_hello_split_over_many_records) {
  HelloShape s = named("a.example.org");
  s.recordSize = 7;
  s.padding = 300;
  std::vector<uint8_t> hello = buildClientHello(s);
  ClientHello h = parse(hello);
  REQUIRE(h.status == HelloParseStatus::Done);
  CHECK_EQ(h.serverName, "a.example.org");
}

// needBytes is what a reader waits for (SO_RCVLOWAT) before looking again, so it must never
// pass the point where the answer changes: every prefix shorter than it still needs more.
// Following it, a hello is looked at a few times however it is cut into records.
TEST(sni, need_bytes_is_a_lower_bound_and_keeps_looks_few) {
  for (size_t recordSize : {size_t(16384), size_t(1), size_t(7), size_t(300)}) {
    HelloShape s = named("bytes.example.net");
    s.recordSize = recordSize;
    s.padding = recordSize == 1 ? 2000 : 300;
    std::vector<uint8_t> hello = buildClientHello(s);
    REQUIRE(hello.size() <= lb4::kClientHelloMaxBytes);
    // Every prefix of the start and the end; in between every 7th, which steps through every
    // offset of a one-byte record (5 bytes of header and 1 of data). Each parse walks the whole
    // prefix, so all 12.7k prefixes of the one-byte-record hello took most of the 20 s a test has
    // under ThreadSanitizer, and timed out on a busy machine.
    for (size_t n = 0; n < hello.size(); n += (n < 1024 || n + 1024 >= hello.size()) ? 1 : 7) {
      ClientHello h = lb4::parseClientHello(hello.data(), n);
      REQUIRE(h.status == HelloParseStatus::NeedMore);
      CHECK_GT(h.needBytes, n);
      CHECK_LE(h.needBytes, hello.size());
    }
    size_t looks = 0, at = 0;
    for (;;) {
      ++looks;
      ClientHello h = lb4::parseClientHello(hello.data(), at);
      if (h.status != HelloParseStatus::NeedMore) {
        CHECK(h.status == HelloParseStatus::Done);
        break;
      }
      at = h.needBytes;
    }
    lb4test::note("record size " + std::to_string(recordSize) + ": " + std::to_string(hello.size()) + " bytes, " +
                  std::to_string(looks) + " looks");
    // One record: the start, the header, the whole. One-byte records: each look finds at least
    // a sixth of the missing handshake bytes (a record is 5 bytes of header per byte of it).
    CHECK_LE(looks, recordSize == 1 ? size_t(64) : recordSize == 7 ? size_t(16) : size_t(4));
  }
}

TEST(sni, no_name_and_no_extensions) {
  ClientHello none = parse(buildClientHello(HelloShape{}));
  REQUIRE(none.status == HelloParseStatus::Done);
  CHECK(!none.hasServerName);
  HelloShape bare;
  bare.withExtensions = false;
  ClientHello old = parse(buildClientHello(bare));
  REQUIRE(old.status == HelloParseStatus::Done);
  CHECK(!old.hasServerName);
}

TEST(sni, refuses_what_is_not_a_client_hello) {
  const std::string http = "GET / HTTP/1.1\r\n";
  ClientHello h = lb4::parseClientHello(reinterpret_cast<const uint8_t*>(http.data()), http.size());
  CHECK(h.status == HelloParseStatus::Error);
  CHECK(h.error == HelloError::Malformed);
  // The first byte alone is enough to tell.
  CHECK(lb4::parseClientHello(reinterpret_cast<const uint8_t*>(http.data()), 1).status == HelloParseStatus::Error);
  // A handshake record holding a ServerHello (type 2).
  std::vector<uint8_t> hello = buildClientHello(named("x.test"));
  hello[5] = 2;
  CHECK(parse(hello).error == HelloError::Malformed);
  // A record length past 2^14.
  hello = buildClientHello(named("x.test"));
  hello[3] = 0x40;
  hello[4] = 0x01;
  CHECK(parse(hello).error == HelloError::Malformed);
}

TEST(sni, refuses_bad_server_names) {
  for (const char* bad : {"a..b", ".a", "a b", "a/b", "caf\xc3\xa9.example", "-"}) {
    if (std::string(bad) == "-") continue;  // a lone hyphen is a valid label, checked below
    ClientHello h = parse(buildClientHello(named(bad)));
    CHECK(h.status == HelloParseStatus::Error);
    CHECK(h.error == HelloError::Malformed);
  }
  CHECK(parse(buildClientHello(named(std::string(64, 'a') + ".test"))).error == HelloError::Malformed);
  CHECK(parse(buildClientHello(named("-"))).status == HelloParseStatus::Done);
  // Lengths that do not add up: the extension block one byte too long.
  std::vector<uint8_t> hello = buildClientHello(named("x.test"));
  hello.back() ^= 0;  // untouched: still whole
  CHECK(parse(hello).status == HelloParseStatus::Done);
  const size_t extensionsAt = 5 + 4 + 2 + 32 + 1 + 32 + 2 + 4 + 2;
  hello[extensionsAt + 1]++;
  ClientHello cut = parse(hello);
  CHECK(cut.status == HelloParseStatus::Error);
}

TEST(sni, size_bound) {
  HelloShape big = named("big.example");
  big.padding = 17000;
  std::vector<uint8_t> hello = buildClientHello(big);
  // The handshake header alone tells: no need to wait for 17 KB.
  ClientHello early = lb4::parseClientHello(hello.data(), 9);
  CHECK(early.status == HelloParseStatus::Error);
  CHECK(early.error == HelloError::Oversized);
  // A hello in one-byte records passes the bound on record headers alone.
  HelloShape tiny = named("tiny.example");
  tiny.recordSize = 1;
  tiny.padding = 3000;
  CHECK(parse(buildClientHello(tiny)).error == HelloError::Oversized);
  // Just under the bound is fine.
  HelloShape fits = named("fits.example");
  fits.padding = 16000;
  std::vector<uint8_t> f = buildClientHello(fits);
  REQUIRE(f.size() <= lb4::kClientHelloMaxBytes);
  CHECK(parse(f).status == HelloParseStatus::Done);
}

TEST(sni, routes_exact_wildcard_default) {
  lb4::SniRoutes routes;
  routes.enable("fallback");
  CHECK(routes.add("API.example.com.", "api"));
  CHECK(routes.add("*.example.org", "web"));
  CHECK(routes.add("www.example.org", "www"));
  CHECK(!routes.add("a..b", "x"));
  CHECK(!routes.add("*.", "x"));
  CHECK(!routes.add("*a.example", "x"));
  CHECK(!routes.add("", "x"));
  auto pool = [&](const std::string& name) {
    const std::string* p = routes.route(name).pool;
    return p ? *p : std::string("(none)");
  };
  CHECK_EQ(pool("api.example.com"), "api");
  CHECK_EQ(pool("a.example.org"), "web");
  CHECK_EQ(pool("www.example.org"), "www");  // exact beats wildcard, whatever the order
  CHECK_EQ(pool("a.b.example.org"), "fallback");  // one label only
  CHECK_EQ(pool("example.org"), "fallback");
  CHECK_EQ(pool("xexample.org"), "fallback");
  CHECK_EQ(pool(""), "fallback");
  CHECK(routes.route("a.example.org").matched);
  CHECK(!routes.route("other").matched);
  lb4::SniRoutes strict;
  strict.enable("");
  CHECK(strict.add("a.test", "a"));
  CHECK(strict.route("b.test").pool == nullptr);
}

TEST(sni, reads_a_hello_into_its_buffer_and_parses_only_when_it_can_tell) {
  int pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) == 0);
  lb4::UniqueFd client(pair[0]), server(pair[1]);
  std::vector<uint8_t> hello = buildClientHello(named("read.example"));
  lb4::HelloBuffer buffer;
  CHECK(lb4::readClientHello(server.get(), false, buffer).status == lb4::HelloReadStatus::Waiting);
  REQUIRE(write(client.get(), hello.data(), 10) == 10);
  CHECK(lb4::readClientHello(server.get(), false, buffer).status == lb4::HelloReadStatus::Waiting);
  CHECK_EQ(buffer.size, 10u);
  CHECK_EQ(buffer.need, static_cast<uint32_t>(hello.size()));  // one record: its end
  // Bytes short of what the parser needs are taken, not parsed.
  REQUIRE(write(client.get(), hello.data() + 10, 5) == 5);
  CHECK(lb4::readClientHello(server.get(), false, buffer).status == lb4::HelloReadStatus::Waiting);
  CHECK_EQ(buffer.size, 15u);
  // The rest, and the client's first bytes after it, in one go with its FIN.
  REQUIRE(write(client.get(), hello.data() + 15, hello.size() - 15) == static_cast<ssize_t>(hello.size() - 15));
  REQUIRE(write(client.get(), "after", 5) == 5);
  REQUIRE(shutdown(client.get(), SHUT_WR) == 0);
  lb4::HelloRead r = lb4::readClientHello(server.get(), false, buffer);
  REQUIRE(r.status == lb4::HelloReadStatus::Done);
  CHECK_EQ(r.hello.serverName, "read.example");
  // Every byte is in the buffer, in order, and the FIN is remembered for the backend.
  REQUIRE(buffer.size == hello.size() + 5);
  CHECK(std::memcmp(buffer.bytes.get(), hello.data(), hello.size()) == 0);
  CHECK(std::memcmp(buffer.bytes.get() + hello.size(), "after", 5) == 0);
  CHECK(buffer.endOfStream);
  // A client that ends its stream in the middle of a hello sent a malformed one.
  int pair2[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair2) == 0);
  lb4::UniqueFd client2(pair2[0]), server2(pair2[1]);
  REQUIRE(write(client2.get(), hello.data(), 20) == 20);
  client2.reset();
  lb4::HelloBuffer truncated;
  lb4::HelloRead t = lb4::readClientHello(server2.get(), false, truncated);
  CHECK(t.status == lb4::HelloReadStatus::Rejected);
  CHECK(t.hello.error == HelloError::Malformed);
}

TEST(sni, a_hello_fed_a_byte_at_a_time_grows_its_buffer_and_is_parsed_a_few_times) {
  int pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) == 0);
  lb4::UniqueFd client(pair[0]), server(pair[1]);
  HelloShape s = named("grow.example");
  s.padding = 9000;  // past the first allocation, twice
  std::vector<uint8_t> hello = buildClientHello(s);
  lb4::HelloBuffer buffer;
  size_t parses = 0;
  uint32_t lastNeed = buffer.need;
  lb4::HelloRead r;
  for (size_t i = 0; i < hello.size(); ++i) {
    REQUIRE(write(client.get(), hello.data() + i, 1) == 1);
    r = lb4::readClientHello(server.get(), false, buffer);
    if (buffer.need != lastNeed) ++parses, lastNeed = buffer.need;
    if (r.status != lb4::HelloReadStatus::Waiting) break;
  }
  REQUIRE(r.status == lb4::HelloReadStatus::Done);
  CHECK_EQ(r.hello.serverName, "grow.example");
  CHECK_EQ(buffer.size, static_cast<uint32_t>(hello.size()));
  CHECK(std::memcmp(buffer.bytes.get(), hello.data(), hello.size()) == 0);
  CHECK_LE(parses, 3u);
}

TEST(sni, short_fuzz_pass) {
  lb4test::FuzzOutcome o = lb4test::fuzzClientHelloParser(20000, 7);
  CHECK_EQ(o.violations, 0u);
  if (o.violations) lb4test::note(o.firstViolation);
  CHECK(o.accepted > 0);
  CHECK(o.rejected > 0);
  CHECK(o.needMore > 0);
}

TEST(sni, backend_tables_split_into_named_pools) {
  std::vector<lb4::BackendEntry> entries(4);
  const char* pools[] = {"web", "api", "web", "api"};
  for (uint32_t i = 0; i < 4; ++i) {
    entries[i].key = i;
    entries[i].id = "l/" + std::to_string(i);
    entries[i].pool = pools[i];
  }
  auto table = lb4::buildBackendTable(lb4::Algorithm::Maglev, 1, entries);
  REQUIRE(table->pools.size() == 2u);
  CHECK_EQ(table->poolIndex("web"), 0);
  CHECK_EQ(table->poolIndex("api"), 1);
  CHECK_EQ(table->poolIndex("nope"), -1);
  CHECK_EQ(table->pools[0]->backends.size(), 2u);
  CHECK_EQ(table->pools[1]->backends[0].key, 1u);
  CHECK(!table->pools[1]->maglev.empty());  // each pool balances on its own
  lb4::ListenerSlot slot;
  slot.adoptTable(table, 0);
  CHECK(slot.pickerFor("api") != nullptr);
  CHECK(slot.pickerFor("nope") == nullptr);
  lb4::TriedBackends none;
  for (uint64_t hash = 0; hash < 50; ++hash) CHECK_EQ(slot.pickerFor("api")->pick(hash, none)->pool, "api");
}
