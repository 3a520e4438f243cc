// The TLS ClientHello parser's fuzz driver and hello builder. See client_hello_fuzz.h.

#include "client_hello_fuzz.h"

#include <cstring>
#include <memory>

#include "sni/client_hello.h"

namespace lb4test {

namespace {

using Bytes = std::vector<uint8_t>;
using lb4::ClientHello;
using lb4::HelloParseStatus;

// xorshift64*, as in the PROXY protocol fuzz: the same seed gives the same inputs everywhere.
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

void put16(Bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

// An exact heap block, so AddressSanitizer sees any read past the input.
ClientHello parse(const Bytes& b, size_t n) {
  std::unique_ptr<uint8_t[]> exact(new uint8_t[n == 0 ? 1 : n]);
  if (n > 0) std::memcpy(exact.get(), b.data(), n);
  return lb4::parseClientHello(exact.get(), n);
}

std::string randomName(Random& r) {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  std::string name;
  // Within the 253 bytes a host name may have: five labels of at most 50.
  const uint32_t labels = 1 + r.below(5);
  for (uint32_t l = 0; l < labels; ++l) {
    if (l > 0) name += '.';
    const uint32_t length = 1 + r.below(r.chance(5) ? 50 : 12);
    for (uint32_t i = 0; i < length; ++i) name += kChars[r.below(sizeof(kChars) - 1)];
  }
  if (r.chance(20)) name += '.';
  return name;
}

std::string expectedName(std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  for (char& ch : name)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  return name;
}

struct Checker {
  FuzzOutcome& out;
  void violation(const std::string& what) {
    if (out.violations++ == 0) out.firstViolation = what;
  }
  void count(const ClientHello& h) {
    if (h.status == HelloParseStatus::Done) {
      out.accepted++;
      if (h.hasServerName && !lb4::isRoutableHostName(h.serverName)) violation("a server name that is not routable: " + h.serverName);
      for (char ch : h.serverName)
        if (ch >= 'A' && ch <= 'Z') violation("a server name not in lower case: " + h.serverName);
    } else if (h.status == HelloParseStatus::Error) {
      out.rejected++;
    } else {
      out.needMore++;
    }
  }
};

}  // namespace

Bytes buildClientHello(const HelloShape& shape) {
  Bytes body;
  put16(body, 0x0303);                                  // legacy_version
  for (int i = 0; i < 32; ++i) body.push_back(static_cast<uint8_t>(i * 7));  // random
  body.push_back(32);                                   // legacy_session_id
  for (int i = 0; i < 32; ++i) body.push_back(static_cast<uint8_t>(0xA0 + i));
  put16(body, 4);                                       // cipher_suites
  put16(body, 0x1301);
  put16(body, 0x1302);
  body.push_back(1);                                    // legacy_compression_methods: null
  body.push_back(0);
  if (shape.withExtensions) {
    Bytes ext;
    if (!shape.serverName.empty()) {
      const size_t n = shape.serverName.size();
      put16(ext, 0);        // server_name
      put16(ext, n + 5);
      put16(ext, n + 3);    // server_name_list
      ext.push_back(0);     // host_name
      put16(ext, n);
      ext.insert(ext.end(), shape.serverName.begin(), shape.serverName.end());
    }
    put16(ext, 43);         // supported_versions: TLS 1.3
    put16(ext, 3);
    ext.push_back(2);
    put16(ext, 0x0304);
    if (shape.padding > 0) {
      put16(ext, 21);       // padding
      put16(ext, shape.padding);
      ext.insert(ext.end(), shape.padding, 0);
    }
    put16(body, ext.size());
    body.insert(body.end(), ext.begin(), ext.end());
  }
  Bytes message{1, static_cast<uint8_t>(body.size() >> 16), static_cast<uint8_t>(body.size() >> 8),
                static_cast<uint8_t>(body.size())};
  message.insert(message.end(), body.begin(), body.end());
  Bytes records;
  const size_t step = shape.recordSize == 0 ? 1 : shape.recordSize;
  for (size_t at = 0; at < message.size(); at += step) {
    const size_t n = std::min(step, message.size() - at);
    records.push_back(22);
    put16(records, 0x0301);
    put16(records, n);
    records.insert(records.end(), message.begin() + at, message.begin() + at + n);
  }
  return records;
}

FuzzOutcome fuzzClientHelloParser(uint64_t inputs, uint64_t seed) {
  FuzzOutcome out;
  Checker check{out};
  Random r{seed * 2654435761ULL + 0x9E3779B97F4A7C15ULL};
  while (out.inputs < inputs) {
    HelloShape shape;
    if (!r.chance(10)) shape.serverName = randomName(r);
    shape.padding = r.chance(30) ? r.below(r.chance(10) ? 20000 : 600) : 0;
    shape.recordSize = r.chance(50) ? 16384 : 1 + r.below(r.chance(50) ? 16 : 700);
    Bytes hello = buildClientHello(shape);
    const bool fits = hello.size() <= lb4::kClientHelloMaxBytes;

    // The hello as built: the name comes back, normalised, whatever the record split (or it is
    // too big for the bound and says so).
    ClientHello whole = parse(hello, hello.size());
    out.inputs++;
    check.count(whole);
    if (fits) {
      if (whole.status != HelloParseStatus::Done) {
        check.violation("a built hello did not parse, name " + shape.serverName);
      } else if (whole.hasServerName != !shape.serverName.empty() || whole.serverName != expectedName(shape.serverName)) {
        check.violation("a built hello gave the name \"" + whole.serverName + "\" for \"" + shape.serverName + "\"");
      }
      // A prefix needs more; bytes after the hello change nothing.
      const size_t cut = r.below(static_cast<uint32_t>(hello.size()));
      ClientHello prefix = parse(hello, cut);
      out.inputs++;
      check.count(prefix);
      if (prefix.status != HelloParseStatus::NeedMore) check.violation("a prefix of a built hello did not need more");
      Bytes longer = hello;
      const uint32_t extra = 1 + r.below(64);
      for (uint32_t i = 0; i < extra; ++i) longer.push_back(static_cast<uint8_t>(r.next()));
      ClientHello tail = parse(longer, longer.size());
      out.inputs++;
      check.count(tail);
      if (tail.status != whole.status || tail.serverName != whole.serverName) check.violation("bytes after a hello changed the answer");
    } else if (whole.status != HelloParseStatus::Error || whole.error != lb4::HelloError::Oversized) {
      check.violation("a hello past the bound was not oversized");
    }

    // Mutations: only "no crash, and any name is routable" holds for them.
    const uint32_t mutations = 1 + r.below(4);
    for (uint32_t m = 0; m < mutations && out.inputs < inputs; ++m) {
      Bytes b = hello;
      const uint32_t edits = 1 + r.below(6);
      for (uint32_t e = 0; e < edits && !b.empty(); ++e) {
        const size_t at = r.below(static_cast<uint32_t>(b.size()));
        switch (r.below(5)) {
          case 0: b[at] = static_cast<uint8_t>(r.next()); break;
          case 1: b[at] ^= static_cast<uint8_t>(1u << r.below(8)); break;
          case 2: b.insert(b.begin() + at, static_cast<uint8_t>(r.next())); break;
          case 3: b.erase(b.begin() + at); break;
          case 4: b.resize(at); break;
        }
      }
      ClientHello h = parse(b, b.size());
      out.inputs++;
      check.count(h);
    }

    // Noise, sometimes starting like a handshake record.
    if (out.inputs < inputs) {
      Bytes noise(r.below(r.chance(10) ? 4096 : 64));
      for (auto& byte : noise) byte = static_cast<uint8_t>(r.next());
      if (noise.size() >= 6 && r.chance(50)) {
        noise[0] = 22;
        noise[1] = 3;
        noise[5] = 1;
      }
      ClientHello h = parse(noise, noise.size());
      out.inputs++;
      check.count(h);
    }
  }
  return out;
}

}  // namespace lb4test
