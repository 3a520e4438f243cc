// SNI route matching. See sni_routes.h.

#include "sni/sni_routes.h"

#include "sni/client_hello.h"

namespace lb4 {

bool SniRoutes::add(const std::string& pattern, std::string pool) {
  std::string name = pattern;
  if (!name.empty() && name.back() == '.') name.pop_back();
  for (char& ch : name)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  SniRoute route;
  route.pool = std::move(pool);
  if (name.size() > 2 && name[0] == '*' && name[1] == '.') {
    route.wildcard = true;
    if (!isRoutableHostName(name.substr(2))) return false;
    route.name = name.substr(1);
  } else {
    if (!isRoutableHostName(name)) return false;
    route.name = std::move(name);
  }
  routes_.push_back(std::move(route));
  return true;
}

SniRoutes::Choice SniRoutes::route(const std::string& serverName) const {
  if (!serverName.empty()) {
    for (const SniRoute& r : routes_)
      if (!r.wildcard && r.name == serverName) return {&r.pool, true};
    for (const SniRoute& r : routes_) {
      if (!r.wildcard || serverName.size() <= r.name.size()) continue;
      const size_t labelLength = serverName.size() - r.name.size();
      // The suffix (with its dot) ends the name, and what stands before it is one label.
      if (serverName.compare(labelLength, r.name.size(), r.name) == 0 &&
          serverName.find('.') == labelLength)
        return {&r.pool, true};
    }
  }
  return {defaultPool_.empty() ? nullptr : &defaultPool_, false};
}

}  // namespace lb4
