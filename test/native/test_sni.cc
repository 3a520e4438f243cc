// SNI routing: the ClientHello parser against built hellos and their error cases, the route
// table's matching rules, peeking at a hello on a real socket, and a short fuzz pass (the long
// one is lb4_sni_fuzz).

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "client_hello_fuzz.h"
#include "harness.h"
#include "io/unique_fd.h"
#include "sni/client_hello.h"
#include "sni/hello_reader.h"
#include "sni/sni_routes.h"

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
  routes.enable(2);
  CHECK(routes.add("API.example.com.", 0));
  CHECK(routes.add("*.example.org", 1));
  CHECK(routes.add("www.example.org", 3));
  CHECK(!routes.add("a..b", 0));
  CHECK(!routes.add("*.", 0));
  CHECK(!routes.add("*a.example", 0));
  CHECK(!routes.add("", 0));
  auto pool = [&](const std::string& name) { return routes.route(name).pool; };
  CHECK_EQ(pool("api.example.com"), 0);
  CHECK_EQ(pool("a.example.org"), 1);
  CHECK_EQ(pool("www.example.org"), 3);  // exact beats wildcard, whatever the order
  CHECK_EQ(pool("a.b.example.org"), 2);  // one label only
  CHECK_EQ(pool("example.org"), 2);
  CHECK_EQ(pool("xexample.org"), 2);
  CHECK_EQ(pool(""), 2);
  CHECK(routes.route("a.example.org").matched);
  CHECK(!routes.route("other").matched);
  lb4::SniRoutes strict;
  strict.enable(lb4::SniRoutes::kNoPool);
  CHECK(strict.add("a.test", 0));
  CHECK_EQ(strict.route("b.test").pool, lb4::SniRoutes::kNoPool);
}

TEST(sni, peeks_a_hello_off_a_socket_without_taking_it) {
  int pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) == 0);
  lb4::UniqueFd client(pair[0]), server(pair[1]);
  std::vector<uint8_t> hello = buildClientHello(named("peek.example"));
  CHECK(lb4::peekClientHello(server.get(), false).status == lb4::HelloReadStatus::Waiting);
  REQUIRE(write(client.get(), hello.data(), 10) == 10);
  CHECK(lb4::peekClientHello(server.get(), false).status == lb4::HelloReadStatus::Waiting);
  REQUIRE(write(client.get(), hello.data() + 10, hello.size() - 10) == static_cast<ssize_t>(hello.size() - 10));
  lb4::HelloRead r = lb4::peekClientHello(server.get(), false);
  REQUIRE(r.status == lb4::HelloReadStatus::Done);
  CHECK_EQ(r.hello.serverName, "peek.example");
  // Still all there for the backend.
  std::vector<uint8_t> back(hello.size() + 1);
  CHECK_EQ(read(server.get(), back.data(), back.size()), static_cast<ssize_t>(hello.size()));
  // A client that ends its stream in the middle of a hello sent a malformed one.
  REQUIRE(write(client.get(), hello.data(), 20) == 20);
  client.reset();
  lb4::HelloRead truncated = lb4::peekClientHello(server.get(), true);
  CHECK(truncated.status == lb4::HelloReadStatus::Rejected);
  CHECK(truncated.hello.error == HelloError::Malformed);
}

TEST(sni, short_fuzz_pass) {
  lb4test::FuzzOutcome o = lb4test::fuzzClientHelloParser(20000, 7);
  CHECK_EQ(o.violations, 0u);
  if (o.violations) lb4test::note(o.firstViolation);
  CHECK(o.accepted > 0);
  CHECK(o.rejected > 0);
  CHECK(o.needMore > 0);
}
