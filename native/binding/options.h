#pragma once
// Converts the control plane's plain option objects into the data plane's structs before any
// work starts. The control plane has validated them already (lib/config.ts); this only checks
// shape and ranges, and throws a TypeError/RangeError naming the field when they are off.

#include <napi.h>

#include <vector>

#include "engine.h"

namespace lb4 {

// Returns false with a pending JS exception.
bool toEngineConfig(Napi::Env env, Napi::Value value, EngineConfig& out);
bool toBackendTables(Napi::Env env, Napi::Value value, size_t listeners, std::vector<std::vector<BackendSpec>>& out);
bool toSnapshotFilter(Napi::Env env, Napi::Value value, SnapshotFilter& out);

}  // namespace lb4
