#include "engine_wrap.h"

#include "options.h"

namespace lb4 {

namespace {

Napi::Object boundAddress(Napi::Env env, const SocketAddress& address) {
  Napi::Object a = Napi::Object::New(env);
  a.Set("ip", address.ip());
  a.Set("port", address.port());
  a.Set("family", address.family() == AF_INET6 ? "IPv6" : "IPv4");
  return a;
}

Napi::Object startFailure(Napi::Env env, const SocketError& err, uint32_t listener) {
  // The error crosses as numbers; lib/native.ts makes a Node-style error of it.
  Napi::Object e = Napi::Object::New(env);
  e.Set("errno", err.error);
  e.Set("syscall", err.syscall);
  e.Set("listener", listener);
  return e;
}

}  // namespace

Napi::Function EngineWrap::define(Napi::Env env) {
  return DefineClass(env, "Engine",
                     {
                         InstanceMethod<&EngineWrap::start>("start"),
                         InstanceMethod<&EngineWrap::applyBackends>("applyBackends"),
                         InstanceMethod<&EngineWrap::readStats>("readStats"),
                         InstanceMethod<&EngineWrap::readLatency>("readLatency"),
                         InstanceMethod<&EngineWrap::backendKeyLimit>("backendKeyLimit"),
                         InstanceMethod<&EngineWrap::connections>("connections"),
                         InstanceMethod<&EngineWrap::onEvents>("onEvents"),
                         InstanceMethod<&EngineWrap::droppedEvents>("droppedEvents"),
                         InstanceMethod<&EngineWrap::close>("close"),
                         InstanceMethod<&EngineWrap::addListener>("addListener"),
                         InstanceMethod<&EngineWrap::removeListener>("removeListener"),
                         InstanceMethod<&EngineWrap::closeFlows>("closeFlows"),
                         InstanceMethod<&EngineWrap::setListenerProxy>("setListenerProxy"),
                         InstanceMethod<&EngineWrap::setListenerPolicy>("setListenerPolicy"),
                         InstanceMethod<&EngineWrap::setFlowLog>("setFlowLog"),
                         InstanceMethod<&EngineWrap::setSessionReplication>("setSessionReplication"),
                         InstanceMethod<&EngineWrap::drainSessionChanges>("drainSessionChanges"),
                         InstanceMethod<&EngineWrap::applyAffinity>("applyAffinity"),
                         InstanceMethod<&EngineWrap::resendSessions>("resendSessions"),
                     });
}

EngineWrap::EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
  Napi::Env env = info.Env();
  EngineConfig config;
  if (!toEngineConfig(env, info[0], config)) return;
  engine_ = std::make_unique<Engine>(std::move(config));
  // The finalizer tells the destructor when Node has already torn the function down (at
  // environment exit), so it is never released twice. It gets a flag of its own, not `this`.
  tsfnLive_ = std::make_shared<bool>(true);
  tsfn_ = Tsfn::New(env, "lb4.engine", 0, 1, this, &EngineWrap::finalizeTsfn, new std::shared_ptr<bool>(tsfnLive_));
  tsfn_.Unref(env);
  engine_->events().setNotify([this] {
    post([this](Napi::Env env) { deliverEvents(env); });
  });
}

EngineWrap::~EngineWrap() {
  shutdownNow();
  if (cleanupHookAdded_) napi_remove_env_cleanup_hook(Env(), &EngineWrap::cleanupHook, this);
  // Abort, not release: jobs still queued must not run against this object once it is gone
  // (Node frees them through callJs with a null env).
  if (tsfnLive_ && *tsfnLive_) {
    *tsfnLive_ = false;
    tsfn_.Abort();
  }
}

void EngineWrap::finalizeTsfn(Napi::Env, std::shared_ptr<bool>* live, EngineWrap*) {
  **live = false;
  delete live;
}

void EngineWrap::releaseTsfn() {
  if (!*tsfnLive_) return;
  *tsfnLive_ = false;
  tsfn_.Release();
}

void EngineWrap::shutdownNow() {
  if (engine_) {
    engine_->stop(0, nullptr);
    engine_->join();
  }
}

void EngineWrap::cleanupHook(void* self) {
  // The Node.js environment is going away (process exit, worker_thread end) with the engine
  // still running: stop the workers before the addon's code is unloaded under them.
  auto* wrap = static_cast<EngineWrap*>(self);
  wrap->cleanupHookAdded_ = false;
  wrap->shutdownNow();
}

