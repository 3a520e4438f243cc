// The addon's entry: exports the Engine class and the data plane's tables, each from its one
// declaration in native/core: the counters (names, kinds, help), the enumerations' names (a
// value's number is its index) and the engine options' ranges; and the `vip` functions of the HA
// pair. lib/engine/addon.ts checks each list against its own declaration when it loads the addon.

#include <napi.h>

#include "balance/hash.h"
#include "balance/maglev.h"
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

// maglevTable(ids, weights[, size]): the Maglev table the engine builds for these backends (each
// entry an index into `ids`). The kernel NAT data plane (lib/nat/) puts the same table into an
// nftables map, so a node in NAT mode and one in proxy mode, or the two nodes of a pair, agree on
// which backend owns which entry; computing it here, not in a TypeScript copy, keeps one algorithm.
Napi::Value maglevTable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsArray()) {
    Napi::TypeError::New(env, "maglevTable(ids: string[], weights: number[], size?: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array ids = info[0].As<Napi::Array>();
  Napi::Array weights = info[1].As<Napi::Array>();
  if (ids.Length() != weights.Length()) {
    Napi::RangeError::New(env, "maglevTable: ids and weights differ in length").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<lb4::MaglevMember> members;
  for (uint32_t i = 0; i < ids.Length(); ++i) {
    Napi::Value id = ids.Get(i);
    Napi::Value weight = weights.Get(i);
    if (!id.IsString() || !weight.IsNumber()) {
      Napi::TypeError::New(env, "maglevTable: ids are strings, weights numbers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    members.push_back({lb4::backendIdHash(id.As<Napi::String>().Utf8Value()), weight.As<Napi::Number>().Uint32Value()});
  }
  uint32_t size = lb4::kMaglevTableSize;
  if (info.Length() > 2 && info[2].IsNumber()) size = info[2].As<Napi::Number>().Uint32Value();
  std::vector<uint32_t> table = lb4::buildMaglevTable(members, size);
  Napi::Uint32Array out = Napi::Uint32Array::New(env, table.size());
  for (size_t i = 0; i < table.size(); ++i) out[i] = table[i];
  return out;
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
  Napi::Array histograms = Napi::Array::New(env, lb4::kHistogramCount);
  for (uint32_t i = 0; i < lb4::kHistogramCount; ++i) {
    const lb4::HistogramInfo& info = lb4::kHistogramInfo[i];
    Napi::Object h = Napi::Object::New(env);
    h.Set("name", info.name);
    h.Set("protocol", info.protocol);
    h.Set("help", info.help);
    Napi::Array bounds = Napi::Array::New(env, info.boundCount);
    for (uint32_t b = 0; b < info.boundCount; ++b) bounds.Set(b, static_cast<double>(info.boundsUs[b]) / 1e6);
    h.Set("bounds", bounds);
    histograms.Set(i, h);
  }
  exports.Set("histograms", histograms);
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
  exports.Set("maglevTable", Napi::Function::New(env, maglevTable, "maglevTable"));
  exports.Set("maglevTableSize", static_cast<double>(lb4::kMaglevTableSize));
  return exports;
}

}  // namespace

NODE_API_MODULE(lb4, init)
