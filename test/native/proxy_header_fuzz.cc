// The PROXY protocol parser's fuzz driver. See proxy_header_fuzz.h.

#include "proxy_header_fuzz.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "io/socket_address.h"
#include "proxy_protocol/header_parser.h"
#include "proxy_protocol/header_writer.h"

namespace lb4test {

namespace {

using lb4::ProxyHeader;
using lb4::ProxyParseStatus;
using Bytes = std::vector<uint8_t>;

// xorshift64*: fast, and the same seed gives the same inputs on every machine.
struct Random {
  uint64_t state;
  uint64_t next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
  }
  uint32_t below(uint32_t n) { return n == 0 ? 0 : static_cast<uint32_t>(next() % n); }
  bool chance(uint32_t percent) { return below(100) < percent; }
};

// The parser gets a heap block of exactly `n` bytes, so AddressSanitizer catches any read past
// them (a vector's spare capacity would hide one).
ProxyHeader parse(const Bytes& b, size_t n) {
  std::unique_ptr<uint8_t[]> exact(new uint8_t[n]);
  if (n > 0) std::memcpy(exact.get(), b.data(), n);
  return lb4::parseProxyHeader(exact.get(), n);
}

lb4::SocketAddress randomAddress(Random& r, bool v6) {
  uint8_t ip[16];
  for (auto& byte : ip) byte = static_cast<uint8_t>(r.next());
  char text[INET6_ADDRSTRLEN];
  inet_ntop(v6 ? AF_INET6 : AF_INET, ip, text, sizeof(text));
  lb4::SocketAddress a;
  lb4::SocketAddress::fromIp(text, static_cast<uint16_t>(r.next()), a);
  return a;
}

// CRC-32C written here apart from the parser's, so each checks the other: table-driven, the
// parser's is bit by bit.
uint32_t crc32c(const Bytes& b) {
  static uint32_t table[256];
  static bool made = false;
  if (!made) {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      table[i] = c;
    }
    made = true;
  }
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t byte : b) crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

// A v2 header lb4 writes (with its unique id TLV), then more TLVs as another proxy might add
// them: unknown ones to skip, and a PP2_TYPE_CRC32C one, right or (`damage`) wrong.
// `crcAdded` says whether it has the CRC-32C TLV.
Bytes withTlvs(Random& r, lb4::SocketAddress& source, lb4::SocketAddress& destination, bool damage, bool& crcAdded) {
  const bool v6 = r.chance(50);
  source = randomAddress(r, v6);
  destination = randomAddress(r, v6);
  uint8_t out[lb4::kProxyHeaderWriteMax];
  const size_t n = lb4::writeProxyHeader(lb4::ProxyVersion::V2, source, destination, out, false, r.chance(80) ? r.next() : 0);
  Bytes b(out, out + n);
  const uint32_t unknown = r.below(3);
  for (uint32_t k = 0; k < unknown; ++k) {
    const uint32_t size = r.below(40);
    b.push_back(static_cast<uint8_t>(0x20 + r.below(0xC0)));  // none of them 0x04
    b.push_back(0);
    b.push_back(static_cast<uint8_t>(size));
    for (uint32_t i = 0; i < size; ++i) b.push_back(static_cast<uint8_t>(r.next()));
  }
  size_t crcAt = 0;
  if (r.chance(70)) {
    b.insert(b.end(), {0x04, 0x00, 0x04});
    crcAt = b.size();
    b.insert(b.end(), {0, 0, 0, 0});
  }
  const size_t length = b.size() - 16;
  b[14] = static_cast<uint8_t>(length >> 8);
  b[15] = static_cast<uint8_t>(length);
  crcAdded = crcAt != 0;
  if (crcAt != 0) {
    uint32_t crc = crc32c(b);
    if (damage) crc ^= 1u << r.below(32);
    for (int k = 0; k < 4; ++k) b[crcAt + k] = static_cast<uint8_t>(crc >> (24 - 8 * k));
  }
  return b;
}

// Bytes a client might send: a header lb4 writes, the spec's odd cases, or noise.
Bytes seedInput(Random& r, lb4::SocketAddress& source, lb4::SocketAddress& destination, bool& written, bool& damaged) {
  written = false;
  damaged = false;
  switch (r.below(8)) {
    case 6: {
      bool crc = false;
      written = true;
      return withTlvs(r, source, destination, false, crc);
    }
    case 7:
      // Damaged only if it has a CRC to catch it; without one it is a good header.
      return withTlvs(r, source, destination, true, damaged);
    case 0:
    case 1:
    case 2: {
      const bool v6 = r.chance(50);
      source = randomAddress(r, v6);
      destination = randomAddress(r, v6);
      uint8_t out[lb4::kProxyHeaderWriteMax];
      const auto version = r.chance(50) ? lb4::ProxyVersion::V1 : lb4::ProxyVersion::V2;
      const size_t n = lb4::writeProxyHeader(version, source, destination, out);
      written = true;
      return Bytes(out, out + n);
    }
    case 3: {
      static const char* lines[] = {
          "PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n",
          "PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 010 65536\r\n",
      };
      const char* line = lines[r.below(5)];
      return Bytes(line, line + std::strlen(line));
    }
    case 4: {
      // A v2 header with a random command, family and length, and random bytes after it.
      Bytes b(lb4::kProxyV2Signature, lb4::kProxyV2Signature + 12);
      b.push_back(static_cast<uint8_t>(r.chance(80) ? 0x20 | r.below(3) : r.next()));
      static const uint8_t families[] = {0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32, 0x44};
      b.push_back(families[r.below(8)]);
      const uint32_t length = r.chance(90) ? r.below(300) : r.below(65536);
      b.push_back(static_cast<uint8_t>(length >> 8));
      b.push_back(static_cast<uint8_t>(length));
      const uint32_t body = r.below(std::min<uint32_t>(length + 8, 1200));
      for (uint32_t i = 0; i < body; ++i) b.push_back(static_cast<uint8_t>(r.next()));
      return b;
    }
    default: {
      Bytes b(r.below(200));
      for (auto& byte : b) byte = static_cast<uint8_t>(r.next());
      if (!b.empty() && r.chance(50)) b[0] = r.chance(50) ? 'P' : '\r';
      return b;
    }
  }
}