void EngineWrap::callJs(Napi::Env env, Napi::Function, EngineWrap* self, Job* job) {
  // env is null when the function is being torn down: only free the job then.
  if (env != nullptr && job) (*job)(env);
  delete job;
}

void EngineWrap::post(Job job) {
  Job* heap = new Job(std::move(job));
  if (tsfn_.NonBlockingCall(heap) != napi_ok) delete heap;  // torn down: nobody is waiting any more
}

void EngineWrap::beginRequest(Napi::Env env) {
  if (pending_++ == 0) {
    tsfn_.Ref(env);
    Ref();  // keep this object alive while a worker may still answer it
  }
}

void EngineWrap::endRequest(Napi::Env env) {
  if (--pending_ == 0) {
    if (*tsfnLive_) tsfn_.Unref(env);
    Unref();
  }
}

Napi::Value EngineWrap::start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (started_ || closing_) {
    Napi::Error::New(env, started_ ? "engine already started" : "engine is closed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<std::vector<BackendSpec>> tables;
  if (!toBackendTables(env, info[0], engine_->listenerCount(), tables)) return env.Undefined();
  SocketError err;
  uint32_t failed = 0;
  if (!engine_->start(std::move(tables), err, failed)) return startFailure(env, err, failed);
  started_ = true;
  // While it runs, the engine is not left to the garbage collector: collection would stop it
  // and cut every flow. close() lets go.
  Ref();
  holdsSelf_ = true;
  napi_add_env_cleanup_hook(env, &EngineWrap::cleanupHook, this);
  cleanupHookAdded_ = true;
  Napi::Array bound = Napi::Array::New(env);
  const auto& addresses = engine_->boundAddresses();
  for (uint32_t i = 0; i < addresses.size(); ++i) bound.Set(i, boundAddress(env, addresses[i]));
  return bound;
}

Napi::Value EngineWrap::applyBackends(const Napi::CallbackInfo& info) {
  // applyBackends(slot, backends, algorithm?): one listener's table; the others keep theirs.
  Napi::Env env = info.Env();
  uint32_t slot = 0;
  std::vector<BackendSpec> backends;
  std::optional<Algorithm> algorithm;
  if (!toListenerSlot(env, info[0], engine_->listenerCount(), slot) || !toBackendTable(env, info[1], "backends", backends) ||
      !toOptionalAlgorithm(env, info[2], "algorithm", algorithm))
    return env.Undefined();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  Napi::Promise promise = deferred->Promise();
  if (!started_ || closing_) {
    engine_->applyBackends(slot, std::move(backends), algorithm, nullptr);  // the algorithm is kept
    deferred->Resolve(env.Undefined());
    return promise;
  }
  beginRequest(env);
  engine_->applyBackends(slot, std::move(backends), algorithm, [this, deferred] {
    post([this, deferred](Napi::Env env) {
      deferred->Resolve(env.Undefined());
      endRequest(env);
    });
  });
  return promise;
}

Napi::Value EngineWrap::readStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    Napi::TypeError::New(env, "readStats needs a Float64Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Float64Array into = info[0].As<Napi::Float64Array>();
  size_t needed = engine_->readStats(into.Data(), into.ElementLength());
  return Napi::Number::New(env, static_cast<double>(needed));
}

Napi::Value EngineWrap::readLatency(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    Napi::TypeError::New(env, "readLatency needs a Float64Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Float64Array into = info[0].As<Napi::Float64Array>();
  size_t needed = engine_->readLatency(into.Data(), into.ElementLength());
  return Napi::Number::New(env, static_cast<double>(needed));
}

Napi::Value EngineWrap::backendKeyLimit(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), engine_->backendKeyLimit());
}

