// Everything the native addon exports, declared once (zeromq.js' habit: one file is the typed
// native surface). Only types and the enum numbering live here, so any part of lib/ may import
// this file without loading the addon; lib/engine/addon.ts loads it, lazily.

// The data plane's enumerations and option ranges (native/core/enums.h and engine_options.h are
// the source). A value crosses the boundary as its index in its list; the addon exports every
// list and loading fails if these declarations and the addon ever disagree.

/** Balancing algorithms, in the engine's order. */
export const algorithmNames = ['roundrobin', 'leastconn', 'maglev'] as const;
/** What a hashing algorithm's flow hash is made of, in the engine's order. */
export const hashKeyNames = ['address', 'address-port'] as const;
/** Backend states, in the engine's order. */
export const backendStateNames = ['up', 'down', 'draining', 'maintenance'] as const;
/** Why a flow ended, in the engine's order. */
export const closeReasonNames = [
  'done', 'client-reset', 'backend-reset', 'idle-timeout', 'no-backend', 'drained', 'error', 'evicted', 'responses', 'backend-gone', 'refused',
  'proxy-header', 'policy', 'sni',
] as const;
/** Listener protocols, in the engine's order. */
export const protocolNames = ['tcp', 'udp'] as const;
/** The PROXY protocol header a listener sends its backends, in the engine's order. */
export const proxyVersionNames = ['none', 'v1', 'v2'] as const;
/** Which datagrams of a UDP session carry a PROXY protocol header, in the engine's order (0: first). */
export const udpProxyHeaderModes = ['first', 'every'] as const;
/** The engine options whose ranges the addon exports as `optionLimits`, in its order. */
export const optionLimitNames = [
  'workers', 'connectTimeoutMs', 'idleTimeoutMs', 'retries', 'pipeSize', 'maxIdlePipes', 'backlog',
  'udpIdleTimeoutMs', 'udpResponses', 'udpMaxSessions', 'udpMaxDatagram', 'hashKey', 'proxyHeaderTimeoutMs', 'udpProxyHeader', 'sniTimeoutMs',
] as const satisfies readonly NativeOptionName[];

/** Each name of `names` mapped to its number (its index). */
function numbering<const T extends readonly string[]>(names: T): { readonly [K in T[number]]: number } {
  return Object.freeze(Object.fromEntries(names.map((n, i) => [n, i]))) as { readonly [K in T[number]]: number };
}

/** Balancing algorithms as the engine numbers them. */
export const NativeAlgorithm = numbering(algorithmNames);
/** Hash keys as the engine numbers them. */
export const NativeHashKey = numbering(hashKeyNames);
/** Backend states as the engine numbers them. */
export const NativeBackendState = numbering(backendStateNames);
/** Listener protocols as the engine numbers them. */
export const NativeProtocol = numbering(protocolNames);
/** PROXY protocol versions as the engine numbers them. */
export const NativeProxyVersion = numbering(proxyVersionNames);

export interface NativeListenerOptions extends NativeProxySettings {
  name: string;
  /** Index into `protocolNames`. */
  protocol: number;
  ip: string;
  port: number;
  dualStack: boolean;
  /** Bind with IP_FREEBIND / IPV6_FREEBIND: an address this host may not have yet (a virtual IP). */
  freeBind: boolean;
  backlog: number;
  algorithm: number;
  /**
   * Set for a `forward: nat` listener. The addon ignores it (it opens the listener only to hold
   * the port); lib/nat/split-engine.ts reads it to send the listener's tables to the NAT driver.
   */
  nat?: { snat: 'none' | 'masquerade' };
  /** Access lists and limits; absent: none. */
  policy?: NativeListenerPolicy;
}

/** A TCP listener's PROXY protocol settings. */
export interface NativeProxySettings {
  /** The PROXY protocol header sent to backends first: an index into `proxyVersionNames`. */
  proxyProtocol: number;
  /** Networks ("10.0.0.0/8", "::1/128") trusted to send a PROXY protocol header; empty: none expected. */
  acceptProxy: string[];
  /** Routes by TLS server name to pools (by name); absent: no SNI routing. */
  sniRoutes?: Array<{ name: string; pool: string }>;
  /** The pool for clients no route matches; absent: close them. */
  sniDefaultPool?: string;
}

