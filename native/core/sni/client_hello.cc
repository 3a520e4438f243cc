// The TLS ClientHello parser. See client_hello.h.

#include "sni/client_hello.h"

#include <vector>

namespace lb4 {

namespace {

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHelloMessage = 1;
constexpr uint16_t kServerNameExtension = 0;
constexpr uint8_t kHostNameType = 0;
constexpr size_t kRecordHeader = 5;
constexpr size_t kHandshakeHeader = 4;
// RFC 8446 5.1: a record's plaintext is at most 2^14 bytes; a longer one is not TLS.
constexpr size_t kMaxRecordBody = 16384;

ClientHello fail(HelloError e) {
  ClientHello out;
  out.status = HelloParseStatus::Error;
  out.error = e;
  return out;
}

// A bounds-checked reader over the ClientHello body: every read says whether it fitted.
struct Cursor {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  bool take(size_t n, const uint8_t** out = nullptr) {
    if (size - pos < n) return false;
    if (out) *out = data + pos;
    pos += n;
    return true;
  }
  bool u8(size_t& v) {
    if (size - pos < 1) return false;
    v = data[pos++];
    return true;
  }
  bool u16(size_t& v) {
    if (size - pos < 2) return false;
    v = (static_cast<size_t>(data[pos]) << 8) | data[pos + 1];
    pos += 2;
    return true;
  }
  size_t left() const { return size - pos; }
};

// The server_name extension's body: a list of (type, name); lb4 takes the one host_name.
bool readServerName(const uint8_t* body, size_t size, ClientHello& out) {
  Cursor c{body, size};
  size_t listLength;
  // RFC 6066 3: ServerName server_name_list<1..2^16-1>, which fills the extension exactly.
  if (!c.u16(listLength) || listLength == 0 || listLength != c.left()) return false;
  bool seenHostName = false;
  while (c.left() > 0) {
    size_t type, length;
    const uint8_t* name;
    if (!c.u8(type) || !c.u16(length) || !c.take(length, &name)) return false;
    if (type != kHostNameType) continue;  // no other name type is defined; skip what a future one holds
    // "The ServerNameList MUST NOT contain more than one name of the same name_type."
    if (seenHostName || length == 0) return false;
    seenHostName = true;
    std::string host(reinterpret_cast<const char*>(name), length);
    // A trailing dot names the same host (RFC 6066 says clients leave it out; some do not).
    if (host.back() == '.') host.pop_back();
    for (char& ch : host)
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    if (!isRoutableHostName(host)) return false;
    out.hasServerName = true;
    out.serverName = std::move(host);
  }
  return true;
}

// The ClientHello body (after its 4-byte handshake header), whole.
ClientHello parseBody(const uint8_t* body, size_t size) {
  Cursor c{body, size};
  size_t n;
  // legacy_version, random, legacy_session_id<0..32>, cipher_suites<2..2^16-2> (pairs),
  // legacy_compression_methods<1..2^8-1>.
  if (!c.take(2 + 32) || !c.u8(n) || n > 32 || !c.take(n)) return fail(HelloError::Malformed);
  if (!c.u16(n) || n < 2 || n % 2 != 0 || !c.take(n)) return fail(HelloError::Malformed);
  if (!c.u8(n) || n < 1 || !c.take(n)) return fail(HelloError::Malformed);
  ClientHello out;
  out.status = HelloParseStatus::Done;
  // A hello with no extensions at all (SSL 3.0 style) names no server.
  if (c.left() == 0) return out;
  size_t extensionsLength;
  if (!c.u16(extensionsLength) || extensionsLength != c.left()) return fail(HelloError::Malformed);
  bool seenServerName = false;
  while (c.left() > 0) {
    size_t type, length;
    const uint8_t* ext;
    if (!c.u16(type) || !c.u16(length) || !c.take(length, &ext)) return fail(HelloError::Malformed);
    if (type != kServerNameExtension) continue;
    // RFC 8446 4.2: "There MUST NOT be more than one extension of the same type."
    if (seenServerName || !readServerName(ext, length, out)) return fail(HelloError::Malformed);
    seenServerName = true;
  }
  return out;
}

}  // namespace

bool isRoutableHostName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  for (char ch : name) {
    if (ch == '.') {
      if (label == 0) return false;  // an empty label: a leading dot, or two in a row
      label = 0;
      continue;
    }
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
    if (!ok || ++label > 63) return false;
  }
  return label > 0;
}

ClientHello parseClientHello(const uint8_t* data, size_t size, size_t maxBytes) {
  // The handshake message, gathered from the records' bodies. Its length is known after four
  // bytes; it is bounded by `maxBytes`, so this never grows past that.
  std::vector<uint8_t> message;
  size_t pos = 0;
  // The handshake bytes still missing: all of them once the length is known, else at least the
  // rest of the 4-byte header.
  auto missing = [&message]() -> size_t {
    if (message.size() < kHandshakeHeader) return kHandshakeHeader - message.size();
    size_t bodyLength = (static_cast<size_t>(message[1]) << 16) | (static_cast<size_t>(message[2]) << 8) | message[3];
    return kHandshakeHeader + bodyLength - message.size();
  };
  auto needMore = [maxBytes](size_t bytes) {
    ClientHello out;
    out.needBytes = bytes < maxBytes ? bytes : maxBytes;
    return out;
  };
  for (;;) {
    // The size bound holds whatever the data: past it, the answer is "oversized" even if the
    // bytes are still to come, so a client cannot make lb4 wait for (or hold) more.
    if (pos + kRecordHeader > maxBytes) return fail(HelloError::Oversized);
    if (size - pos < kRecordHeader) {
      // The first byte alone already tells a TLS client from anything else (an HTTP request,
      // an SSL 2 hello): refuse at once rather than wait for the timeout.
      if (size > pos && data[pos] != kHandshakeRecord) return fail(HelloError::Malformed);
      if (size > pos + 1 && data[pos + 1] != 3) return fail(HelloError::Malformed);
      return needMore(pos + kRecordHeader + missing());
    }
    const uint8_t* record = data + pos;
    size_t length = (static_cast<size_t>(record[3]) << 8) | record[4];
    // Record version 3.x (TLS 1.0-1.3 all say 3.1-3.3 here); an empty handshake record is
    // forbidden (RFC 8446 5.1).
    if (record[0] != kHandshakeRecord || record[1] != 3 || length == 0 || length > kMaxRecordBody)
      return fail(HelloError::Malformed);
    if (pos + kRecordHeader + length > maxBytes) return fail(HelloError::Oversized);
    size_t available = size - pos - kRecordHeader;
    if (available > length) available = length;
    message.insert(message.end(), record + kRecordHeader, record + kRecordHeader + available);
    if (message.size() >= 1 && message[0] != kClientHelloMessage) return fail(HelloError::Malformed);
    if (message.size() >= kHandshakeHeader) {
      size_t bodyLength = (static_cast<size_t>(message[1]) << 16) | (static_cast<size_t>(message[2]) << 8) | message[3];
      if (bodyLength + kHandshakeHeader + kRecordHeader > maxBytes) return fail(HelloError::Oversized);
      // Whole: what follows it (in this record or later ones) is the backend's business.
      if (message.size() >= kHandshakeHeader + bodyLength) return parseBody(message.data() + kHandshakeHeader, bodyLength);
    }
    if (available < length) {
      const size_t inRecord = length - available;
      const size_t want = missing();
      return needMore(size + (want < inRecord ? want : inRecord));
    }
    pos += kRecordHeader + length;
  }
}

}  // namespace lb4