Napi::Value EngineWrap::connections(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FlowFilter filter;
  if (!toFlowFilter(env, info[0], filter)) return env.Undefined();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  Napi::Promise promise = deferred->Promise();
  if (!started_ || closing_) {
    deferred->Resolve(Napi::Array::New(env));
    return promise;
  }
  beginRequest(env);
  engine_->snapshot(filter, [this, deferred](std::vector<FlowInfo> flows) {
    auto shared = std::make_shared<std::vector<FlowInfo>>(std::move(flows));
    post([this, deferred, shared](Napi::Env env) {
      Napi::Array out = Napi::Array::New(env, shared->size());
      for (uint32_t i = 0; i < shared->size(); ++i) {
        const FlowInfo& f = (*shared)[i];
        Napi::Object o = Napi::Object::New(env);
        o.Set("id", static_cast<double>(f.id));
        o.Set("listener", f.listener);
        o.Set("worker", f.worker);
        o.Set("state", enumName(f.state));
        o.Set("client", f.client);
        if (f.hasBackend) {
          o.Set("backendKey", f.backendKey);
          o.Set("backend", f.backend);
        }
        o.Set("startedAt", static_cast<double>(f.startWallMs));
        o.Set("bytesToBackend", static_cast<double>(f.bytesToBackend));
        o.Set("bytesToClient", static_cast<double>(f.bytesToClient));
        o.Set("protocol", enumName(f.protocol));
        if (f.protocol == Protocol::Udp) {
          o.Set("datagramsToBackend", static_cast<double>(f.datagramsToBackend));
          o.Set("datagramsToClient", static_cast<double>(f.datagramsToClient));
        }
        out.Set(i, o);
      }
      deferred->Resolve(out);
      endRequest(env);
    });
  });
  return promise;
}

Napi::Value EngineWrap::onEvents(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(env, "onEvents needs a function").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  eventCallback_ = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

void EngineWrap::deliverEvents(Napi::Env env) {
  std::vector<Event> events = engine_->events().take();
  if (events.empty() || eventCallback_.IsEmpty()) return;
  Napi::HandleScope scope(env);
  Napi::Array out = Napi::Array::New(env, events.size());
  for (uint32_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("worker", e.worker);
    if (e.type == EventType::BackendConnects) {
      o.Set("type", "backend-connects");
      o.Set("backendKey", e.backendKey);
      o.Set("failures", e.count);
      o.Set("timeouts", e.timeouts);
      o.Set("successes", e.successes);
      o.Set("trailingFailures", e.trailingFailures);
    } else if (e.type == EventType::FlowClosed) {
      o.Set("type", "flow-closed");
      o.Set("listener", e.listener);
      o.Set("id", static_cast<double>(e.flowId));
      o.Set("client", e.client.toString());
      if (e.hasBackend) o.Set("backendKey", e.backendKey);
      o.Set("reason", enumName(e.reason));
      o.Set("bytesToBackend", static_cast<double>(e.bytesToBackend));
      o.Set("bytesToClient", static_cast<double>(e.bytesToClient));
      o.Set("startedAt", static_cast<double>(e.startWallMs));
      o.Set("durationMs", static_cast<double>(e.durationMs));
      o.Set("protocol", enumName(e.protocol));
      if (e.protocol == Protocol::Udp) {
        o.Set("datagramsToBackend", static_cast<double>(e.datagramsToBackend));
        o.Set("datagramsToClient", static_cast<double>(e.datagramsToClient));
      }
    } else {
      o.Set("type", "listener-error");
      o.Set("listener", e.listener);
      o.Set("errno", e.error);
    }
    out.Set(i, o);
  }
  eventCallback_.Call({out});
  if (env.IsExceptionPending()) {
    // An exception from the control plane's event handler must not vanish in native code.
    Napi::Error error = env.GetAndClearPendingException();
    napi_fatal_exception(env, error.Value());
  }
}

Napi::Value EngineWrap::droppedEvents(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(engine_->events().dropped()));
}

Napi::Value EngineWrap::close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t drainMs = info[0].IsNumber() ? info[0].As<Napi::Number>().Int64Value() : 0;
  if (closing_) {
    // Idempotent: the same promise; a shorter drain still applies.
    engine_->stop(drainMs, nullptr);
    return closePromise_.Value();
  }
  closing_ = true;
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  closePromise_ = Napi::Persistent(deferred->Promise().As<Napi::Object>());
  if (!started_) {
    releaseTsfn();
    deferred->Resolve(env.Undefined());
    return closePromise_.Value();
  }
  beginRequest(env);
  engine_->stop(drainMs, [this, deferred] {
    post([this, deferred](Napi::Env env) {
      engine_->releaseWorkers();  // every worker has left its loop: this returns at once
      if (cleanupHookAdded_) {
        napi_remove_env_cleanup_hook(env, &EngineWrap::cleanupHook, this);
        cleanupHookAdded_ = false;
      }
      deliverEvents(env);
      deferred->Resolve(env.Undefined());
      endRequest(env);
      // The workers are gone: nothing can call the function any more.
      releaseTsfn();
      if (holdsSelf_) {
        holdsSelf_ = false;
        Unref();
      }
    });
  });
  return closePromise_.Value();
}

