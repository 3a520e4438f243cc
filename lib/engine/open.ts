// Starting the engine and opening listeners on it: a validated config becomes the engine's plain
// options, a listener that cannot open becomes a Node-style error that names it, and a host
// without IPv6 gets its "every interface" listeners on every IPv4 interface instead.

import { nativeListenerPolicy } from '../config/listener-policy.js';
import { optionDefault, optionTable, type OptionSpec } from '../config/options.js';
import type { BalancerConfig, ListenerAddress, ListenerConfig } from '../types.js';
import {
  NativeProtocol,
  NativeAlgorithm,
  NativeProxyVersion,
  type NativeBackend,
  type NativeEngine,
  type NativeEngineOptions,
  type NativeEngineScalar,
  type NativeListenerOptions,
  type NativeProxySettings,
} from './native-types.js';
import { systemError } from './system-errors.js';

const EAFNOSUPPORT = 97;

// Every engine option comes from the option table: from the validated config when the option is
// a setting, or the table's fixed default. The type check below makes sure the table names every
// scalar option the engine declares.
const engineOptions = (Object.entries(optionTable) as Array<[keyof typeof optionTable, OptionSpec]>).flatMap(([name, spec]) =>
  spec.native === undefined || spec.native === 'backlog' ? [] : [{ name, native: spec.native, config: spec.config, choices: spec.choices }],
);
type TableNative = Extract<(typeof optionTable)[keyof typeof optionTable], { native: string }>['native'];
type Assert<T extends true> = T;
type EngineOptionsCovered = Assert<[NativeEngineScalar] extends [TableNative] ? true : false>;
const listenBacklog = optionDefault('backlog') as number;

/** A listener as the engine takes it. */
export function nativeListener(l: ListenerConfig, dualStackFallback = false): NativeListenerOptions {
  return {
    name: l.name,
    protocol: NativeProtocol[l.protocol],
    ip: l.anyInterface && dualStackFallback ? '0.0.0.0' : l.ip,
    port: l.port,
    dualStack: l.anyInterface && !dualStackFallback,
    freeBind: l.freeBind,
    backlog: listenBacklog,
    algorithm: NativeAlgorithm[l.algorithm],
    ...(l.forward === 'nat' ? { nat: { snat: l.snat } } : {}),
    ...nativeProxySettings(l),
    policy: nativeListenerPolicy(l.policy),
  };
}

/** A listener's PROXY protocol settings as the engine takes them (at open, and on reload). */
export function nativeProxySettings(l: ListenerConfig): NativeProxySettings {
  const settings: NativeProxySettings = { proxyProtocol: NativeProxyVersion[l.proxyProtocol], acceptProxy: [...l.acceptProxy] };
  // Pools go by name, in routes as in backend tables (see native/core/sni/sni_routes.h).
  if (l.sni) {
    settings.sniRoutes = l.sni.flatMap((r) => r.names.map((name) => ({ name, pool: r.pool })));
    if (l.defaultPool !== null) settings.sniDefaultPool = l.defaultPool;
  }
  return settings;
}

/** The engine's options for a config. */
export function nativeOptions(config: BalancerConfig, dualStackFallback: boolean): NativeEngineOptions {
  const scalars = {} as Record<NativeEngineScalar, number>;
  const settings = config as unknown as Readonly<Record<string, number | string>>;
  for (const o of engineOptions) {
    const value: number | string = o.config === undefined ? (optionDefault(o.name) as number | string) : settings[o.config];
    // A choice crosses as its number: its place in the choices, which are the engine's own list
    // (e.g. hashKeyNames), checked against the addon when it loads.
    scalars[o.native] = typeof value === 'string' ? o.choices!.indexOf(value) : value;
  }
  return { ...scalars, listeners: config.listeners.map((l) => nativeListener(l, dualStackFallback)) };
}

/** The error for a listener the engine could not open, e.g. `cannot listen on web: bind EADDRINUSE ...`. */
export function listenError(listener: ListenerConfig, errno: number, syscall: string): Error {
  const address = listener.anyInterface ? '::' : listener.ip;
  const err = systemError(errno, syscall, { address, port: listener.port });
  err.message = `cannot listen on ${listener.name}: ${err.message}`;
  return err;
}

/** A started engine and where its listeners listen, in config order. */
export interface OpenedEngine {
  readonly engine: NativeEngine;
  readonly addresses: ListenerAddress[];
  /** The host has no IPv6: "every interface" listeners listen on every IPv4 interface. */
  readonly dualStackFallback: boolean;
}

/**
 * Creates an engine for `config` and starts it with each listener's first table. Throws the
 * listen error of the first listener that cannot open, with nothing left running.
 */
export function openEngine(config: BalancerConfig, tables: NativeBackend[][], make: (options: NativeEngineOptions) => NativeEngine): OpenedEngine {
  const open = (dualStackFallback: boolean) => {
    const engine = make(nativeOptions(config, dualStackFallback));
    return { engine, result: engine.start(tables) };
  };
  let dualStackFallback = false;
  let { engine, result } = open(false);
  if (!Array.isArray(result) && result.errno === EAFNOSUPPORT) {
    dualStackFallback = true; // no IPv6 on this host: "every interface" means every IPv4 one
    void engine.close(0);
    ({ engine, result } = open(true));
  }
  if (!Array.isArray(result)) {
    void engine.close(0);
    throw listenError(config.listeners[result.listener], result.errno, result.syscall);
  }
  const addresses = result.map((bound, i) => Object.freeze({ name: config.listeners[i].name, address: bound.ip, port: bound.port, family: bound.family }));
  return { engine, addresses, dualStackFallback };
}
