#include "options.h"

#include <cmath>
#include <string>

namespace lb4 {

namespace {

bool throwType(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}
bool throwRange(Napi::Env env, const std::string& message) {
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

// An integer in [min, max]; `what` names it in the error.
bool getInteger(Napi::Env env, Napi::Value v, const std::string& what, double min, double max, double& out) {
  if (!v.IsNumber()) return throwType(env, what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < min || d > max || std::floor(d) != d)
    return throwRange(env, what + " must be an integer from " + std::to_string(static_cast<int64_t>(min)) + " to " +
                               std::to_string(static_cast<int64_t>(max)));
  out = d;
  return true;
}

bool getNumber(Napi::Env env, Napi::Object obj, const char* key, const std::string& where, double min, double max,
               double& out) {
  return getInteger(env, obj.Get(key), where + "." + key, min, max, out);
}

// An engine option, in the range engine_options.h gives it.
bool getOption(Napi::Env env, Napi::Object obj, EngineOption option, const std::string& where, double& out) {
  const OptionLimit& limit = optionLimit(option);
  return getNumber(env, obj, limit.name, where, static_cast<double>(limit.min), static_cast<double>(limit.max), out);
}

// An enumeration's number: one of the values enums.h lists.
template <typename E>
bool getEnum(Napi::Env env, Napi::Object obj, const char* key, const std::string& where, E& out) {
  double n;
  if (!getNumber(env, obj, key, where, 0, static_cast<double>(enumCount<E>() - 1), n)) return false;
  return enumFromNumber(static_cast<uint32_t>(n), out);
}

bool getAddress(Napi::Env env, Napi::Object obj, const std::string& where, SocketAddress& out) {
  Napi::Value ip = obj.Get("ip");
  if (!ip.IsString()) return throwType(env, where + ".ip must be a string");
  double port;
  if (!getNumber(env, obj, "port", where, 0, 65535, port)) return false;
  if (!SocketAddress::fromIp(ip.As<Napi::String>().Utf8Value(), static_cast<uint16_t>(port), out))
    return throwType(env, where + ".ip must be a numeric IPv4 or IPv6 address");
  return true;
}

}  // namespace

bool toEngineConfig(Napi::Env env, Napi::Value value, EngineConfig& out) {
  if (!value.IsObject()) return throwType(env, "options must be an object");
  Napi::Object o = value.As<Napi::Object>();
  double workers, connectTimeout, idleTimeout, retries, pipeSize, maxIdlePipes, udpIdleTimeout, udpResponses,
      udpMaxSessions, udpMaxDatagram, hashKey, proxyHeaderTimeout, udpProxyHeader, sniTimeout;
  if (!getOption(env, o, EngineOption::workers, "options", workers) ||
      !getOption(env, o, EngineOption::connectTimeoutMs, "options", connectTimeout) ||
      !getOption(env, o, EngineOption::idleTimeoutMs, "options", idleTimeout) ||
      !getOption(env, o, EngineOption::retries, "options", retries) ||
      !getOption(env, o, EngineOption::pipeSize, "options", pipeSize) ||
      !getOption(env, o, EngineOption::maxIdlePipes, "options", maxIdlePipes) ||
      !getOption(env, o, EngineOption::udpIdleTimeoutMs, "options", udpIdleTimeout) ||
      !getOption(env, o, EngineOption::udpResponses, "options", udpResponses) ||
      !getOption(env, o, EngineOption::udpMaxSessions, "options", udpMaxSessions) ||
      !getOption(env, o, EngineOption::udpMaxDatagram, "options", udpMaxDatagram) ||
      !getOption(env, o, EngineOption::hashKey, "options", hashKey) ||
      !getOption(env, o, EngineOption::proxyHeaderTimeoutMs, "options", proxyHeaderTimeout) ||
      !getOption(env, o, EngineOption::udpProxyHeader, "options", udpProxyHeader) ||
      !getOption(env, o, EngineOption::sniTimeoutMs, "options", sniTimeout) ||
      !enumFromNumber(static_cast<uint32_t>(hashKey), out.worker.hashKey))
    return false;
  out.workers = static_cast<uint32_t>(workers);
  out.worker.connectTimeoutMs = static_cast<int64_t>(connectTimeout);
  out.worker.idleTimeoutMs = static_cast<int64_t>(idleTimeout);
  out.worker.retries = static_cast<uint32_t>(retries);
  out.worker.pipeSize = static_cast<int>(pipeSize);
  out.worker.maxIdlePipes = static_cast<size_t>(maxIdlePipes);
  out.worker.udpIdleTimeoutMs = static_cast<int64_t>(udpIdleTimeout);
  out.worker.udpResponses = static_cast<uint32_t>(udpResponses);
  out.worker.udpMaxSessions = static_cast<uint32_t>(udpMaxSessions);
  out.worker.udpMaxDatagram = static_cast<uint32_t>(udpMaxDatagram);
  out.worker.proxyHeaderTimeoutMs = static_cast<int64_t>(proxyHeaderTimeout);
  out.worker.udpProxyHeaderEvery = udpProxyHeader == 1;
  out.worker.sniTimeoutMs = static_cast<int64_t>(sniTimeout);

  Napi::Value listeners = o.Get("listeners");
  if (!listeners.IsArray()) return throwType(env, "options.listeners must be an array");
  Napi::Array list = listeners.As<Napi::Array>();
  if (list.Length() == 0 || list.Length() > 1024) return throwRange(env, "options.listeners must hold 1 to 1024 entries");
  for (uint32_t i = 0; i < list.Length(); ++i) {
    ListenerConfig config;
    if (!toListenerConfig(env, list.Get(i), "options.listeners[" + std::to_string(i) + "]", config)) return false;
    out.listeners.push_back(std::move(config));
  }
  return true;
}

bool toListenerConfig(Napi::Env env, Napi::Value item, const std::string& where, ListenerConfig& config) {
  if (!item.IsObject()) return throwType(env, where + " must be an object");
  Napi::Object l = item.As<Napi::Object>();
  if (!getAddress(env, l, where, config.address)) return false;
  double backlog;
  if (!getOption(env, l, EngineOption::backlog, where, backlog) ||
      !getEnum(env, l, "algorithm", where, config.algorithm) || !getEnum(env, l, "protocol", where, config.protocol))
    return false;
  config.backlog = static_cast<int>(backlog);
  config.dualStack = l.Get("dualStack").ToBoolean().Value();
  config.freeBind = l.Get("freeBind").ToBoolean().Value();
  if (!toProxySettings(env, l, where, config.proxy)) return false;
  Napi::Value policy = l.Get("policy");
  if (!policy.IsUndefined()) {
    if (!policy.IsObject()) return throwType(env, where + ".policy must be an object");
    if (!toListenerPolicy(env, policy.As<Napi::Object>(), where + ".policy", config.policy)) return false;
  }
  Napi::Value name = l.Get("name");
  if (name.IsString()) config.name = name.As<Napi::String>().Utf8Value();
  return true;
}

bool toProxySettings(Napi::Env env, Napi::Object o, const std::string& where, ProxySettings& out) {
  if (!getEnum(env, o, "proxyProtocol", where, out.send)) return false;
  // acceptProxy: the trusted networks as CIDR strings (validated by the control plane already;
  // checked again here, since the engine is a public surface of its own).
  Napi::Value accept = o.Get("acceptProxy");
  if (!accept.IsArray()) return throwType(env, where + ".acceptProxy must be an array");
  Napi::Array networks = accept.As<Napi::Array>();
  if (networks.Length() > 1024) return throwRange(env, where + ".acceptProxy must hold at most 1024 networks");
  for (uint32_t i = 0; i < networks.Length(); ++i) {
    Napi::Value n = networks.Get(i);
    if (!n.IsString() || !out.accept.add(n.As<Napi::String>().Utf8Value()))
      return throwType(env, where + ".acceptProxy[" + std::to_string(i) + "] must be a network such as 10.0.0.0/8");
  }
  return toSniRoutes(env, o, where, out.sni);
}

// sniRoutes: absent or null (no SNI routing), or [{ name, pool }] with sniDefaultPool (a pool's
// name; absent or empty: none). Names were validated by the control plane; checked again here.
bool toSniRoutes(Napi::Env env, Napi::Object o, const std::string& where, SniRoutes& out) {
  Napi::Value routes = o.Get("sniRoutes");
  if (routes.IsUndefined() || routes.IsNull()) return true;
  if (!routes.IsArray()) return throwType(env, where + ".sniRoutes must be an array");
  Napi::Array list = routes.As<Napi::Array>();
  if (list.Length() > 65536) return throwRange(env, where + ".sniRoutes must hold at most 65536 routes");
  Napi::Value defaultPool = o.Get("sniDefaultPool");
  if (!defaultPool.IsUndefined() && !defaultPool.IsString()) return throwType(env, where + ".sniDefaultPool must be a string");
  out.enable(defaultPool.IsString() ? defaultPool.As<Napi::String>().Utf8Value() : std::string());
  for (uint32_t i = 0; i < list.Length(); ++i) {
    std::string at = where + ".sniRoutes[" + std::to_string(i) + "]";
    Napi::Value item = list.Get(i);
    if (!item.IsObject()) return throwType(env, at + " must be an object");
    Napi::Object r = item.As<Napi::Object>();
    Napi::Value pool = r.Get("pool");
    if (!pool.IsString() || pool.As<Napi::String>().Utf8Value().empty()) return throwType(env, at + ".pool must be a pool name");
    Napi::Value name = r.Get("name");
    if (!name.IsString() || !out.add(name.As<Napi::String>().Utf8Value(), pool.As<Napi::String>().Utf8Value()))
      return throwType(env, at + ".name must be a host name or *.suffix");
  }
  return true;
}

namespace {

bool getNetworks(Napi::Env env, Napi::Object o, const char* key, const std::string& where, NetworkSet& out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return true;
  if (!v.IsArray()) return throwType(env, where + "." + key + " must be an array");
  Napi::Array networks = v.As<Napi::Array>();
  if (networks.Length() > 65536) return throwRange(env, where + "." + key + " must hold at most 65536 networks");
  for (uint32_t i = 0; i < networks.Length(); ++i) {
    Napi::Value n = networks.Get(i);
    if (!n.IsString() || !out.add(n.As<Napi::String>().Utf8Value()))
      return throwType(env, where + "." + key + "[" + std::to_string(i) + "] must be a network such as 10.0.0.0/8");
  }
  return true;
}

bool getOptionalCount(Napi::Env env, Napi::Object o, const char* key, const std::string& where, double max, double& out) {
  out = 0;
  if (o.Get(key).IsUndefined()) return true;
  return getNumber(env, o, key, where, 0, max, out);
}

}  // namespace

bool toListenerPolicy(Napi::Env env, Napi::Object o, const std::string& where, ListenerPolicy& out) {
  if (!getNetworks(env, o, "allow", where, out.allow) || !getNetworks(env, o, "deny", where, out.deny)) return false;
  double maxConnections, perSource, rate, queueSize, queueTimeout;
  if (!getOptionalCount(env, o, "maxConnections", where, 1e9, maxConnections) ||
      !getOptionalCount(env, o, "maxConnectionsPerSource", where, 1e9, perSource) ||
      !getOptionalCount(env, o, "connectionRatePerSource", where, 1e9, rate) ||
      !getOptionalCount(env, o, "queueSize", where, 1e9, queueSize) ||
      !getOptionalCount(env, o, "queueTimeoutMs", where, 86400000, queueTimeout))
    return false;
  out.maxConnections = static_cast<uint32_t>(maxConnections);
  out.sourceMaxConnections = static_cast<uint32_t>(perSource);
  out.sourceRatePerSecond = static_cast<uint32_t>(rate);
  out.queueSize = static_cast<uint32_t>(queueSize);
  out.queueTimeoutMs = static_cast<int64_t>(queueTimeout);
  return true;
}

bool toBackendTable(Napi::Env env, Napi::Value tv, const std::string& where, std::vector<BackendSpec>& out) {
  if (!tv.IsArray()) return throwType(env, where + " must be an array");
  Napi::Array table = tv.As<Napi::Array>();
  for (uint32_t i = 0; i < table.Length(); ++i) {
    std::string at = where + "[" + std::to_string(i) + "]";
    Napi::Value item = table.Get(i);
    if (!item.IsObject()) return throwType(env, at + " must be an object");
    Napi::Object b = item.As<Napi::Object>();
    BackendSpec spec;
    double key, weight;
    if (!getAddress(env, b, at, spec.address) || !getNumber(env, b, "key", at, 0, 1 << 24, key) ||
        !getNumber(env, b, "weight", at, 0, 1000000, weight) || !getEnum(env, b, "state", at, spec.state))
      return false;
    spec.key = static_cast<uint32_t>(key);
    Napi::Value id = b.Get("id");
    if (!id.IsString()) return throwType(env, at + ".id must be a string");
    spec.id = id.As<Napi::String>().Utf8Value();
    spec.weight = static_cast<uint32_t>(weight);
    if (!b.Get("maxConnections").IsUndefined()) {
      double maxConnections;
      if (!getNumber(env, b, "maxConnections", at, 0, 1e9, maxConnections)) return false;
      spec.maxConnections = static_cast<uint32_t>(maxConnections);
    }
    // `proxy` absent: the listener's PROXY protocol setting applies to this backend.
    if (b.Has("proxy") && !b.Get("proxy").IsUndefined()) {
      ProxyVersion proxy;
      if (!getEnum(env, b, "proxy", at, proxy)) return false;
      spec.proxy = proxy;
    }
    Napi::Value pool = b.Get("pool");
    if (!pool.IsUndefined()) {
      if (!pool.IsString()) return throwType(env, at + ".pool must be a string");
      spec.pool = pool.As<Napi::String>().Utf8Value();
    }
    out.push_back(spec);
  }
  return true;
}

bool toBackendTables(Napi::Env env, Napi::Value value, size_t listeners, std::vector<std::vector<BackendSpec>>& out) {
  if (!value.IsArray()) return throwType(env, "tables must be an array");
  Napi::Array tables = value.As<Napi::Array>();
  if (tables.Length() != listeners) return throwRange(env, "tables must hold one table per listener");
  out.assign(listeners, {});
  for (uint32_t t = 0; t < tables.Length(); ++t)
    if (!toBackendTable(env, tables.Get(t), "tables[" + std::to_string(t) + "]", out[t])) return false;
  return true;
}

bool toListenerSlot(Napi::Env env, Napi::Value value, size_t listeners, uint32_t& out) {
  double slot;
  if (!getInteger(env, value, "slot", 0, static_cast<double>(listeners) - 1, slot)) return false;
  out = static_cast<uint32_t>(slot);
  return true;
}

bool toOptionalAlgorithm(Napi::Env env, Napi::Value value, const std::string& where, std::optional<Algorithm>& out) {
  if (value.IsUndefined()) return true;
  double n;
  if (!getInteger(env, value, where, 0, static_cast<double>(enumCount<Algorithm>() - 1), n)) return false;
  Algorithm algorithm;
  if (!enumFromNumber(static_cast<uint32_t>(n), algorithm)) return false;
  out = algorithm;
  return true;
}

bool toFlowFilter(Napi::Env env, Napi::Value value, FlowFilter& out) {
  if (value.IsUndefined()) return true;
  if (!value.IsObject()) return throwType(env, "filter must be an object");
  Napi::Object f = value.As<Napi::Object>();
  double n;
  if (!f.Get("listener").IsUndefined()) {
    if (!getNumber(env, f, "listener", "filter", 0, 1 << 24, n)) return false;
    out.listener = static_cast<int64_t>(n);
  }
  if (!f.Get("backendKey").IsUndefined()) {
    if (!getNumber(env, f, "backendKey", "filter", 0, 1 << 24, n)) return false;
    out.backendKey = static_cast<int64_t>(n);
  }
  if (!f.Get("limit").IsUndefined()) {
    if (!getNumber(env, f, "limit", "filter", 0, 1e9, n)) return false;
    out.limit = static_cast<size_t>(n);
  }
  return true;
}

}  // namespace lb4
