#pragma once
// Converts the control plane's plain option objects into the data plane's structs before any
// work starts. The control plane has validated them already (lib/config.ts); this only checks
// shape and ranges, and throws a TypeError/RangeError naming the field when they are off.

#include <napi.h>

#include <optional>
#include <string>
#include <vector>

#include "engine.h"

namespace lb4 {

// Returns false with a pending JS exception.
bool toEngineConfig(Napi::Env env, Napi::Value value, EngineConfig& out);
bool toBackendTables(Napi::Env env, Napi::Value value, size_t listeners, std::vector<std::vector<BackendSpec>>& out);
bool toFlowFilter(Napi::Env env, Napi::Value value, FlowFilter& out);
bool toListenerConfig(Napi::Env env, Napi::Value value, const std::string& where, ListenerConfig& out);
// { proxyProtocol, acceptProxy } of a listener's options, or of setListenerProxy's argument.
bool toProxySettings(Napi::Env env, Napi::Object value, const std::string& where, ProxySettings& out);
// { sniRoutes, sniDefaultPool } of the same object: a listener's routes by TLS server name.
bool toSniRoutes(Napi::Env env, Napi::Object value, const std::string& where, SniRoutes& out);
// { allow, deny, maxConnections, maxConnectionsPerSource, connectionRatePerSource, queueSize,
// queueTimeoutMs } of a listener's `policy`, or of setListenerPolicy's argument; absent: none.
bool toListenerPolicy(Napi::Env env, Napi::Object value, const std::string& where, ListenerPolicy& out);
bool toBackendTable(Napi::Env env, Napi::Value value, const std::string& where, std::vector<BackendSpec>& out);
// A listener slot the engine has (0 .. listeners - 1).
bool toListenerSlot(Napi::Env env, Napi::Value value, size_t listeners, uint32_t& out);
// Undefined leaves `out` empty; otherwise an algorithm's number (enums.h).
bool toOptionalAlgorithm(Napi::Env env, Napi::Value value, const std::string& where, std::optional<Algorithm>& out);

}  // namespace lb4
