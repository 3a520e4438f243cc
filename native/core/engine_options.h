#pragma once
// The engine's numeric options, each declared once with its range and native default. The
// defaults of WorkerOptions, EngineConfig and ListenerConfig come from here, the binding checks
// every option against its range from here, and exports the ranges as `optionLimits`, which the
// control plane's option table is tested against. The control plane validates options first and
// has defaults of its own (workers: one per CPU); these are the data plane's.

#include <cstddef>
#include <cstdint>

#include "enums.h"
#include "tcp/pipe_pool.h"

namespace lb4 {

// X(name, min, max, default): `name` is the option's name in the JS options object.
//   workers           worker threads
//   connectTimeoutMs  a backend connect's time limit
//   idleTimeoutMs     a flow with no byte moving either way for this long is closed
//   retries           connects on other backends after a failed one
//   pipeSize          splice pipe capacity in bytes; 0 keeps the kernel's (64 KiB)
//   maxIdlePipes      spare pipes kept per worker
//   backlog           a listening socket's accept queue
//   udpIdleTimeoutMs  a UDP session with no datagram either way for this long is closed
//   udpResponses      datagrams a backend answers each client datagram with; when they are back
//                     the session ends (nginx's proxy_responses); 0: unlimited
//   udpMaxSessions    UDP sessions per listener; past it the oldest session is evicted
//   udpMaxDatagram    the largest UDP datagram forwarded (bytes); larger ones are dropped, counted
//   hashKey           what a client's flow hash is made of: a HashKey (enums.h) by its number
//   proxyHeaderTimeoutMs  a client of a listener that takes PROXY protocol headers must have
//                     sent its whole header within this time
//   udpProxyHeader    which datagrams of a UDP session carry the PROXY protocol v2 header:
//                     0 the first one, 1 every one
//   sniTimeoutMs      a client of a listener that routes by TLS server name must have sent its
//                     whole ClientHello within this time
#define LB4_ENGINE_OPTIONS(X)          \
  X(workers, 1, 255, 1)                \
  X(connectTimeoutMs, 1, 86400000, 5000) \
  X(idleTimeoutMs, 1, 604800000, 300000) \
  X(retries, 0, 7, 2)                  \
  X(pipeSize, 0, 1048576, 0)           \
  X(maxIdlePipes, 0, 65536, 256)       \
  X(backlog, 1, 65535, 511)            \
  X(udpIdleTimeoutMs, 1, 86400000, 30000) \
  X(udpResponses, 0, 1000000, 0)       \
  X(udpMaxSessions, 1, 1000000, 16384)  \
  X(udpMaxDatagram, 512, 65535, 65535) \
  X(hashKey, 0, 1, 0)                  \
  X(proxyHeaderTimeoutMs, 1, 3600000, 5000) \
  X(udpProxyHeader, 0, 1, 0)           \
  X(sniTimeoutMs, 1, 3600000, 5000)

enum class EngineOption : uint32_t {
#define LB4_OPTION_ENUM(name, min, max, def) name,
  LB4_ENGINE_OPTIONS(LB4_OPTION_ENUM)
#undef LB4_OPTION_ENUM
};

struct OptionLimit {
  const char* name;
  int64_t min;
  int64_t max;
  int64_t defaultValue;
};

inline constexpr OptionLimit kEngineOptions[] = {
#define LB4_OPTION_INFO(name, min, max, def) {#name, min, max, def},
    LB4_ENGINE_OPTIONS(LB4_OPTION_INFO)
#undef LB4_OPTION_INFO
};
inline constexpr size_t kEngineOptionCount = sizeof(kEngineOptions) / sizeof(kEngineOptions[0]);

constexpr const OptionLimit& optionLimit(EngineOption option) { return kEngineOptions[static_cast<size_t>(option)]; }
constexpr int64_t optionDefault(EngineOption option) { return optionLimit(option).defaultValue; }

// What every worker runs with.
struct WorkerOptions {
  int64_t connectTimeoutMs = optionDefault(EngineOption::connectTimeoutMs);
  int64_t idleTimeoutMs = optionDefault(EngineOption::idleTimeoutMs);
  uint32_t retries = static_cast<uint32_t>(optionDefault(EngineOption::retries));
  int pipeSize = static_cast<int>(optionDefault(EngineOption::pipeSize));  // 0: the kernel's default
  size_t maxIdlePipes = static_cast<size_t>(optionDefault(EngineOption::maxIdlePipes));
  int64_t udpIdleTimeoutMs = optionDefault(EngineOption::udpIdleTimeoutMs);
  uint32_t udpResponses = static_cast<uint32_t>(optionDefault(EngineOption::udpResponses));
  uint32_t udpMaxSessions = static_cast<uint32_t>(optionDefault(EngineOption::udpMaxSessions));
  uint32_t udpMaxDatagram = static_cast<uint32_t>(optionDefault(EngineOption::udpMaxDatagram));
  HashKey hashKey = static_cast<HashKey>(optionDefault(EngineOption::hashKey));
  int64_t proxyHeaderTimeoutMs = optionDefault(EngineOption::proxyHeaderTimeoutMs);
  bool udpProxyHeaderEvery = optionDefault(EngineOption::udpProxyHeader) == 1;
  // How many workers share the process's descriptors (set by the engine, not an option): each
  // worker's share bounds what it may hold for later, such as warm UDP sockets.
  uint32_t workerCount = 1;
  // Large pipes each worker may hold (set by the engine, once for the process, from the user's
  // pipe budget: PipePool::largePipesPerWorker).
  size_t maxLargePipes = PipePool::kMaxLargePipes;
  int64_t sniTimeoutMs = optionDefault(EngineOption::sniTimeoutMs);
};

}  // namespace lb4