Napi::Value EngineWrap::addListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ListenerConfig config;
  std::vector<BackendSpec> table;
  if (!toListenerConfig(env, info[0], "listener", config) || !toBackendTable(env, info[1], "table", table))
    return env.Undefined();
  if (!started_ || closing_) {
    Napi::Error::New(env, "engine is not running").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  uint32_t slot = 0;
  SocketError err;
  beginRequest(env);
  bool ok = engine_->addListener(std::move(config), std::move(table), slot, err, [this, deferred] {
    post([this, deferred](Napi::Env env) {
      deferred->Resolve(env.Undefined());
      endRequest(env);
    });
  });
  if (!ok) {
    endRequest(env);
    return startFailure(env, err, 0);
  }
  Napi::Object out = boundAddress(env, engine_->boundAddresses()[slot]);
  out.Set("slot", slot);
  out.Set("ready", deferred->Promise());
  return out;
}

Napi::Value EngineWrap::removeListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "removeListener(slot, drainMs) needs two numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  if (!started_ || closing_) {
    deferred->Resolve(env.Undefined());
    return deferred->Promise();
  }
  beginRequest(env);
  engine_->removeListener(info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Int64Value(),
                          [this, deferred] {
                            post([this, deferred](Napi::Env env) {
                              deferred->Resolve(env.Undefined());
                              endRequest(env);
                            });
                          });
  return deferred->Promise();
}

// setListenerProxy(slot, { proxyProtocol, acceptProxy }): resolves once every worker has them.
Napi::Value EngineWrap::setListenerProxy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsObject()) {
    Napi::TypeError::New(env, "setListenerProxy(slot, settings) needs a number and an object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ProxySettings proxy;
  if (!toProxySettings(env, info[1].As<Napi::Object>(), "settings", proxy)) return env.Undefined();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  if (!started_ || closing_) {
    deferred->Resolve(env.Undefined());
    return deferred->Promise();
  }
  beginRequest(env);
  engine_->setListenerProxy(info[0].As<Napi::Number>().Uint32Value(), std::move(proxy), [this, deferred] {
    post([this, deferred](Napi::Env env) {
      deferred->Resolve(env.Undefined());
      endRequest(env);
    });
  });
  return deferred->Promise();
}

// setListenerPolicy(slot, policy): resolves once every worker has it.
Napi::Value EngineWrap::setListenerPolicy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsObject()) {
    Napi::TypeError::New(env, "setListenerPolicy(slot, policy) needs a number and an object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ListenerPolicy policy;
  if (!toListenerPolicy(env, info[1].As<Napi::Object>(), "policy", policy)) return env.Undefined();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  if (!started_ || closing_) {
    deferred->Resolve(env.Undefined());
    return deferred->Promise();
  }
  beginRequest(env);
  engine_->setListenerPolicy(info[0].As<Napi::Number>().Uint32Value(), std::move(policy), [this, deferred] {
    post([this, deferred](Napi::Env env) {
      deferred->Resolve(env.Undefined());
      endRequest(env);
    });
  });
  return deferred->Promise();
}

Napi::Value EngineWrap::closeFlows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FlowFilter filter;
  if (!toFlowFilter(env, info[0], filter)) return env.Undefined();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  if (!started_ || closing_) {
    deferred->Resolve(Napi::Number::New(env, 0));
    return deferred->Promise();
  }
  beginRequest(env);
  engine_->closeFlows(filter, [this, deferred](uint64_t closed) {
    post([this, deferred, closed](Napi::Env env) {
      deferred->Resolve(Napi::Number::New(env, static_cast<double>(closed)));
      endRequest(env);
    });
  });
  return deferred->Promise();
}

Napi::Value EngineWrap::setFlowLog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().Int64Value() < 0) {
    Napi::TypeError::New(env, "setFlowLog needs a count >= 0").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  engine_->setFlowLog(info[0].As<Napi::Number>().Uint32Value());
  return env.Undefined();
}

}  // namespace lb4