/** A listener's access lists and limits (native/core/policy/listener_policy.h); 0: no limit. */
export interface NativeListenerPolicy {
  allow: string[];
  deny: string[];
  maxConnections: number;
  maxConnectionsPerSource: number;
  connectionRatePerSource: number;
  queueSize: number;
  queueTimeoutMs: number;
}

export interface NativeEngineOptions {
  workers: number;
  listeners: NativeListenerOptions[];
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  retries: number;
  /** Pipe capacity in bytes for splice; 0 keeps the kernel default (64 KiB). */
  pipeSize: number;
  maxIdlePipes: number;
  /** A UDP session with no datagram either way for this long closes. */
  udpIdleTimeoutMs: number;
  /** Replies each client datagram expects; when all are back the session ends. 0: unlimited. */
  udpResponses: number;
  /** UDP sessions per listener; past it the oldest is evicted. */
  udpMaxSessions: number;
  /** The largest datagram forwarded, in bytes; larger ones are dropped and counted. */
  udpMaxDatagram: number;
  /** What maglev's flow hash is made of: an index into `hashKeyNames`. */
  hashKey: number;
  /** A client of a listener with `acceptProxy` must have sent its whole header within this time. */
  proxyHeaderTimeoutMs: number;
  /** Which datagrams of a UDP session carry the PROXY protocol v2 header: an index into `udpProxyHeaderModes`. */
  udpProxyHeader: number;
  /** A client of a listener with SNI routes must have sent its whole ClientHello within this time. */
  sniTimeoutMs: number;
}

export interface NativeBackend {
  /** The process-local counter slot: indexes readStats and events. */
  key: number;
  /**
   * The backend's stable identity, the same on every node for the same config:
   * `<listener name>/<backend id>` (the configured id, or the address as written).
   */
  id: string;
  ip: string;
  port: number;
  weight: number;
  state: number;
  /** Flows it takes at once from its listener, over every worker; 0 or absent: no limit. */
  maxConnections?: number;
  /** This backend's own PROXY protocol version (an index into `proxyVersionNames`); absent: the listener's. */
  proxy?: number;
  /** Its pool on a listener with SNI routes; absent: none. */
  pool?: string;
}

