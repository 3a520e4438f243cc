#pragma once
// The addon's `vip` object: add, remove, has and announce a virtual IP (native/core/vip). Each
// function runs on the JS thread and returns at once (an rtnetlink round trip or a few raw
// packets). Bad arguments throw a TypeError; a system failure is returned, not thrown, as
// { errno, syscall, detail? }, which lib/cluster/vip-driver.ts turns into a Node-style error.

#include <napi.h>

namespace lb4 {

Napi::Object defineVip(Napi::Env env);

}  // namespace lb4
