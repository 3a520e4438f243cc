#include "vip_wrap.h"

#include <string>

#include "vip/address_netlink.h"
#include "vip/announce.h"

namespace lb4 {

namespace {

// Larger counts would only flood the link: a few rounds, repeated later, are what helps.
constexpr int kMaxAnnounceCount = 16;

bool throwType(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

// The interface name, checked only for type: the kernel is the judge of names (ENODEV).
bool getIfname(const Napi::CallbackInfo& info, std::string& out) {
  if (!info[0].IsString()) return false;
  out = info[0].As<Napi::String>().Utf8Value();
  return true;
}

Napi::Value result(Napi::Env env, const VipError& e) {
  if (e.ok()) return env.Undefined();
  Napi::Object failure = Napi::Object::New(env);
  failure.Set("errno", e.error);
  failure.Set("syscall", e.syscall);
  if (!e.detail.empty()) failure.Set("detail", e.detail);
  return failure;
}

// (ifname, "ip/prefix")
bool cidrArgs(const Napi::CallbackInfo& info, std::string& ifname, VipAddress& address) {
  if (!getIfname(info, ifname)) return throwType(info.Env(), "vip: the interface name must be a string");
  if (!info[1].IsString() || !parseVipCidr(info[1].As<Napi::String>().Utf8Value(), address))
    return throwType(info.Env(), "vip: the address must be a string \"ip/prefix\" (IPv4 or IPv6)");
  return true;
}

// (ifname, "ip")
bool ipArgs(const Napi::CallbackInfo& info, std::string& ifname, VipAddress& address) {
  if (!getIfname(info, ifname)) return throwType(info.Env(), "vip: the interface name must be a string");
  if (!info[1].IsString() || !parseVipIp(info[1].As<Napi::String>().Utf8Value(), address))
    return throwType(info.Env(), "vip: the address must be a numeric IPv4 or IPv6 address");
  return true;
}

Napi::Value add(const Napi::CallbackInfo& info) {
  std::string ifname;
  VipAddress address;
  if (!cidrArgs(info, ifname, address)) return info.Env().Undefined();
  return result(info.Env(), addAddress(ifname, address));
}

Napi::Value remove(const Napi::CallbackInfo& info) {
  std::string ifname;
  VipAddress address;
  if (!cidrArgs(info, ifname, address)) return info.Env().Undefined();
  return result(info.Env(), removeAddress(ifname, address));
}

Napi::Value has(const Napi::CallbackInfo& info) {
  std::string ifname;
  VipAddress address;
  if (!ipArgs(info, ifname, address)) return info.Env().Undefined();
  bool present = false;
  VipError e = hasAddress(ifname, address, present);
  if (!e.ok()) return result(info.Env(), e);
  return Napi::Boolean::New(info.Env(), present);
}

Napi::Value announce(const Napi::CallbackInfo& info) {
  std::string ifname;
  VipAddress address;
  if (!ipArgs(info, ifname, address)) return info.Env().Undefined();
  if (!info[2].IsNumber()) {
    throwType(info.Env(), "vip.announce: count must be a number");
    return info.Env().Undefined();
  }
  double count = info[2].As<Napi::Number>().DoubleValue();
  if (!(count >= 1 && count <= kMaxAnnounceCount) || count != static_cast<int>(count)) {
    Napi::RangeError::New(info.Env(), "vip.announce: count must be an integer from 1 to " + std::to_string(kMaxAnnounceCount)).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return result(info.Env(), announceAddress(ifname, address, static_cast<int>(count)));
}

}  // namespace

Napi::Object defineVip(Napi::Env env) {
  Napi::Object vip = Napi::Object::New(env);
  vip.Set("add", Napi::Function::New<add>(env, "add"));
  vip.Set("remove", Napi::Function::New<remove>(env, "remove"));
  vip.Set("has", Napi::Function::New<has>(env, "has"));
  vip.Set("announce", Napi::Function::New<announce>(env, "announce"));
  return vip;
}

}  // namespace lb4
