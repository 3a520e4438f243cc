#include "counters.h"

namespace lb4 {

const CounterInfo kCounterInfo[kCounterCount] = {
#define LB4_COUNTER_INFO(name, kind, help) {#name, kind, help},
    LB4_COUNTERS(LB4_COUNTER_INFO)
#undef LB4_COUNTER_INFO
};

}  // namespace lb4
