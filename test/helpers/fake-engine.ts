// A stand-in for the native engine (NativeEngine in lib/engine/native-types.ts), so the control
// plane's logic (drains, slow start, passive health, reload application, event routing, stats)
// can be unit-tested without sockets, worker threads or a built addon. Hand
// `engines.create` to the balancer as BalancerDeps.createEngine.
//
// It keeps what the real engine keeps, as plain data a test can read: the listener slots it
// opened (slots are never reused, removed ones included), the backend table and algorithm each
// slot runs, and every call made to it, with its arguments, in order. It rejects what the
// binding rejects (a table for an existing listener slot, numbers in range, a started engine only once), so
// a control-plane bug that the addon would throw on fails here too. The test controls what the
// real engine would observe: where a listener binds or why it cannot, the counters readStats()
// reports, the open flows, the dropped-event count, and the events themselves (`emit`).

import { isIP } from 'node:net';
import {
  algorithmNames,
  backendStateNames,
  counterNames,
  histogramSlots,
  protocolNames,
  type CounterName,
  type NativeAffinityUpdate,
  type NativeBackend,
  type NativeBoundAddress,
  type NativeConnectionFilter,
  type NativeEngine,
  type NativeEngineOptions,
  type NativeEvent,
  type NativeFlow,
  type NativeProxySettings,
  type NativeListenerPolicy,
  type NativeListenerOptions,
  type NativeSessionChange,
  type NativeStartFailure,
} from '../../lib/engine/native-types.js';

/** One call to the engine, with its arguments (copied as they were at the call). */
export type EngineCall =
  | { method: 'start'; tables: NativeBackend[][] }
  | {
      method: 'applyBackends';
      slot: number;
      table: NativeBackend[];
      algorithm: number | undefined;
      /** Whether the table or algorithm differs from what the slot ran before this call. */
      changed: boolean;
    }
  | { method: 'addListener'; listener: NativeListenerOptions; table: NativeBackend[]; slot: number | null }
  | { method: 'removeListener'; slot: number; drainMs: number }
  | { method: 'setListenerProxy'; slot: number; settings: NativeProxySettings }
  | { method: 'setListenerPolicy'; slot: number; policy: NativeListenerPolicy }
  | { method: 'closeFlows'; filter: NativeConnectionFilter; closed: number }
  | { method: 'connections'; filter: NativeConnectionFilter | undefined }
  | { method: 'setFlowLog'; every: number }
  | { method: 'close'; drainMs: number };

export type EngineMethod = EngineCall['method'];

/** Why a listener cannot open, as the engine reports it (the listener index is filled in). */
export type BindFailure = Omit<NativeStartFailure, 'listener'>;

/** Where a listener binds, or why it cannot; undefined takes the default (see FakeEngines.bind). */
export type BindRule = (listener: NativeListenerOptions, slot: number) => NativeBoundAddress | BindFailure | undefined;

const errnoNames: Record<string, number> = { EADDRINUSE: 98, EADDRNOTAVAIL: 99, EACCES: 13, EAFNOSUPPORT: 97 };

/** A bind failure by errno name, e.g. `failure('EADDRINUSE')`. */
export function failure(code: keyof typeof errnoNames, syscall = 'bind'): BindFailure {
  return { errno: errnoNames[code], syscall };
}

function isFailure(r: NativeBoundAddress | BindFailure): r is BindFailure {
  return 'errno' in r;
}

