#pragma once
// The PROXY protocol parser's fuzz driver, shared by the native unit tests (a short pass) and
// the lb4_proxy_fuzz program (a long one). Inputs: random bytes, headers lb4 writes for random
// addresses, and those headers mutated (bytes flipped, inserted, deleted, cut, extended). Beyond
// "no crash" (AddressSanitizer and UBSan watch every read), each input is held to the parser's
// contract: a whole header is within its limits and the input; every prefix of it needs more;
// bytes after it change nothing; and a header lb4 wrote parses back to the addresses written.

#include <cstdint>
#include <string>

namespace lb4test {

struct FuzzOutcome {
  uint64_t inputs = 0;
  uint64_t accepted = 0;   // parsed as a whole header
  uint64_t rejected = 0;   // malformed or oversized
  uint64_t needMore = 0;
  uint64_t violations = 0; // contract broken (each also described in `firstViolation`)
  std::string firstViolation;
};

FuzzOutcome fuzzProxyHeaderParser(uint64_t inputs, uint64_t seed);

}  // namespace lb4test