export interface NativeBoundAddress {
  ip: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export interface NativeStartFailure {
  errno: number;
  syscall: string;
  listener: number;
}

export interface NativeFlow {
  id: number;
  /** `tcp`: a flow; `udp`: a session. */
  protocol: NativeProtocolName;
  listener: number;
  worker: number;
  state: 'awaiting-header' | 'queued' | 'awaiting-hello' | 'connecting' | 'established';
  client: string;
  backendKey?: number;
  backend?: string;
  startedAt: number;
  bytesToBackend: number;
  bytesToClient: number;
  /** UDP sessions only. */
  datagramsToBackend?: number;
  datagramsToClient?: number;
  /** `nat`: a conntrack entry of a NAT listener (lib/nat/), not a flow of the engine. */
  forward?: 'nat';
}

/** A listener's transport. */
export type NativeProtocolName = (typeof protocolNames)[number];

/** Why a flow ended, as the engine reports it in flow-closed events. */
export type NativeCloseReason = (typeof closeReasonNames)[number];

export type NativeEvent =
  | {
      type: 'backend-connects';
      worker: number;
      backendKey: number;
      failures: number;
      timeouts: number;
      successes: number;
      /** Failures after the last success in this report: consecutive failures so far. */
      trailingFailures: number;
    }
  | { type: 'listener-error'; worker: number; listener: number; errno: number }
  | {
      type: 'flow-closed';
      worker: number;
      listener: number;
      id: number;
      client: string;
      backendKey?: number;
      reason: NativeCloseReason;
      bytesToBackend: number;
      bytesToClient: number;
      startedAt: number;
      durationMs: number;
      protocol: NativeProtocolName;
      /** UDP sessions only. */
      datagramsToBackend?: number;
      datagramsToClient?: number;
    };

/** A UDP session that started (or is still running) or ended, reported for the HA peer. */
export interface NativeSessionChange {
  /** false: the session ended. */
  opened: boolean;
  listener: number;
  backendKey: number;
  clientIp: string;
  clientPort: number;
  /** The address the client sent to, on a wildcard listener. */
  localIp?: string;
}

/** One of the HA peer's sessions, as an affinity hint for new sessions of the same client. */
export interface NativeAffinityUpdate {
  /** false: the peer's session ended; forget the hint. */
  set: boolean;
  listener: number;
  clientIp: string;
  clientPort: number;
  localIp?: string;
  /** The backend's stable id, `<listener name>/<backend id>` (NativeBackend.id). */
  backendId: string;
}

export interface NativeConnectionFilter {
  listener?: number;
  backendKey?: number;
  limit?: number;
}

/** The engine object the addon exports. Every method runs on the JS thread. */
export interface NativeEngine {
  /** Opens the listeners on every worker and starts the workers. */
  start(tables: NativeBackend[][]): NativeBoundAddress[] | NativeStartFailure;
  /**
   * Replaces one listener slot's backend table, its algorithm changed first when given (an index
   * into `algorithmNames`); the other slots keep theirs. Resolves once every worker runs it.
   */
  applyBackends(slot: number, backends: NativeBackend[], algorithm?: number): Promise<void>;
  /** Sums counters into `into` (listeners, then backend keys); returns the length needed. */
  readStats(into: Float64Array): number;
  /**
   * Sums every backend key's latency histograms into `into`, `histogramSlots` values per key in
   * key order (see `histogramShapes`); returns the length needed.
   */
  readLatency(into: Float64Array): number;
  /** Backend keys with counters are 0 .. backendKeyLimit() - 1. */
  backendKeyLimit(): number;
  connections(filter?: NativeConnectionFilter): Promise<NativeFlow[]>;
  onEvents(callback: (events: NativeEvent[]) => void): void;
  droppedEvents(): number;
  /** Stops accepting, drains up to `drainMs`, joins the workers. Idempotent. */
  close(drainMs: number): Promise<void>;
  /**
   * Opens one more listener while running, in a new slot (slots are never reused), with its
   * first backend table. `ready` resolves once every worker accepts on it.
   */
  addListener(listener: NativeListenerOptions, table: NativeBackend[]): (NativeBoundAddress & { slot: number; ready: Promise<void> }) | NativeStartFailure;
  /** Stops accepting on a listener at once; its flows may run `drainMs` more, then are closed. */
  removeListener(slot: number, drainMs: number): Promise<void>;
  /** Replaces a listener's PROXY protocol settings; flows accepted from then on use them. Resolves once every worker has them. */
  setListenerProxy(slot: number, settings: NativeProxySettings): Promise<void>;
  /** Replaces a listener's access lists and limits; flows admitted from then on are judged by them. Resolves once every worker has them. */
  setListenerPolicy(slot: number, policy: NativeListenerPolicy): Promise<void>;
  /** Closes matching flows now, with a reset; resolves with how many. */
  closeFlows(filter: NativeConnectionFilter): Promise<number>;
  /** Reports one closed flow in `every` as a flow-closed event; 0 turns the flow log off. */
  setFlowLog(every: number): void;
  /** Starts (true) or stops queueing UDP session changes for drainSessionChanges. */
  setSessionReplication(on: boolean): void;
  /** Every worker reports each live UDP session again (the HA peer appeared and knows none). */
  resendSessions(): void;
  /** The session changes queued since the last call, oldest first; `dropped`: lost to a full queue, ever. */
  drainSessionChanges(): { changes: NativeSessionChange[]; dropped: number };
  /**
   * Installs the HA peer's sessions as hints, consulted when a new session opens. Throws
   * TypeError on a malformed update (then none of the batch applies). `set`: entries set;
   * `size`: hints held now.
   */
  applyAffinity(updates: NativeAffinityUpdate[]): { set: number; size: number };
}

/**
 * The data plane's counter names (native/core/counters.h is the source; the addon exports the
 * list and loading fails if this declaration and the addon ever disagree).
 */
export const counterNames = [
  'flows_active', 'flows_total', 'bytes_to_backend', 'bytes_to_client', 'spliced_bytes', 'copied_bytes',
  'connect_failures', 'connect_timeouts', 'retries', 'no_backend', 'resets', 'idle_timeouts', 'drain_closed',
  'accept_shed', 'accept_errors', 'connect_no_descriptors', 'datagrams_to_backend', 'datagrams_to_client',
  'sessions_active', 'sessions_total', 'sessions_evicted', 'sessions_expired', 'dropped_no_backend', 'dropped_truncated',
  'dropped_send_error', 'dropped_cap', 'dropped_late', 'sessions_replicated', 'proxy_headers_accepted', 'proxy_header_untrusted',
  'proxy_header_malformed', 'proxy_header_oversized', 'proxy_header_timeouts',
  // Traffic policy: refusals by reason, and the queue.
  'denied', 'listener_limit', 'backend_limit', 'queue_full', 'queue_timeout', 'source_limit', 'source_rate', 'flows_queued',
  // UDP: datagrams the kernel dropped on a full listener socket (SO_RXQ_OVFL).
  'dropped_overflow',
  // SNI routing: routed, defaulted, unrouted, and hellos refused by reason.
  'sni_routed', 'sni_defaulted', 'sni_unrouted', 'sni_hello_malformed', 'sni_hello_oversized', 'sni_hello_timeouts',
] as const;
export type CounterName = (typeof counterNames)[number];

export interface CounterInfo {
  name: CounterName;
  kind: 'gauge' | 'counter';
  help: string;
}

/**
 * The data plane's latency histograms (native/core/latency.h is the source; loading the addon
 * fails if it exports other names, protocols, help or bounds). Bounds are in seconds. In a block, a
 * histogram takes one slot per bound, one for +Inf, then its sum in microseconds.
 */
export const histogramShapes = [
  { name: 'connect_duration', protocol: 'tcp', help: 'Time from connect() to the backend connection being established', bounds: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] },
  { name: 'flow_duration', protocol: 'tcp', help: 'Time from accepting a TCP flow to its close, for flows that reached the backend', bounds: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600] },
  { name: 'session_duration', protocol: 'udp', help: "Time from a UDP session's first datagram to its close", bounds: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600] },
] as const satisfies ReadonlyArray<{ name: string; protocol: NativeProtocolName; help: string; bounds: readonly number[] }>;
export type HistogramName = (typeof histogramShapes)[number]['name'];
/** Values per backend key in readLatency's output. */
export const histogramSlots = histogramShapes.reduce((n, h) => n + h.bounds.length + 2, 0);

