// The addon's entry: exports the Engine class and the data plane's tables, each from its one
// declaration in native/core: the counters (names, kinds, help), the enumerations' names (a
// value's number is its index) and the engine options' ranges; and the `vip` functions of the HA
// pair. lib/engine/addon.ts checks each list against its own declaration when it loads the addon.

#include <napi.h>

#include "counters.h"
#include "engine_options.h"
#include "engine_wrap.h"
#include "enums.h"
#include "vip_wrap.h"

namespace {

template <typename E>
Napi::Array enumNames(Napi::Env env) {
  Napi::Array names = Napi::Array::New(env, lb4::enumCount<E>());
  for (uint32_t i = 0; i < lb4::enumCount<E>(); ++i) names.Set(i, lb4::enumName(static_cast<E>(i)));
  return names;
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", lb4::EngineWrap::define(env));
  Napi::Array counters = Napi::Array::New(env, lb4::kCounterCount);
  for (uint32_t i = 0; i < lb4::kCounterCount; ++i) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("name", lb4::kCounterInfo[i].name);
    c.Set("kind", lb4::kCounterInfo[i].kind);
    c.Set("help", lb4::kCounterInfo[i].help);
    counters.Set(i, c);
  }
  exports.Set("counters", counters);
  exports.Set("algorithms", enumNames<lb4::Algorithm>(env));
  exports.Set("hashKeys", enumNames<lb4::HashKey>(env));
  exports.Set("backendStates", enumNames<lb4::BackendState>(env));
  exports.Set("closeReasons", enumNames<lb4::CloseReason>(env));
  exports.Set("protocols", enumNames<lb4::Protocol>(env));
  exports.Set("proxyVersions", enumNames<lb4::ProxyVersion>(env));
  Napi::Object limits = Napi::Object::New(env);
  for (const lb4::OptionLimit& option : lb4::kEngineOptions) {
    Napi::Object range = Napi::Object::New(env);
    range.Set("min", static_cast<double>(option.min));
    range.Set("max", static_cast<double>(option.max));
    limits.Set(option.name, range);
  }
  exports.Set("optionLimits", limits);
  exports.Set("vip", lb4::defineVip(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(lb4, init)
