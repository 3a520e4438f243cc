#pragma once
// An IPv4 or IPv6 socket address held by value.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace lb4 {

class SocketAddress {
 public:
  SocketAddress() = default;

  // Parses a numeric IPv4 or IPv6 address (no brackets, no host names: the control plane resolves
  // names before anything reaches the data plane). Returns false when `ip` is not numeric.
  static bool fromIp(const std::string& ip, uint16_t port, SocketAddress& out);

  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  void setPort(uint16_t port);
  std::string ip() const;
  // "1.2.3.4:80" or "[::1]:80".
  std::string toString() const;
  // The address's bytes in network order: 4 for IPv4 (and for an IPv4-mapped IPv6 address,
  // which is the same host), 16 for IPv6, 0 for anything else.
  size_t ipBytes(uint8_t out[16]) const;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t length() const { return length_; }
  socklen_t* lengthPtr() { return &length_; }
  // Resets the length to the full storage size, ready for accept()/getsockname().
  void prepareForKernel() { length_ = sizeof(storage_); }

 private:
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

}  // namespace lb4
