#pragma once
// The one native object JavaScript sees: lb4.Engine. Every method runs on the JS thread. Work
// finished on worker threads comes back as a Job through one thread-safe function, which is
// referenced only while a promise is pending: the addon never keeps the process alive by itself.

#include <napi.h>

#include <functional>
#include <memory>

#include "engine.h"

namespace lb4 {

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit EngineWrap(const Napi::CallbackInfo& info);
  ~EngineWrap() override;

  using Job = std::function<void(Napi::Env)>;

 private:
  Napi::Value start(const Napi::CallbackInfo& info);
  Napi::Value applyBackends(const Napi::CallbackInfo& info);
  Napi::Value readStats(const Napi::CallbackInfo& info);
  Napi::Value readLatency(const Napi::CallbackInfo& info);
  Napi::Value backendKeyLimit(const Napi::CallbackInfo& info);
  Napi::Value connections(const Napi::CallbackInfo& info);
  Napi::Value onEvents(const Napi::CallbackInfo& info);
  Napi::Value droppedEvents(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);
  Napi::Value addListener(const Napi::CallbackInfo& info);
  Napi::Value removeListener(const Napi::CallbackInfo& info);
  Napi::Value closeFlows(const Napi::CallbackInfo& info);
  Napi::Value setListenerProxy(const Napi::CallbackInfo& info);
  Napi::Value setListenerPolicy(const Napi::CallbackInfo& info);
  Napi::Value setFlowLog(const Napi::CallbackInfo& info);
  // engine_replication.cc: UDP sessions across an HA failover.
  Napi::Value setSessionReplication(const Napi::CallbackInfo& info);
  Napi::Value drainSessionChanges(const Napi::CallbackInfo& info);
  Napi::Value applyAffinity(const Napi::CallbackInfo& info);
  Napi::Value resendSessions(const Napi::CallbackInfo& info);

  static void callJs(Napi::Env env, Napi::Function, EngineWrap* self, Job* job);
  static void finalizeTsfn(Napi::Env, std::shared_ptr<bool>* live, EngineWrap*);
  static void cleanupHook(void* self);
  // Any thread: queues `job` for the JS thread.
  void post(Job job);
  // JS thread: a promise is now pending / no longer pending.
  void beginRequest(Napi::Env env);
  void endRequest(Napi::Env env);
  void deliverEvents(Napi::Env env);
  void shutdownNow();
  void releaseTsfn();

  using Tsfn = Napi::TypedThreadSafeFunction<EngineWrap, Job, &EngineWrap::callJs>;

  std::unique_ptr<Engine> engine_;
  Tsfn tsfn_;
  // Whether the thread-safe function still exists. Shared with its finalizer, which may run after
  // this object is gone (it must not touch `this`).
  std::shared_ptr<bool> tsfnLive_;
  bool holdsSelf_ = false;  // a running engine keeps its JS object from being collected
  bool started_ = false;
  bool closing_ = false;
  bool cleanupHookAdded_ = false;
  int pending_ = 0;
  Napi::FunctionReference eventCallback_;
  Napi::ObjectReference closePromise_;
};

}  // namespace lb4
