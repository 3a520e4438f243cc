// The PROXY protocol parser. See header_parser.h; the format is HAProxy's proxy-protocol.txt.

#include "proxy_protocol/header_parser.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace lb4 {

namespace {

constexpr char kV1Prefix[] = "PROXY ";
constexpr size_t kV1PrefixLength = sizeof(kV1Prefix) - 1;
constexpr size_t kV2FixedLength = 16;

ProxyHeader needMore(uint8_t version) {
  ProxyHeader h;
  h.version = version;
  return h;
}

ProxyHeader fail(uint8_t version, ProxyHeaderError error) {
  ProxyHeader h;
  h.status = ProxyParseStatus::Error;
  h.error = error;
  h.version = version;
  return h;
}

ProxyHeader done(uint8_t version, size_t length, bool local) {
  ProxyHeader h;
  h.status = ProxyParseStatus::Done;
  h.version = version;
  h.length = length;
  h.local = local;
  return h;
}

void setAddress(SocketAddress& out, int family, const void* ip, uint16_t portNetworkOrder) {
  out.prepareForKernel();
  if (family == AF_INET) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    std::memcpy(&sin.sin_addr, ip, 4);
    sin.sin_port = portNetworkOrder;
    std::memcpy(out.get(), &sin, sizeof(sin));
    *out.lengthPtr() = sizeof(sin);
  } else {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    std::memcpy(&sin6.sin6_addr, ip, 16);
    sin6.sin6_port = portNetworkOrder;
    std::memcpy(out.get(), &sin6, sizeof(sin6));
    *out.lengthPtr() = sizeof(sin6);
  }
}

// A v1 port: 1 to 5 decimal digits, at most 65535.
bool parsePort(const char* s, size_t n, uint16_t& out) {
  if (n == 0 || n > 5) return false;
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + static_cast<uint32_t>(s[i] - '0');
  }
  if (v > 65535) return false;
  out = static_cast<uint16_t>(v);
  return true;
}

// A v1 address in the family's text form; inet_pton refuses anything else (leading or trailing
// junk, a port, brackets, an IPv6 address on a TCP4 line).
bool parseIp(int family, const char* s, size_t n, uint8_t out[16]) {
  char text[INET6_ADDRSTRLEN];
  if (n == 0 || n >= sizeof(text)) return false;
  std::memcpy(text, s, n);
  text[n] = '\0';
  return inet_pton(family, text, out) == 1;
}

// "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", "PROXY TCP6 ...", "PROXY UNKNOWN...\r\n".
ProxyHeader parseV1(const uint8_t* data, size_t size) {
  const size_t checked = std::min(size, kV1PrefixLength);
  if (std::memcmp(data, kV1Prefix, checked) != 0) return fail(1, ProxyHeaderError::Malformed);
  // The line ends at the first CR, which must be followed by LF; it must come within 107 bytes.
  const size_t window = std::min(size, kProxyV1MaxLength);
  const auto* cr = static_cast<const uint8_t*>(std::memchr(data, '\r', window));
  if (!cr) return size >= kProxyV1MaxLength ? fail(1, ProxyHeaderError::Oversized) : needMore(1);
  const size_t crAt = static_cast<size_t>(cr - data);
  if (crAt + 1 >= kProxyV1MaxLength) return fail(1, ProxyHeaderError::Oversized);
  if (crAt + 1 >= size) return needMore(1);
  if (data[crAt + 1] != '\n') return fail(1, ProxyHeaderError::Malformed);
  const size_t length = crAt + 2;

  // The fields between "PROXY " and the CR, separated by single spaces.
  const char* line = reinterpret_cast<const char*>(data) + kV1PrefixLength;
  const size_t lineLength = crAt - kV1PrefixLength;
  // UNKNOWN: the sender could not tell (or would not); whatever follows it on the line is ignored.
  if (lineLength >= 7 && std::memcmp(line, "UNKNOWN", 7) == 0 && (lineLength == 7 || line[7] == ' '))
    return done(1, length, true);
  const char* fields[5];
  size_t sizes[5];
  size_t count = 0;
  size_t start = 0;
  for (size_t i = 0; i <= lineLength; ++i) {
    if (i < lineLength && line[i] != ' ') continue;
    if (count == 5) return fail(1, ProxyHeaderError::Malformed);
    fields[count] = line + start;
    sizes[count] = i - start;
    ++count;
    start = i + 1;
  }
  auto is = [&](size_t i, const char* word) { return sizes[i] == std::strlen(word) && std::memcmp(fields[i], word, sizes[i]) == 0; };
  int family;
  if (is(0, "TCP4")) {
    family = AF_INET;
  } else if (is(0, "TCP6")) {
    family = AF_INET6;
  } else {
    return fail(1, ProxyHeaderError::Malformed);
  }
  if (count != 5) return fail(1, ProxyHeaderError::Malformed);
  uint8_t sourceIp[16], destinationIp[16];
  uint16_t sourcePort, destinationPort;
  if (!parseIp(family, fields[1], sizes[1], sourceIp) || !parseIp(family, fields[2], sizes[2], destinationIp) ||
      !parsePort(fields[3], sizes[3], sourcePort) || !parsePort(fields[4], sizes[4], destinationPort))
    return fail(1, ProxyHeaderError::Malformed);
  ProxyHeader h = done(1, length, false);
  setAddress(h.source, family, sourceIp, htons(sourcePort));
  setAddress(h.destination, family, destinationIp, htons(destinationPort));
  return h;
}

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: it runs once per header of
// at most 1 KiB, from trusted peers only, so a table would buy nothing worth its 1 KiB.
uint32_t crc32c(const uint8_t* data, size_t size, size_t zeroFrom, size_t zeroTo) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= (i >= zeroFrom && i < zeroTo) ? 0 : data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