export interface HistogramInfo {
  name: HistogramName;
  protocol: NativeProtocolName;
  help: string;
  bounds: number[];
}

/** A native option's allowed range, as the addon checks it. */
export interface NativeLimit {
  min: number;
  max: number;
}

/** The engine's scalar options. */
export type NativeEngineScalar = Exclude<keyof NativeEngineOptions, 'listeners'>;
/** Every native option with a number and a range: the engine's, and each listener's backlog. */
export type NativeOptionName = NativeEngineScalar | 'backlog';

/** The native options' ranges, by their native name. */
export type NativeOptionLimits = Readonly<Record<NativeOptionName, NativeLimit>>;

/** A failure as the addon's vip functions return it: errno-style, never thrown. */
export interface NativeVipFailure {
  errno: number;
  syscall: string;
  /** The kernel's own explanation (netlink extended ack), when it gave one. */
  detail?: string;
}

/** The addon's `vip` object. Each call runs on the JS thread and returns at once. */
export interface NativeVip {
  /** Adds `cidr` ("ip/prefix") to `ifname`; IPv6 without duplicate address detection. */
  add(ifname: string, cidr: string): NativeVipFailure | undefined;
  remove(ifname: string, cidr: string): NativeVipFailure | undefined;
  has(ifname: string, ip: string): boolean | NativeVipFailure;
  announce(ifname: string, ip: string, count: number): NativeVipFailure | undefined;
}

/** The addon's exports; lib/engine/addon.ts checks every list against the declarations here. */
export interface Addon {
  Engine: new (options: NativeEngineOptions) => NativeEngine;
  counters: CounterInfo[];
  histograms: HistogramInfo[];
  algorithms: string[];
  hashKeys: string[];
  backendStates: string[];
  closeReasons: string[];
  protocols: string[];
  proxyVersions: string[];
  optionLimits: NativeOptionLimits;
  /** Virtual IP addresses for the HA pair (native/core/vip). */
  vip: NativeVip;
  /**
   * The engine's Maglev table for these backends (stable ids, weights; 0 takes no entry): `size`
   * entries (default `maglevTableSize`), each an index into `ids`; empty when no weight is left.
   */
  maglevTable(ids: string[], weights: number[], size?: number): Uint32Array;
  maglevTableSize: number;
}
