// EngineWrap's verbs for UDP sessions across an HA failover (native/core/udp/session_replication.h):
// switch reporting on, take the reported changes, and install the peer's as affinity hints.
// Every function runs on the JS thread. Declared in engine_wrap.h with the other verbs.

#include <arpa/inet.h>

#include <cstring>

#include "engine_wrap.h"
#include "io/clock.h"
#include "balance/hash.h"

namespace lb4 {

namespace {

std::string localIp(const LocalAddress& local) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (local.family == AF_INET) inet_ntop(AF_INET, &local.v4, text, sizeof(text));
  if (local.family == AF_INET6) inet_ntop(AF_INET6, &local.v6, text, sizeof(text));
  return text;
}

bool fail(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

// One update as JS gives it: {set, listener, clientIp, clientPort, localIp?, backendId}.
bool toAffinityUpdate(Napi::Env env, Napi::Value value, size_t listenerCount, AffinityUpdate& out) {
  if (!value.IsObject()) return fail(env, "applyAffinity: each update must be an object");
  Napi::Object o = value.As<Napi::Object>();
  Napi::Value set = o.Get("set"), listener = o.Get("listener"), clientIp = o.Get("clientIp"),
              clientPort = o.Get("clientPort"), local = o.Get("localIp"), backendId = o.Get("backendId");
  if (!set.IsBoolean() || !listener.IsNumber() || !clientIp.IsString() || !clientPort.IsNumber() ||
      !backendId.IsString() || !(local.IsUndefined() || local.IsString()))
    return fail(env, "applyAffinity: an update is {set, listener, clientIp, clientPort, localIp?, backendId}");
  const int64_t slot = listener.As<Napi::Number>().Int64Value();
  const int64_t port = clientPort.As<Napi::Number>().Int64Value();
  if (slot < 0 || static_cast<size_t>(slot) >= listenerCount) return fail(env, "applyAffinity: no such listener slot");
  if (port < 1 || port > 65535) return fail(env, "applyAffinity: clientPort must be 1-65535");
  SocketAddress client;
  if (!SocketAddress::fromIp(clientIp.As<Napi::String>().Utf8Value(), static_cast<uint16_t>(port), client))
    return fail(env, "applyAffinity: clientIp is not a numeric IP address");
  LocalAddress localAddress;
  if (local.IsString()) {
    SocketAddress parsed;
    if (!SocketAddress::fromIp(local.As<Napi::String>().Utf8Value(), 0, parsed))
      return fail(env, "applyAffinity: localIp is not a numeric IP address");
    // As the worker reads it from IP_PKTINFO: an IPv4-mapped address is the IPv4 one.
    uint8_t bytes[16];
    const size_t n = parsed.ipBytes(bytes);
    localAddress.family = n == 4 ? AF_INET : AF_INET6;
    std::memcpy(n == 4 ? static_cast<void*>(&localAddress.v4) : static_cast<void*>(&localAddress.v6), bytes, n);
  }
  out.set = set.As<Napi::Boolean>().Value();
  out.key = SessionKey::make(static_cast<uint32_t>(slot), client, localAddress);
  out.backendIdHash = backendIdHash(backendId.As<Napi::String>().Utf8Value());
  return true;
}

}  // namespace

Napi::Value EngineWrap::setSessionReplication(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBoolean()) {
    Napi::TypeError::New(env, "setSessionReplication needs a boolean").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  engine_->replication().setEnabled(info[0].As<Napi::Boolean>().Value());
  return env.Undefined();
}

Napi::Value EngineWrap::resendSessions(const Napi::CallbackInfo& info) {
  // The workers report on their next pass; the changes come with a later drain.
  if (started_ && !closing_) engine_->reportSessions();
  return info.Env().Undefined();
}

Napi::Value EngineWrap::drainSessionChanges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<SessionChange> changes = engine_->replication().drain();
  Napi::Array list = Napi::Array::New(env, changes.size());
  for (uint32_t i = 0; i < changes.size(); ++i) {
    const SessionChange& c = changes[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("opened", c.opened);
    o.Set("listener", c.listener);
    o.Set("backendKey", c.backendKey);
    o.Set("clientIp", c.client.ip());
    o.Set("clientPort", c.client.port());
    if (c.local.family != 0) o.Set("localIp", localIp(c.local));
    list.Set(i, o);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("changes", list);
  out.Set("dropped", static_cast<double>(engine_->replication().droppedChanges()));
  return out;
}

Napi::Value EngineWrap::applyAffinity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) {
    Napi::TypeError::New(env, "applyAffinity needs an array of updates").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Converted whole before any is applied: a bad update applies none of its batch.
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<AffinityUpdate> updates(list.Length());
  for (uint32_t i = 0; i < list.Length(); ++i) {
    if (!toAffinityUpdate(env, list.Get(i), engine_->listenerCount(), updates[i])) return env.Undefined();
  }
  const size_t set = engine_->replication().apply(updates, monotonicMs());
  Napi::Object out = Napi::Object::New(env);
  out.Set("set", static_cast<double>(set));
  out.Set("size", static_cast<double>(engine_->replication().affinitySize()));
  return out;
}

}  // namespace lb4
