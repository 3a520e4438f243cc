// The PROXY protocol writer. See header_writer.h.

#include "proxy_protocol/header_writer.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

namespace lb4 {

namespace {

// The two addresses' bytes in one family: 4 each (both IPv4), 16 each, or 0 (a family that
// has no place in a header: the header then says "unknown").
size_t sameFamilyBytes(const SocketAddress& source, const SocketAddress& destination, uint8_t s[16], uint8_t d[16]) {
  size_t sn = source.ipBytes(s);
  size_t dn = destination.ipBytes(d);
  if (sn == 0 || dn == 0) return 0;
  auto mapToV6 = [](uint8_t b[16]) {
    std::memmove(b + 12, b, 4);
    std::memset(b, 0, 10);
    b[10] = b[11] = 0xFF;
  };
  if (sn == 4 && dn == 16) mapToV6(s), sn = 16;
  if (dn == 4 && sn == 16) mapToV6(d), dn = 16;
  return sn;
}

size_t writeV1(size_t n, const uint8_t* s, const uint8_t* d, uint16_t sp, uint16_t dp, uint8_t* out) {
  char* text = reinterpret_cast<char*>(out);
  if (n == 0) {
    std::memcpy(text, "PROXY UNKNOWN\r\n", 15);
    return 15;
  }
  const int family = n == 4 ? AF_INET : AF_INET6;
  char sText[INET6_ADDRSTRLEN], dText[INET6_ADDRSTRLEN];
  inet_ntop(family, s, sText, sizeof(sText));
  inet_ntop(family, d, dText, sizeof(dText));
  // At most 6 + 5 + 39 + 1 + 39 + 1 + 5 + 1 + 5 + 2 = 104 bytes: always within the 107 allowed.
  int written = std::snprintf(text, kProxyHeaderWriteMax, "PROXY %s %s %s %u %u\r\n", n == 4 ? "TCP4" : "TCP6", sText, dText,
                              static_cast<unsigned>(sp), static_cast<unsigned>(dp));
  return written > 0 ? static_cast<size_t>(written) : 0;
}

// The PP2_TYPE_UNIQUE_ID TLV: type, 16-bit length, then the id's decimal digits (at most 20).
constexpr uint8_t kTlvUniqueId = 0x05;
constexpr size_t kUniqueIdTlvMax = 3 + 20;
static_assert(16 + 36 + kUniqueIdTlvMax <= kProxyHeaderWriteMax, "the largest v2 header lb4 writes fits the buffer");

size_t writeUniqueId(uint64_t id, uint8_t* out) {
  char digits[21];
  const int n = std::snprintf(digits, sizeof(digits), "%llu", static_cast<unsigned long long>(id));
  if (n <= 0) return 0;
  out[0] = kTlvUniqueId;
  out[1] = 0;
  out[2] = static_cast<uint8_t>(n);
  std::memcpy(out + 3, digits, static_cast<size_t>(n));
  return 3 + static_cast<size_t>(n);
}

size_t writeV2(size_t n, const uint8_t* s, const uint8_t* d, uint16_t sp, uint16_t dp, bool datagram, uint64_t uniqueId, uint8_t* out) {
  std::memcpy(out, kProxyV2Signature, sizeof(kProxyV2Signature));
  out[12] = 0x21;  // version 2, PROXY
  // The family in the high nibble (1: IPv4, 2: IPv6), the transport in the low one (1: stream,
  // 2: datagram); AF_UNSPEC (0x00) with no addresses when the family has no place in a header.
  const uint8_t transport = datagram ? 0x02 : 0x01;
  out[13] = n == 4 ? 0x10 | transport : n == 16 ? 0x20 | transport : 0x00;
  const size_t addressBytes = n == 0 ? 0 : 2 * n + 4;
  uint8_t* a = out + 16;
  if (n > 0) {
    const uint16_t spNet = htons(sp), dpNet = htons(dp);
    std::memcpy(a, s, n);
    std::memcpy(a + n, d, n);
    std::memcpy(a + 2 * n, &spNet, 2);
    std::memcpy(a + 2 * n + 2, &dpNet, 2);
  }
  // TLVs follow the addresses, inside the length the header gives (at most 75 bytes here).
  const size_t tlvBytes = uniqueId != 0 ? writeUniqueId(uniqueId, a + addressBytes) : 0;
  const size_t length = addressBytes + tlvBytes;
  out[14] = 0;
  out[15] = static_cast<uint8_t>(length);
  return 16 + length;
}

}  // namespace

size_t writeProxyHeader(ProxyVersion version, const SocketAddress& source, const SocketAddress& destination,
                        uint8_t out[kProxyHeaderWriteMax], bool datagram, uint64_t uniqueId) {
  if (version == ProxyVersion::None || (datagram && version != ProxyVersion::V2)) return 0;
  uint8_t s[16], d[16];
  const size_t n = sameFamilyBytes(source, destination, s, d);
  const uint16_t sp = n ? source.port() : 0, dp = n ? destination.port() : 0;
  return version == ProxyVersion::V1 ? writeV1(n, s, d, sp, dp, out) : writeV2(n, s, d, sp, dp, datagram, uniqueId, out);
}

}  // namespace lb4
