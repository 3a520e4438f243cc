#pragma once
// Reads a PROXY protocol header, version 1 or 2 (told apart by the first byte), from the bytes
// a client sent first. A pure function of those bytes: the caller peeks at what has arrived,
// calls again with more when told NeedMore, and consumes exactly `length` bytes when Done. Any
// prefix of a valid header gives NeedMore; the answer for a given input never depends on how it
// arrived. Only stream (TCP) headers are accepted: a datagram header on a TCP flow is malformed.

#include <cstddef>
#include <cstdint>

#include "proxy_protocol/proxy_header.h"

namespace lb4 {

ProxyHeader parseProxyHeader(const uint8_t* data, size_t size);

}  // namespace lb4
