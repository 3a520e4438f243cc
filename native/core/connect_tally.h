#pragma once
// Passive health's raw material: per backend, the outcomes of this worker's attempts to reach it
// since the last report. TCP tallies connects; UDP tallies refusals (ICMP port unreachable on a
// session's upstream socket) and first replies. Both report the same BackendConnects event, so
// the control plane counts consecutive failures alike for either protocol. Single-threaded:
// owned by one protocol handler of one worker.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "io/event_queue.h"

namespace lb4 {

class ConnectTallies {
 public:
  void add(uint32_t backendKey, bool ok, bool timeout) {
    auto it = std::find_if(tallies_.begin(), tallies_.end(), [&](const Tally& t) { return t.backendKey == backendKey; });
    if (it == tallies_.end()) it = tallies_.insert(tallies_.end(), Tally{backendKey, 0, 0, 0, 0});
    if (ok) {
      it->successes++;
      it->trailingFailures = 0;
    } else {
      it->failures++;
      it->trailingFailures++;
      if (timeout) it->timeouts++;
    }
  }

  // Outcomes go up once per tick per backend, when something failed, or when a backend that was
  // failing succeeds again (so the control plane can count consecutive failures). A healthy
  // backend's successes alone are not news.
  void flush(EventQueue& events, uint32_t worker) {
    for (const Tally& t : tallies_) {
      auto failing = std::find(failingKeys_.begin(), failingKeys_.end(), t.backendKey);
      bool wasFailing = failing != failingKeys_.end();
      if (t.failures == 0 && !wasFailing) continue;
      if (t.trailingFailures == 0 && wasFailing) {
        failingKeys_.erase(failing);
      } else if (t.trailingFailures > 0 && !wasFailing) {
        failingKeys_.push_back(t.backendKey);
      }
      Event e{EventType::BackendConnects};
      e.worker = worker;
      e.backendKey = t.backendKey;
      e.count = t.failures;
      e.timeouts = t.timeouts;
      e.successes = t.successes;
      e.trailingFailures = t.trailingFailures;
      events.push(e);
    }
    tallies_.clear();
  }

 private:
  struct Tally {
    uint32_t backendKey, failures, timeouts, successes;
    uint32_t trailingFailures;  // failures since the last success in this tally
  };
  std::vector<Tally> tallies_;
  // Backends whose last report from this worker had failures: their next successes are news.
  std::vector<uint32_t> failingKeys_;
};

}  // namespace lb4
