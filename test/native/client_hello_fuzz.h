#pragma once
// The TLS ClientHello parser's fuzz driver, shared by the native unit tests (a short pass) and
// the lb4_sni_fuzz program (a long one), and the hello builder both use. Inputs: random bytes,
// hellos built for random server names (with padding, split over random record sizes), and
// those hellos mutated (bytes flipped, inserted, deleted, cut, extended). Beyond "no crash"
// (AddressSanitizer and UBSan watch every read), each input is held to the parser's contract:
// a built hello parses back to its name however it is split into records; every prefix of it
// needs more; bytes after it change nothing; and any name the parser gives is routable.

#include <cstdint>
#include <string>
#include <vector>

#include "proxy_header_fuzz.h"

namespace lb4test {

struct HelloShape {
  std::string serverName;     // empty: no server_name extension
  size_t padding = 0;         // bytes of a padding extension (RFC 7685), after server_name
  size_t recordSize = 16384;  // the most handshake bytes per TLS record: smaller splits the hello
  bool withExtensions = true;
};

// A ClientHello as a TLS 1.3 client sends it (legacy version 3.3, a session id, two cipher
// suites, supported_versions), in as many records as `recordSize` makes.
std::vector<uint8_t> buildClientHello(const HelloShape& shape);

FuzzOutcome fuzzClientHelloParser(uint64_t inputs, uint64_t seed);

}  // namespace lb4test