void mutate(Random& r, Bytes& b) {
  const uint32_t edits = 1 + r.below(4);
  for (uint32_t e = 0; e < edits; ++e) {
    switch (r.below(5)) {
      case 0:
        if (!b.empty()) b[r.below(static_cast<uint32_t>(b.size()))] ^= static_cast<uint8_t>(1u << r.below(8));
        break;
      case 1:
        if (!b.empty()) b[r.below(static_cast<uint32_t>(b.size()))] = static_cast<uint8_t>(r.next());
        break;
      case 2:
        b.insert(b.begin() + r.below(static_cast<uint32_t>(b.size()) + 1), static_cast<uint8_t>(r.chance(50) ? ' ' : r.next()));
        break;
      case 3:
        if (!b.empty()) b.erase(b.begin() + r.below(static_cast<uint32_t>(b.size())));
        break;
      default:
        b.resize(r.below(static_cast<uint32_t>(b.size()) + 1));
        break;
    }
  }
}

bool sameIp(const lb4::SocketAddress& a, const lb4::SocketAddress& b) {
  uint8_t x[16], y[16];
  const size_t n = a.ipBytes(x);
  return n == b.ipBytes(y) && std::memcmp(x, y, n) == 0 && a.port() == b.port();
}

}  // namespace

FuzzOutcome fuzzProxyHeaderParser(uint64_t inputs, uint64_t seed) {
  FuzzOutcome out;
  Random r{seed | 1};
  auto violation = [&](const std::string& what, const Bytes& b) {
    if (out.violations++ == 0) {
      std::string hex;
      for (uint8_t byte : b) {
        static const char* digits = "0123456789abcdef";
        hex += digits[byte >> 4];
        hex += digits[byte & 15];
      }
      out.firstViolation = what + " (input " + hex + ")";
    }
  };
  for (uint64_t i = 0; i < inputs; ++i) {
    lb4::SocketAddress source, destination;
    bool written = false, damaged = false;
    Bytes b = seedInput(r, source, destination, written, damaged);
    const bool mutated = r.chance(60);
    if (mutated) mutate(r, b);
    // Payload after the header: it must never change what the header says.
    if (r.chance(30)) {
      const uint32_t extra = 1 + r.below(64);
      for (uint32_t k = 0; k < extra; ++k) b.push_back(static_cast<uint8_t>(r.next()));
    }
    ProxyHeader h = parse(b, b.size());
    ++out.inputs;
    switch (h.status) {
      case ProxyParseStatus::NeedMore:
        ++out.needMore;
        if (b.size() >= lb4::kProxyHeaderMaxLength) violation("needs more past the header limit", b);
        break;
      case ProxyParseStatus::Error:
        ++out.rejected;
        if (h.error == lb4::ProxyHeaderError::None) violation("error without a reason", b);
        break;
      case ProxyParseStatus::Done: {
        ++out.accepted;
        if (h.length == 0 || h.length > b.size() || h.length > lb4::kProxyHeaderMaxLength) violation("length outside the input", b);
        if (h.version == 1 && h.length > lb4::kProxyV1MaxLength) violation("v1 line over 107 bytes", b);
        if (!h.local && (h.source.family() != h.destination.family() ||
                         (h.source.family() != AF_INET && h.source.family() != AF_INET6)))
          violation("addresses of no family", b);
        if (h.length > b.size()) break;
        // Every prefix needs more; the header alone says the same as the header with payload.
        const size_t cut = r.below(static_cast<uint32_t>(h.length));
        Bytes prefix(b.begin(), b.begin() + cut);
        if (parse(prefix, prefix.size()).status != ProxyParseStatus::NeedMore) violation("a prefix of a header did not need more", b);
        Bytes alone(b.begin(), b.begin() + h.length);
        ProxyHeader again = parse(alone, alone.size());
        if (again.status != ProxyParseStatus::Done || again.length != h.length || again.local != h.local ||
            (!h.local && (!sameIp(again.source, h.source) || !sameIp(again.destination, h.destination))))
          violation("the header alone parsed differently", b);
        break;
      }
    }
    // A wrong CRC-32C is refused, whatever payload follows.
    if (damaged && !mutated && h.status == ProxyParseStatus::Done) violation("a header with a wrong CRC-32C was taken", b);
    if (written && !mutated &&
        (h.status != ProxyParseStatus::Done || h.local || !sameIp(h.source, source) || !sameIp(h.destination, destination)))
      violation("a header lb4 wrote did not parse back to its addresses", b);
  }
  return out;
}

}  // namespace lb4test
