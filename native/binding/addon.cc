// The addon's entry: exports the Engine class and the counter table (names, kinds, help) that
// the control plane derives its stats and metrics from.

#include <napi.h>

#include "counters.h"
#include "engine_wrap.h"
#include "vip_wrap.h"

namespace {

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
  exports.Set("vip", lb4::defineVip(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(lb4, init)
