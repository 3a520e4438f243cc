#include "balance/picker.h"

#include "balance/least_conn.h"
#include "balance/maglev_picker.h"
#include "balance/round_robin.h"

namespace lb4 {

std::unique_ptr<Picker> makePicker(Algorithm algorithm, uint32_t workerIndex) {
  // No default: the compiler warns about an algorithm enums.h lists and this does not make.
  switch (algorithm) {
    case Algorithm::RoundRobin:
      return std::make_unique<RoundRobinPicker>(workerIndex);
    case Algorithm::LeastConn:
      return std::make_unique<LeastConnPicker>(workerIndex);
    case Algorithm::Maglev:
      return std::make_unique<MaglevPicker>();  // no per-worker state: every worker agrees
  }
  return std::make_unique<RoundRobinPicker>(workerIndex);  // not reached: every value is above
}

}  // namespace lb4