function checkInteger(value: unknown, where: string, min: number, max: number): void {
  if (typeof value !== 'number') throw new TypeError(`${where} must be a number`);
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${where} must be an integer from ${min} to ${max}`);
}

function checkAddress(o: { ip: unknown; port: unknown }, where: string): void {
  if (typeof o.ip !== 'string') throw new TypeError(`${where}.ip must be a string`);
  checkInteger(o.port, `${where}.port`, 0, 65535);
  if (isIP(o.ip) === 0) throw new TypeError(`${where}.ip must be a numeric IPv4 or IPv6 address`);
}

// The binding's checks of a backend table (native/binding/options.cc, toBackendTable).
function checkTable(table: unknown, where: string): NativeBackend[] {
  if (!Array.isArray(table)) throw new TypeError(`${where} must be an array`);
  table.forEach((b: NativeBackend, i) => {
    const at = `${where}[${i}]`;
    if (typeof b !== 'object' || b === null) throw new TypeError(`${at} must be an object`);
    checkAddress(b, at);
    checkInteger(b.key, `${at}.key`, 0, 1 << 24);
    checkInteger(b.weight, `${at}.weight`, 0, 1_000_000);
    checkInteger(b.state, `${at}.state`, 0, backendStateNames.length - 1);
    if (typeof b.id !== 'string') throw new TypeError(`${at}.id must be a string`);
  });
  return structuredClone(table);
}

function checkListener(l: NativeListenerOptions, where: string): NativeListenerOptions {
  if (typeof l !== 'object' || l === null) throw new TypeError(`${where} must be an object`);
  checkAddress(l, where);
  checkInteger(l.backlog, `${where}.backlog`, 1, 65535);
  checkInteger(l.algorithm, `${where}.algorithm`, 0, algorithmNames.length - 1);
  checkInteger(l.protocol, `${where}.protocol`, 0, protocolNames.length - 1);
  return structuredClone(l);
}

function matches(f: NativeFlow, filter: NativeConnectionFilter | undefined): boolean {
  return (filter?.listener === undefined || f.listener === filter.listener) && (filter?.backendKey === undefined || f.backendKey === filter.backendKey);
}

/** Makes fake engines and decides, for all of them, where listeners bind. */
export class FakeEngines {
  /** Every engine made, in order (a host without IPv6 makes a second one at start). */
  readonly made: FakeEngine[] = [];
  /**
   * Where listeners bind. Default: the listener's own address, a port from 40000 up for port 0,
   * and IPv6 for a dual-stack listener. Set it to make a listener fail to open.
   */
  bind: BindRule = () => undefined;
  #nextPort = 40000;

  /** The BalancerDeps.createEngine to give the balancer. */
  readonly create = (options: NativeEngineOptions): NativeEngine => {
    const engine = new FakeEngine(options, (l, slot) => this.#bind(l, slot));
    this.made.push(engine);
    return engine;
  };

  /** The engine made last: the one a started balancer runs. */
  get engine(): FakeEngine {
    const e = this.made.at(-1);
    if (!e) throw new Error('no fake engine has been made yet');
    return e;
  }

  #bind(l: NativeListenerOptions, slot: number): NativeBoundAddress | BindFailure {
    const rule = this.bind(l, slot);
    if (rule) return rule;
    return { ip: l.ip, port: l.port === 0 ? this.#nextPort++ : l.port, family: l.dualStack || isIP(l.ip) === 6 ? 'IPv6' : 'IPv4' };
  }
}

export class FakeEngine implements NativeEngine {
  readonly options: NativeEngineOptions;
  /** Every call, in order. */
  readonly calls: EngineCall[] = [];
  /** Each listener slot ever opened, in slot order (removed ones stay: slots are never reused). */
  readonly listeners: NativeListenerOptions[] = [];
  /** The backend table each slot runs now. */
  readonly tables: NativeBackend[][] = [];
  /** The algorithm each slot runs now. */
  readonly algorithms: number[] = [];
  /** Slots removed with removeListener(). */
  readonly removed = new Set<number>();
  /** Open flows, as connections() reports them and closeFlows() closes them. */
  flows: NativeFlow[] = [];
  /** What droppedEvents() reports. */
  dropped = 0;
  /** The flow log's sampling, as setFlowLog() left it. */
  flowLog = 0;
  /** Session replication, as setSessionReplication() left it. */
  replicating = false;
  /** What the next drainSessionChanges() returns (a test pushes here, as the workers would). */
  sessionChanges: NativeSessionChange[] = [];
  droppedSessionChanges = 0;
  /** How often resendSessions() was called. */
  resends = 0;
  /** The hints applyAffinity() installed: "slot clientIp clientPort localIp" -> backend id. */
  readonly affinity = new Map<string, string>();
  started = false;
  closed = false;
  readonly #bind: (l: NativeListenerOptions, slot: number) => NativeBoundAddress | BindFailure;
  readonly #listenerCounters = new Map<number, Partial<Record<CounterName, number>>>();
  readonly #backendCounters = new Map<number, Partial<Record<CounterName, number>>>();
  #keyLimit = 0;
  #onEvents: ((events: NativeEvent[]) => void) | null = null;
  #closing: Promise<void> | null = null;
  #applyGate: Promise<void> | null = null;

  constructor(options: NativeEngineOptions, bind: (l: NativeListenerOptions, slot: number) => NativeBoundAddress | BindFailure) {
    if (!Array.isArray(options.listeners) || options.listeners.length === 0 || options.listeners.length > 1024) {
      throw new RangeError('options.listeners must hold 1 to 1024 entries');
    }
    this.options = structuredClone(options);
    options.listeners.forEach((l, i) => this.listeners.push(checkListener(l, `options.listeners[${i}]`)));
    for (const l of this.listeners) {
      this.tables.push([]);
      this.algorithms.push(l.algorithm);
    }
    this.#bind = bind;
  }

  // --- NativeEngine ---------------------------------------------------------------------------

  start(tables: NativeBackend[][]): NativeBoundAddress[] | NativeStartFailure {
    if (this.started || this.closed) throw new Error(this.started ? 'engine already started' : 'engine is closed');
    const checked = this.#checkTables(tables);
    this.calls.push({ method: 'start', tables: structuredClone(checked) });
    const bound: NativeBoundAddress[] = [];
    for (const [slot, l] of this.listeners.entries()) {
      const result = this.#bind(l, slot);
      // Like the engine, a listener that cannot open leaves nothing open and nothing started.
      if (isFailure(result)) return { ...result, listener: slot };
      bound.push(result);
    }
    checked.forEach((table, slot) => this.#run(slot, table));
    this.started = true;
    return bound;
  }

  applyBackends(slot: number, backends: NativeBackend[], algorithm?: number): Promise<void> {
    checkInteger(slot, 'slot', 0, this.listeners.length - 1);
    const checked = checkTable(backends, 'backends');
    if (algorithm !== undefined) checkInteger(algorithm, 'algorithm', 0, algorithmNames.length - 1);
    const changed = (algorithm !== undefined && algorithm !== this.algorithms[slot]) || JSON.stringify(checked) !== JSON.stringify(this.tables[slot]);
    this.calls.push({ method: 'applyBackends', slot, table: structuredClone(checked), algorithm, changed });
    this.#run(slot, checked, algorithm);
    // Not running: the engine records the tables and has nothing to wait for.
    if (!this.started || this.closed) return Promise.resolve();
    const gate = this.#applyGate;
    return gate ? gate : new Promise((resolve) => setImmediate(resolve));
  }

  readStats(into: Float64Array): number {
    if (!(into instanceof Float64Array)) throw new TypeError('readStats needs a Float64Array');
    const width = counterNames.length;
    const needed = (this.listeners.length + this.#keyLimit) * width;
    if (into.length < needed) return needed;
    const write = (offset: number, values: Partial<Record<CounterName, number>> | undefined) => {
      counterNames.forEach((name, i) => (into[offset + i] = values?.[name] ?? 0));
    };
    this.listeners.forEach((_, slot) => write(slot * width, this.#listenerCounters.get(slot)));
    for (let key = 0; key < this.#keyLimit; key++) write((this.listeners.length + key) * width, this.#backendCounters.get(key));
    return needed;
  }

  // The fake engine proxies nothing, so every backend's latency histograms stay empty.
  readLatency(into: Float64Array): number {
    if (!(into instanceof Float64Array)) throw new TypeError('readLatency needs a Float64Array');
    const needed = this.#keyLimit * histogramSlots;
    if (into.length >= needed) into.fill(0, 0, needed);
    return needed;
  }

  backendKeyLimit(): number {
    return this.#keyLimit;
  }

  connections(filter?: NativeConnectionFilter): Promise<NativeFlow[]> {
    this.calls.push({ method: 'connections', filter: filter && { ...filter } });
    if (!this.started || this.closed) return Promise.resolve([]);
    const found = this.flows.filter((f) => matches(f, filter));
    return Promise.resolve(structuredClone(filter?.limit === undefined ? found : found.slice(0, filter.limit)));
  }

  onEvents(callback: (events: NativeEvent[]) => void): void {
    if (typeof callback !== 'function') throw new TypeError('onEvents needs a function');
    this.#onEvents = callback;
  }

  droppedEvents(): number {
    return this.dropped;
  }

  close(drainMs: number): Promise<void> {
    this.calls.push({ method: 'close', drainMs });
    if (this.#closing) return this.#closing;
    this.closed = true;
    this.#closing = new Promise((resolve) => setImmediate(resolve));
    return this.#closing;
  }

  addListener(listener: NativeListenerOptions, table: NativeBackend[]): (NativeBoundAddress & { slot: number; ready: Promise<void> }) | NativeStartFailure {
    const l = checkListener(listener, 'listener');
    const checked = checkTable(table, 'table');
    if (!this.started || this.closed) throw new Error('engine is not running');
    const slot = this.listeners.length;
    const result = this.#bind(l, slot);
    this.calls.push({ method: 'addListener', listener: l, table: structuredClone(checked), slot: isFailure(result) ? null : slot });
    // The binding reports a failed addListener as listener 0 of its own list of one.
    if (isFailure(result)) return { ...result, listener: 0 };
    this.listeners.push(l);
    this.tables.push([]);
    this.algorithms.push(l.algorithm);
    this.#run(slot, checked);
    return { ...result, slot, ready: new Promise((resolve) => setImmediate(resolve)) };
  }

  removeListener(slot: number, drainMs: number): Promise<void> {
    if (typeof slot !== 'number' || typeof drainMs !== 'number') throw new TypeError('removeListener(slot, drainMs) needs two numbers');
    this.calls.push({ method: 'removeListener', slot, drainMs });
    if (!this.started || this.closed) return Promise.resolve();
    this.removed.add(slot);
    return new Promise((resolve) => setImmediate(resolve));
  }

  setListenerProxy(slot: number, settings: NativeProxySettings): Promise<void> {
    this.calls.push({ method: 'setListenerProxy', slot, settings: { ...settings, acceptProxy: [...settings.acceptProxy] } });
    return new Promise((resolve) => setImmediate(resolve));
  }

  setListenerPolicy(slot: number, policy: NativeListenerPolicy): Promise<void> {
    this.calls.push({ method: 'setListenerPolicy', slot, policy: { ...policy, allow: [...policy.allow], deny: [...policy.deny] } });
    return new Promise((resolve) => setImmediate(resolve));
  }

  closeFlows(filter: NativeConnectionFilter): Promise<number> {
    const closing = this.started && !this.closed ? this.flows.filter((f) => matches(f, filter)) : [];
    this.flows = this.flows.filter((f) => !closing.includes(f));
    this.calls.push({ method: 'closeFlows', filter: { ...filter }, closed: closing.length });
    return Promise.resolve(closing.length);
  }

  setFlowLog(every: number): void {
    if (typeof every !== 'number' || every < 0) throw new TypeError('setFlowLog needs a count >= 0');
    this.calls.push({ method: 'setFlowLog', every });
    this.flowLog = every;
  }

  setSessionReplication(on: boolean): void {
    if (typeof on !== 'boolean') throw new TypeError('setSessionReplication needs a boolean');
    this.replicating = on;
  }

  resendSessions(): void {
    this.resends++;
  }

  drainSessionChanges(): { changes: NativeSessionChange[]; dropped: number } {
    const changes = this.sessionChanges;
    this.sessionChanges = [];
    return { changes, dropped: this.droppedSessionChanges };
  }

  applyAffinity(updates: NativeAffinityUpdate[]): { set: number; size: number } {
    if (!Array.isArray(updates)) throw new TypeError('applyAffinity needs an array of updates');
    for (const u of updates) {
      if (u.listener < 0 || u.listener >= this.listeners.length) throw new TypeError('applyAffinity: no such listener slot');
    }
    let set = 0;
    for (const u of updates) {
      const k = `${u.listener} ${u.clientIp} ${u.clientPort} ${u.localIp ?? ''}`;
      this.affinity.delete(k);
      if (u.set) {
        this.affinity.set(k, u.backendId);
        set++;
      }
    }
    return { set, size: this.affinity.size };
  }

  // --- for the test ---------------------------------------------------------------------------

  /** Delivers a batch of events, as the engine does on the JS thread. */
  emit(...events: NativeEvent[]): void {
    if (!this.#onEvents) throw new Error('nobody called onEvents(): the events would be lost');
    this.#onEvents(events);
  }

  /** Sets a listener slot's counters, as readStats() reports them (unset ones are 0). */
  setListenerCounters(slot: number, values: Partial<Record<CounterName, number>>): void {
    this.#listenerCounters.set(slot, { ...this.#listenerCounters.get(slot), ...values });
  }

  /** Sets a backend key's counters, as readStats() reports them (unset ones are 0). */
  setBackendCounters(key: number, values: Partial<Record<CounterName, number>>): void {
    this.#backendCounters.set(key, { ...this.#backendCounters.get(key), ...values });
    this.#keyLimit = Math.max(this.#keyLimit, key + 1);
  }

  /**
   * Holds back every applyBackends() promise from now on until `release()` is called, as when
   * the workers have not all taken the new tables yet.
   */
  holdApplies(): () => void {
    let release = () => {};
    this.#applyGate = new Promise((resolve) => (release = resolve));
    return () => {
      this.#applyGate = null;
      release();
    };
  }

  /** The calls to one method, in order. */
  callsOf<M extends EngineMethod>(method: M): Extract<EngineCall, { method: M }>[] {
    return this.calls.filter((c): c is Extract<EngineCall, { method: M }> => c.method === method);
  }

  /** Forgets the calls so far (what the engine runs stays). */
  clearCalls(): void {
    this.calls.length = 0;
  }

  /** A backend as the engine runs it now: its slot and table entry, or undefined if no table has it. */
  entry(key: number): (NativeBackend & { slot: number }) | undefined {
    for (const [slot, table] of this.tables.entries()) {
      const b = table.find((e) => e.key === key);
      if (b) return { ...b, slot };
    }
    return undefined;
  }

  // The binding's check that a set of tables has one table per listener slot ever opened.
  #checkTables(tables: NativeBackend[][]): NativeBackend[][] {
    if (!Array.isArray(tables)) throw new TypeError('tables must be an array');
    if (tables.length !== this.listeners.length) throw new RangeError('tables must hold one table per listener');
    return tables.map((table, slot) => checkTable(table, `tables[${slot}]`));
  }

  #run(slot: number, table: NativeBackend[], algorithm?: number): void {
    this.tables[slot] = table;
    if (algorithm !== undefined) this.algorithms[slot] = algorithm;
    for (const b of table) this.#keyLimit = Math.max(this.#keyLimit, b.key + 1);
  }
}
