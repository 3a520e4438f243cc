// lb4_sni_fuzz: the long fuzz pass over the TLS ClientHello parser (the unit tests run a short
// one). Build it with the native tests (under AddressSanitizer and UBSan by default) and run
//
//   build/core-tests-address/lb4_sni_fuzz [inputs, default 1000000] [seed]
//
// It prints what it ran and exits non-zero if any input broke the parser's contract.

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "client_hello_fuzz.h"

int main(int argc, char** argv) {
  const unsigned long long inputs = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000ULL;
  const unsigned long long seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : static_cast<unsigned long long>(std::time(nullptr));
  lb4test::FuzzOutcome o = lb4test::fuzzClientHelloParser(inputs, seed);
  std::printf("client hello fuzz: seed %llu, %llu inputs: %llu whole hellos, %llu refused, %llu incomplete, %llu violations\n",
              seed, static_cast<unsigned long long>(o.inputs), static_cast<unsigned long long>(o.accepted),
              static_cast<unsigned long long>(o.rejected), static_cast<unsigned long long>(o.needMore),
              static_cast<unsigned long long>(o.violations));
  if (o.violations > 0) std::printf("first violation: %s\n", o.firstViolation.c_str());
  return o.violations == 0 ? 0 : 1;
}
