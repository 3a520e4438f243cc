#pragma once
// A listener's SNI routes: which backend pool a TLS client's server name goes to. Built by the
// control plane, copied to each worker with the listener's other pre-connect settings, and
// read on every routed accept.
//
// Matching, as HAProxy's and nginx's users expect it: names compare without case and without a
// trailing dot; an exact name wins over a wildcard; "*.example.org" stands for exactly one
// label (a.example.org, not example.org nor a.b.example.org); among several matches of one kind
// the first route listed wins. No name, or no match, goes to the default pool, if there is one.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lb4 {

struct SniRoute {
  // Lower case, no trailing dot. A wildcard keeps only its suffix with the dot: ".example.org".
  std::string name;
  bool wildcard = false;
  std::string pool;
};

class SniRoutes {
 public:
  // Off: the listener connects at once and picks from all its backends.
  bool enabled() const { return enabled_; }
  // `defaultPool` empty: none (unmatched clients are closed).
  void enable(std::string defaultPool) {
    enabled_ = true;
    defaultPool_ = std::move(defaultPool);
  }
  // Adds "name" or "*.suffix" (any case, trailing dot allowed) for `pool`; false if the name is
  // not one lb4 can match.
  bool add(const std::string& pattern, std::string pool);

  // Pools are named, not numbered, here and in the backend tables: routes and tables reach a
  // worker in separate commands (a reload sends both), and a name that is briefly missing from
  // the other side finds no backend, where a number could have meant another pool.
  struct Choice {
    const std::string* pool = nullptr;  // null: nowhere to go; else valid while these routes are
    bool matched = false;               // by a route (not the default pool)
  };
  // `serverName` as the parser gives it (lower case, no trailing dot); empty: the hello named none.
  Choice route(const std::string& serverName) const;

  size_t size() const { return routes_.size(); }

 private:
  bool enabled_ = false;
  std::string defaultPool_;
  std::vector<SniRoute> routes_;
};

}  // namespace lb4
