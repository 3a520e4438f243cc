// The PROXY protocol module: the parser against the spec's examples and its error cases, the
// writer's exact bytes, trusted networks, reading a header off a real socket, and a short fuzz
// pass (the long one is lb4_proxy_fuzz).

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"
#include "io/unique_fd.h"
#include "proxy_header_fuzz.h"
#include "proxy_protocol/header_parser.h"
#include "proxy_protocol/header_reader.h"
#include "proxy_protocol/header_writer.h"
#include "policy/network_set.h"

using lb4::ProxyHeader;
using lb4::ProxyHeaderError;
using lb4::ProxyParseStatus;
using lb4::SocketAddress;

namespace {

ProxyHeader parseText(const std::string& s) { return lb4::parseProxyHeader(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }
ProxyHeader parseBytes(const std::vector<uint8_t>& b) { return lb4::parseProxyHeader(b.data(), b.size()); }

SocketAddress address(const char* ip, uint16_t port) {
  SocketAddress a;
  SocketAddress::fromIp(ip, port, a);
  return a;
}

std::vector<uint8_t> v2(uint8_t command, uint8_t family, std::vector<uint8_t> body) {
  std::vector<uint8_t> b(lb4::kProxyV2Signature, lb4::kProxyV2Signature + 12);
  b.push_back(command);
  b.push_back(family);
  b.push_back(static_cast<uint8_t>(body.size() >> 8));
  b.push_back(static_cast<uint8_t>(body.size()));
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

// 192.168.0.1:56324 -> 192.168.0.11:443, the spec's own example addresses.
const std::vector<uint8_t> kV4Addresses = {192, 168, 0, 1, 192, 168, 0, 11, 0xDC, 0x04, 0x01, 0xBB};

}  // namespace

TEST(proxy_protocol, v1_tcp4_spec_example) {
  const std::string header = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  ProxyHeader h = parseText(header + "GET / HTTP/1.1\r\n");
  REQUIRE(h.status == ProxyParseStatus::Done);
  CHECK_EQ(h.version, 1);
  CHECK_EQ(h.length, header.size());
  CHECK(!h.local);
  CHECK_EQ(h.source.toString(), "192.168.0.1:56324");
  CHECK_EQ(h.destination.toString(), "192.168.0.11:443");
  // Every prefix needs more.
  for (size_t n = 0; n < header.size(); ++n) CHECK(parseText(header.substr(0, n)).status == ProxyParseStatus::NeedMore);
}

TEST(proxy_protocol, v1_tcp6_and_unknown) {
  ProxyHeader h = parseText("PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\n");
  REQUIRE(h.status == ProxyParseStatus::Done);
  CHECK_EQ(h.source.toString(), "[2001:db8::1]:4000");
  CHECK_EQ(h.destination.toString(), "[2001:db8::2]:80");
  ProxyHeader u = parseText("PROXY UNKNOWN\r\n");
  REQUIRE(u.status == ProxyParseStatus::Done);
  CHECK(u.local);
  CHECK_EQ(u.length, 15u);
  // "UNKNOWN" may be followed by anything up to the CRLF, which the receiver ignores.
  ProxyHeader u2 = parseText("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n");
  REQUIRE(u2.status == ProxyParseStatus::Done);
  CHECK(u2.local);
}

TEST(proxy_protocol, v1_refuses_what_the_spec_forbids) {
  auto error = [](const std::string& s) {
    ProxyHeader h = parseText(s);
    return h.status == ProxyParseStatus::Error ? h.error : ProxyHeaderError::None;
  };
  CHECK(error("GET / HTTP/1.1\r\n") == ProxyHeaderError::Malformed);
  CHECK(error("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n") == ProxyHeaderError::None);  // no CR yet: needs more
  CHECK(error("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX") == ProxyHeaderError::Malformed);
  CHECK(error("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n") == ProxyHeaderError::Malformed);
  CHECK(error("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n") == ProxyHeaderError::Malformed);
  CHECK(error("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n") == ProxyHeaderError::Malformed);
  CHECK(error("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n") == ProxyHeaderError::Malformed);
  CHECK(error("PROXY TCP4 ::1 ::2 1 2\r\n") == ProxyHeaderError::Malformed);
  CHECK(error("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n") == ProxyHeaderError::Malformed);
  CHECK(error("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n") == ProxyHeaderError::Malformed);
  CHECK(error("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n") == ProxyHeaderError::Malformed);
  CHECK(error("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n") == ProxyHeaderError::Malformed);
  // 107 bytes at most, CRLF included.
  std::string longest = "PROXY UNKNOWN " + std::string(107 - 16, 'x') + "\r\n";
  CHECK_EQ(longest.size(), 107u);
  CHECK(parseText(longest).status == ProxyParseStatus::Done);
  CHECK(error("PROXY UNKNOWN " + std::string(107 - 15, 'x') + "\r\n") == ProxyHeaderError::Oversized);
  CHECK(error("PROXY UNKNOWN " + std::string(200, 'x')) == ProxyHeaderError::Oversized);
}

TEST(proxy_protocol, v2_tcp4_tcp6_local_and_tlvs) {
  std::vector<uint8_t> tcp4 = v2(0x21, 0x11, kV4Addresses);
  ProxyHeader h = parseBytes(tcp4);
  REQUIRE(h.status == ProxyParseStatus::Done);
  CHECK_EQ(h.version, 2);
  CHECK_EQ(h.length, 28u);
  CHECK_EQ(h.source.toString(), "192.168.0.1:56324");
  CHECK_EQ(h.destination.toString(), "192.168.0.11:443");
  for (size_t n = 0; n < tcp4.size(); ++n)
    CHECK(lb4::parseProxyHeader(tcp4.data(), n).status == ProxyParseStatus::NeedMore);

  std::vector<uint8_t> body(36, 0);
  body[15] = 1;                      // ::1
  body[16] = 0x20, body[17] = 0x01;  // 2001::
  body[32] = 0x1F, body[33] = 0x90;  // 8080
  body[34] = 0x00, body[35] = 0x50;  // 80
  ProxyHeader h6 = parseBytes(v2(0x21, 0x21, body));
  REQUIRE(h6.status == ProxyParseStatus::Done);
  CHECK_EQ(h6.source.toString(), "[::1]:8080");
  CHECK_EQ(h6.destination.toString(), "[2001::]:80");

  // TLVs after the addresses are skipped, counted in the length.
  std::vector<uint8_t> withTlv = kV4Addresses;
  for (uint8_t b : std::vector<uint8_t>{0x01, 0x00, 0x02, 'h', '2'}) withTlv.push_back(b);  // PP2_TYPE_ALPN "h2"
  ProxyHeader t = parseBytes(v2(0x21, 0x11, withTlv));
  REQUIRE(t.status == ProxyParseStatus::Done);
  CHECK_EQ(t.length, 16u + withTlv.size());
  CHECK_EQ(t.source.toString(), "192.168.0.1:56324");

  // LOCAL (a proxy's health check) and AF_UNSPEC keep the connection's addresses.
  ProxyHeader local = parseBytes(v2(0x20, 0x00, {}));
  REQUIRE(local.status == ProxyParseStatus::Done);
  CHECK(local.local);
  ProxyHeader localWithAddresses = parseBytes(v2(0x20, 0x11, kV4Addresses));
  REQUIRE(localWithAddresses.status == ProxyParseStatus::Done);
  CHECK(localWithAddresses.local);
  ProxyHeader unspec = parseBytes(v2(0x21, 0x00, {}));
  REQUIRE(unspec.status == ProxyParseStatus::Done);
  CHECK(unspec.local);
}

TEST(proxy_protocol, v2_refusals) {
  auto error = [](const std::vector<uint8_t>& b) {
    ProxyHeader h = parseBytes(b);
    return h.status == ProxyParseStatus::Error ? h.error : ProxyHeaderError::None;
  };
  CHECK(error(v2(0x11, 0x11, kV4Addresses)) == ProxyHeaderError::Malformed);  // version 1 nibble
  CHECK(error(v2(0x22, 0x11, kV4Addresses)) == ProxyHeaderError::Malformed);  // command 2
  CHECK(error(v2(0x21, 0x12, kV4Addresses)) == ProxyHeaderError::Malformed);  // UDP on a TCP flow
  CHECK(error(v2(0x21, 0x41, kV4Addresses)) == ProxyHeaderError::Malformed);  // family 4
  CHECK(error(v2(0x21, 0x11, {1, 2, 3, 4})) == ProxyHeaderError::Malformed);  // too short for TCP4
  CHECK(error(v2(0x21, 0x21, kV4Addresses)) == ProxyHeaderError::Malformed);  // too short for TCP6
  // Oversized as soon as the length field says so, before the body arrives.
  std::vector<uint8_t> big = v2(0x21, 0x11, {});
  big[14] = 0x04, big[15] = 0x00;  // 1024 + 16 bytes
  CHECK(error(big) == ProxyHeaderError::Oversized);
  std::vector<uint8_t> bad(lb4::kProxyV2Signature, lb4::kProxyV2Signature + 12);
  bad[7] = 'X';
  CHECK(error(bad) == ProxyHeaderError::Malformed);
}

TEST(proxy_protocol, writer_bytes) {
  uint8_t out[lb4::kProxyHeaderWriteMax];
  size_t n = lb4::writeProxyHeader(lb4::ProxyVersion::V1, address("192.168.0.1", 56324), address("192.168.0.11", 443), out);
  CHECK_EQ(std::string(reinterpret_cast<char*>(out), n), "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  n = lb4::writeProxyHeader(lb4::ProxyVersion::V1, address("2001:db8::1", 1), address("::1", 2), out);
  CHECK_EQ(std::string(reinterpret_cast<char*>(out), n), "PROXY TCP6 2001:db8::1 ::1 1 2\r\n");
  // A dual-stack listener's IPv4 client: both addresses IPv4-mapped, written as TCP4.
  n = lb4::writeProxyHeader(lb4::ProxyVersion::V1, address("::ffff:10.0.0.1", 5), address("::ffff:10.0.0.2", 6), out);
  CHECK_EQ(std::string(reinterpret_cast<char*>(out), n), "PROXY TCP4 10.0.0.1 10.0.0.2 5 6\r\n");
  // Mixed families: the IPv4 one mapped into IPv6.
  n = lb4::writeProxyHeader(lb4::ProxyVersion::V1, address("10.0.0.1", 5), address("::1", 6), out);
  CHECK_EQ(std::string(reinterpret_cast<char*>(out), n), "PROXY TCP6 ::ffff:10.0.0.1 ::1 5 6\r\n");
  CHECK_EQ(lb4::writeProxyHeader(lb4::ProxyVersion::None, address("10.0.0.1", 5), address("::1", 6), out), 0u);

  n = lb4::writeProxyHeader(lb4::ProxyVersion::V2, address("192.168.0.1", 56324), address("192.168.0.11", 443), out);
  std::vector<uint8_t> expected = v2(0x21, 0x11, kV4Addresses);
  CHECK(std::vector<uint8_t>(out, out + n) == expected);
  n = lb4::writeProxyHeader(lb4::ProxyVersion::V2, address("::1", 8080), address("2001::", 80), out);
  CHECK_EQ(n, 16u + 36u);
  CHECK_EQ(out[13], 0x21);
  ProxyHeader back = lb4::parseProxyHeader(out, n);
  REQUIRE(back.status == ProxyParseStatus::Done);
  CHECK_EQ(back.source.toString(), "[::1]:8080");
  CHECK_EQ(back.destination.toString(), "[2001::]:80");

  // A UDP session's header: the same bytes but the transport nibble (UDP4 0x12, UDP6 0x22);
  // v1 has no UDP form, so none is written.
  n = lb4::writeProxyHeader(lb4::ProxyVersion::V2, address("192.168.0.1", 56324), address("192.168.0.11", 443), out, true);
  expected = v2(0x21, 0x12, kV4Addresses);
  CHECK(std::vector<uint8_t>(out, out + n) == expected);
  n = lb4::writeProxyHeader(lb4::ProxyVersion::V2, address("::1", 53), address("2001::", 53), out, true);
  CHECK_EQ(n, 16u + 36u);
  CHECK_EQ(out[13], 0x22);
  CHECK_EQ(lb4::writeProxyHeader(lb4::ProxyVersion::V1, address("10.0.0.1", 5), address("10.0.0.2", 6), out, true), 0u);

  // The unique id TLV after the addresses, inside the header's length, and read back by lb4's
  // own parser (which skips TLVs); v1 has no TLVs.
  n = lb4::writeProxyHeader(lb4::ProxyVersion::V2, address("192.168.0.1", 56324), address("192.168.0.11", 443), out, false, 4097);
  CHECK_EQ(n, 16u + 12u + 3u + 4u);
  CHECK_EQ(out[15], 12 + 3 + 4);
  CHECK_EQ(out[28], 0x05);
  CHECK_EQ(out[29], 0);
  CHECK_EQ(out[30], 4);
  CHECK_EQ(std::string(reinterpret_cast<char*>(out) + 31, 4), "4097");
  back = lb4::parseProxyHeader(out, n);
  REQUIRE(back.status == ProxyParseStatus::Done);
  CHECK_EQ(back.source.toString(), "192.168.0.1:56324");
  n = lb4::writeProxyHeader(lb4::ProxyVersion::V2, address("::1", 1), address("::1", 2), out, false, UINT64_MAX);
  CHECK_EQ(n, 16u + 36u + 3u + 20u);
  n = lb4::writeProxyHeader(lb4::ProxyVersion::V1, address("10.0.0.1", 5), address("10.0.0.2", 6), out, false, 7);
  CHECK_EQ(std::string(reinterpret_cast<char*>(out), n), "PROXY TCP4 10.0.0.1 10.0.0.2 5 6\r\n");
}

TEST(proxy_protocol, trusted_networks) {
  lb4::NetworkSet t;
  CHECK(t.empty());
  REQUIRE(t.add("10.0.0.0/8"));
  REQUIRE(t.add("192.168.1.7"));
  REQUIRE(t.add("2001:db8::/33"));
  REQUIRE(t.add("172.16.0.0/12"));
  CHECK(t.contains(address("10.255.0.1", 1)));
  CHECK(t.contains(address("::ffff:10.1.2.3", 1)));  // a dual-stack listener's IPv4 client
  CHECK(!t.contains(address("11.0.0.1", 1)));
  CHECK(t.contains(address("192.168.1.7", 1)));
  CHECK(!t.contains(address("192.168.1.8", 1)));
  CHECK(t.contains(address("172.31.255.255", 1)));
  CHECK(!t.contains(address("172.32.0.0", 1)));
  CHECK(t.contains(address("2001:db8:7fff::1", 1)));
  CHECK(!t.contains(address("2001:db8:8000::1", 1)));
  CHECK(!t.contains(address("::1", 1)));
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "host/8", "10.0.0.0/8x", "", "/8"})
    CHECK(!t.add(bad));
  CHECK_EQ(t.size(), 4u);
  lb4::NetworkSet all;
  REQUIRE(all.add("0.0.0.0/0"));
  CHECK(all.contains(address("1.2.3.4", 1)));
  CHECK(!all.contains(address("::2", 1)));
}

TEST(proxy_protocol, reads_a_header_off_a_socket_and_leaves_the_payload) {
  int fds[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  lb4::UniqueFd client(fds[0]), peer(fds[1]);
  lb4::HeaderRead r = lb4::readProxyHeader(client.get(), false);
  CHECK(r.status == lb4::HeaderReadStatus::Waiting);

  const std::string part1 = "PROXY TCP4 1.2.3.4 ", part2 = "5.6.7.8 1000 2000\r\npayload";
  REQUIRE(write(peer.get(), part1.data(), part1.size()) == static_cast<ssize_t>(part1.size()));
  CHECK(lb4::readProxyHeader(client.get(), false).status == lb4::HeaderReadStatus::Waiting);
  REQUIRE(write(peer.get(), part2.data(), part2.size()) == static_cast<ssize_t>(part2.size()));
  r = lb4::readProxyHeader(client.get(), false);
  REQUIRE(r.status == lb4::HeaderReadStatus::Accepted);
  CHECK_EQ(r.header.source.toString(), "1.2.3.4:1000");
  char rest[64];
  ssize_t n = read(client.get(), rest, sizeof(rest));
  CHECK_EQ(std::string(rest, n > 0 ? static_cast<size_t>(n) : 0), "payload");

  // A stream that ends inside a header carried a malformed one.
  REQUIRE(write(peer.get(), "PROXY TCP4", 10) == 10);
  peer.reset();
  r = lb4::readProxyHeader(client.get(), true);
  CHECK(r.status == lb4::HeaderReadStatus::Rejected);
  CHECK(r.header.error == ProxyHeaderError::Malformed);
}

TEST(proxy_protocol, fuzz_short_pass) {
  // LB4_PROXY_FUZZ_INPUTS runs a longer pass here too; lb4_proxy_fuzz is the long one.
  const char* env = std::getenv("LB4_PROXY_FUZZ_INPUTS");
  const uint64_t inputs = env ? std::strtoull(env, nullptr, 10) : 30000;
  const uint64_t seed = 0x1b4'0000'0000'0013ULL;
  lb4test::FuzzOutcome o = lb4test::fuzzProxyHeaderParser(inputs, seed);
  CHECK_EQ(o.inputs, inputs);
  CHECK_EQ(o.violations, 0u);
  if (o.violations) lb4test::note(o.firstViolation);
  // Each kind of outcome was reached: the generator is not stuck in one corner.
  CHECK_GT(o.accepted, 0u);
  CHECK_GT(o.rejected, 0u);
  CHECK_GT(o.needMore, 0u);
  lb4test::note(std::to_string(o.inputs) + " inputs: " + std::to_string(o.accepted) + " whole headers, " +
                std::to_string(o.rejected) + " refused, " + std::to_string(o.needMore) + " incomplete");
}
