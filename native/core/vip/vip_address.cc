#include "vip/vip_address.h"

#include <arpa/inet.h>

#include <cstdlib>

namespace lb4 {

bool parseVipIp(const std::string& text, VipAddress& out) {
  VipAddress a;
  if (inet_pton(AF_INET, text.c_str(), a.bytes) == 1) {
    a.family = AF_INET;
    a.prefix = 32;
  } else if (inet_pton(AF_INET6, text.c_str(), a.bytes) == 1) {
    a.family = AF_INET6;
    a.prefix = 128;
  } else {
    return false;
  }
  out = a;
  return true;
}

bool parseVipCidr(const std::string& text, VipAddress& out) {
  size_t slash = text.find('/');
  if (slash == std::string::npos || slash + 1 >= text.size() || text.size() - slash - 1 > 3) return false;
  VipAddress a;
  if (!parseVipIp(text.substr(0, slash), a)) return false;
  int prefix = 0;
  for (size_t i = slash + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    prefix = prefix * 10 + (text[i] - '0');
  }
  if (prefix < 1 || prefix > static_cast<int>(a.length() * 8)) return false;
  a.prefix = static_cast<uint8_t>(prefix);
  out = a;
  return true;
}

std::string VipAddress::toString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes, buf, sizeof(buf));
  return std::string(buf) + "/" + std::to_string(prefix);
}

}  // namespace lb4