// The TLVs after a v2 header's addresses, from `at` to `length`: each a type, a 16-bit length
// and that many bytes, and none may run past the header. lb4 uses none of them, and skips the
// ones it does not know, as the spec asks; but a PP2_TYPE_CRC32C (0x04) one is checked: the
// CRC-32C of the whole header with its own 4 bytes as zeros, in network order. A sender that
// adds one asks for exactly this, and a header that fails it was damaged on the way.
bool tlvsValid(const uint8_t* data, size_t at, size_t length) {
  while (at < length) {
    if (length - at < 3) return false;
    const uint8_t type = data[at];
    const size_t size = (static_cast<size_t>(data[at + 1]) << 8) | data[at + 2];
    if (size > length - at - 3) return false;
    if (type == 0x04) {
      if (size != 4) return false;
      const uint8_t* v = data + at + 3;
      const uint32_t sent = (uint32_t{v[0]} << 24) | (uint32_t{v[1]} << 16) | (uint32_t{v[2]} << 8) | v[3];
      if (crc32c(data, length, at + 3, at + 7) != sent) return false;
    }
    at += 3 + size;
  }
  return true;
}

// 12-byte signature, version and command, family and transport, length (big-endian), then the
// addresses, then TLVs (checked by tlvsValid, otherwise skipped).
ProxyHeader parseV2(const uint8_t* data, size_t size) {
  const size_t checked = std::min(size, sizeof(kProxyV2Signature));
  if (std::memcmp(data, kProxyV2Signature, checked) != 0) return fail(2, ProxyHeaderError::Malformed);
  if (size > 12 && (data[12] >> 4) != 2) return fail(2, ProxyHeaderError::Malformed);
  if (size > 12 && (data[12] & 0x0F) > 1) return fail(2, ProxyHeaderError::Malformed);
  if (size < kV2FixedLength) return needMore(2);
  const size_t length = kV2FixedLength + ((static_cast<size_t>(data[14]) << 8) | data[15]);
  if (length > kProxyHeaderMaxLength) return fail(2, ProxyHeaderError::Oversized);
  if (size < length) return needMore(2);

  const bool proxyCommand = (data[12] & 0x0F) == 1;
  // LOCAL: the proxy speaks for itself (a health check); the family byte and any addresses are
  // to be ignored.
  if (!proxyCommand) return done(2, length, true);
  const uint8_t family = data[13] >> 4;
  const uint8_t transport = data[13] & 0x0F;
  if (family > 3 || transport > 2) return fail(2, ProxyHeaderError::Malformed);
  // AF_UNSPEC ("unknown") and AF_UNIX name nothing a TCP flow can use as its client: the
  // connection's own addresses stay, as the spec asks of a receiver.
  if (family == 0 || family == 3) return done(2, length, true);
  if (transport != 1) return fail(2, ProxyHeaderError::Malformed);  // a datagram header on a TCP flow
  const uint8_t* a = data + kV2FixedLength;
  const size_t addressBytes = length - kV2FixedLength;
  ProxyHeader h = done(2, length, false);
  uint16_t sourcePort, destinationPort;
  if (family == 1) {
    if (addressBytes < 12 || !tlvsValid(data, kV2FixedLength + 12, length)) return fail(2, ProxyHeaderError::Malformed);
    std::memcpy(&sourcePort, a + 8, 2);
    std::memcpy(&destinationPort, a + 10, 2);
    setAddress(h.source, AF_INET, a, sourcePort);
    setAddress(h.destination, AF_INET, a + 4, destinationPort);
  } else {
    if (addressBytes < 36 || !tlvsValid(data, kV2FixedLength + 36, length)) return fail(2, ProxyHeaderError::Malformed);
    std::memcpy(&sourcePort, a + 32, 2);
    std::memcpy(&destinationPort, a + 34, 2);
    setAddress(h.source, AF_INET6, a, sourcePort);
    setAddress(h.destination, AF_INET6, a + 16, destinationPort);
  }
  return h;
}

}  // namespace

ProxyHeader parseProxyHeader(const uint8_t* data, size_t size) {
  if (size == 0) return needMore(0);
  if (data[0] == kV1Prefix[0]) return parseV1(data, size);
  if (data[0] == kProxyV2Signature[0]) return parseV2(data, size);
  return fail(0, ProxyHeaderError::Malformed);
}

}  // namespace lb4
