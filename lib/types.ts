// Every public type of lb4 in one module: options as a program or a config file gives them, the
// validated config, what a running balancer reports, and its events. Types only: importing this
// file loads nothing, so any part of lib/ may depend on it.

import type { BackendPolicyOptions, ListenerPolicyConfig, ListenerPolicyOptions } from './policy-types.js';
import type { Clock } from './clock.js';
import type { PooledBackend, PooledBackendOptions, SniListenerConfig, SniOptions } from './config/sni-types.js';
import type { Algorithm, BackendState, ForwardMode, Protocol, ProxyVersion, SnatMode } from './config/enums.js';
import type { DnsBackendOptions, DnsEntryConfig } from './config/dns-entry.js';
import type { DnsDropReason, DnsResult } from './discovery/dns-resolve.js';
import type { OptionName, OptionTable, TunableConfig, TunableOptions } from './config/options.js';
import type { CounterName, NativeEngine, NativeEngineOptions } from './engine/native-types.js';
import type { BackendTransitions, Latency } from './stats-types.js';
import type { HealthConfig, HealthOptions } from './health/check-options.js';
import type { Logger } from './log.js';
import type { FlowRecord } from './flow-types.js';
import type { Vip } from './cluster/vip.js';
import type { VipDriver } from './cluster/vip-driver.js';

export type { Clock } from './clock.js';
export type { Algorithm, BackendState } from './config/enums.js';
export type { DnsBackendOptions, DnsEntryConfig } from './config/dns-entry.js';
export type { CounterInfo, CounterName, HistogramName } from './engine/native-types.js';
export type { BackendTransitions, Latency, LatencyHistogram } from './stats-types.js';
export type {
  HealthCheckType,
  HealthCommonOptions,
  HealthConfig,
  HealthOptions,
  HttpHealthConfig,
  HttpHealthOptions,
  SendExpectHealthConfig,
  SendExpectHealthOptions,
  TcpHealthConfig,
  TcpHealthOptions,
} from './health/check-options.js';
export type { Logger } from './log.js';
export type { Connection, ConnectionFilter, FlowRecord } from './flow-types.js';
export type { Vip } from './cluster/vip.js';
export type { PooledBackend, PooledBackendOptions, SniListenerConfig, SniOptions, SniRouteConfig, SniRouteOptions } from './config/sni-types.js';

// --- options and config ------------------------------------------------------------------------

/** A backend as a program describes it. A string is `host:port[,weight=N]`. */
export interface BackendOptions extends PooledBackendOptions, BackendPolicyOptions {
  /** `host:port`; a host name is resolved once, at start or when the backend is added. */
  address: string;
  /** Relative share of new flows; 0 takes none. Default 1. */
  weight?: number;
  /** Default `up`. */
  state?: BackendState;
  /** Stable name used by the API and stats. Default: the address as written. */
  id?: string;
  /** The PROXY protocol header this backend is sent, overriding its listener's `proxyProtocol` (TCP). */
  proxyProtocol?: ProxyVersion;
}

/**
 * A listener as a program or a config file describes it. In the shorthand (`listen` and
 * `backends` at the top level) a string or number is the `listen` address alone.
 */
export interface ListenerOptions extends SniOptions, ListenerPolicyOptions {
  /**
   * `:port` (every interface, IPv4 and IPv6), `host:port` or `[ipv6]:port`, optionally followed by
   * `/udp` (or `/tcp`, the default). Port 0 picks a free port.
   */
  listen: string | number;
  /** Name used in stats, logs, metrics and the admin API. Default: the address as written. */
  name?: string;
  /** `tcp` (the default) or `udp`; the same as a `/udp` suffix on `listen`. */
  protocol?: Protocol;
  /** Default: the top-level `algorithm`. */
  algorithm?: Algorithm;
  /** `proxy` (lb4's splice proxy) or `nat` (the kernel's NAT). Default: the top-level `forward`. */
  forward?: ForwardMode;
  /** A nat listener's return path, `none` or `masquerade`. Default: the top-level `snat`. */
  snat?: SnatMode;
  /** The PROXY protocol header sent to backends first on each flow (TCP). Default: the top-level `proxyProtocol`. */
  proxyProtocol?: ProxyVersion;
  /**
   * Networks (`10.0.0.0/8`, `::1`) trusted to send a PROXY protocol header (TCP): clients must be
   * in one and send a v1 or v2 header first. Default: the top-level `acceptProxy`.
   */
  acceptProxy?: string | string[];
  /** This listener's backends (full form only; the shorthand shares the top-level `backends`). */
  backends?: Array<string | BackendOptions | DnsBackendOptions>;
  /** Active health checks for this listener's backends; `false` turns the top-level ones off. */
  health?: HealthOptions | false;
}

/** The admin API: HTTP on loopback by default. */
export interface AdminOptions {
  /** `[host:]port` (host defaults to 127.0.0.1) or a unix socket path (starting with `/` or `.`). */
  listen: string | number;
  /** Bearer token; required when `listen` does not resolve to a loopback address, or is a unix socket. */
  token?: string;
  /** Connections the API holds at once (default 256); more are closed at once. */
  maxConnections?: number | string;
}

/**
 * Options for {@link startBalancer}, and the shape of a config file. Either the shorthand
 * (`listen` and `backends`: every listener balances over the same backends) or the full form
 * (`listeners`, each with its own backends). Durations take milliseconds (a number) or strings with a
 * unit like `2s` (a string without a unit is refused, and so is a number in a config file);
 * whole numbers may also be given as strings of digits (as from a command line). The tunables
 * (`algorithm`, `workers`, `connectTimeout`, `idleTimeout`, `retries`, `drainTimeout`,
 * `pipeSize`, `slowStart`, `passiveFailures`) come from the option table, where each is described
 * with its default and range (`tunables`, lib/config/options.ts).
 */
export interface BalancerOptions extends TunableOptions, SniOptions, Pick<ListenerPolicyOptions, 'allow' | 'deny'> {
  /** Shorthand: where to accept clients, one address or several. */
  listen?: string | number | ListenerOptions | Array<string | number | ListenerOptions>;
  /** Shorthand: the backends every `listen` listener balances over. At least one. */
  backends?: Array<string | BackendOptions | DnsBackendOptions>;
  /** Full form: listeners with their own backends, algorithm and health checks. */
  listeners?: ListenerOptions[];
  /** Default active health checks for listeners (none by default). */
  health?: HealthOptions;
  /** The admin API and /metrics (off by default). */
  admin?: AdminOptions;
  /** Per-flow access log: log one closed flow in `sample` (1: every flow). Off by default. */
  accessLog?: { sample?: number } | boolean;
  /** Aborting it closes the balancer; one already aborted makes start reject with an `AbortError`. */
  signal?: AbortSignal;
  /** Makes this balancer one node of a high-availability pair (off by default). */
  cluster?: ClusterOptions;
  /** The nftables table (family inet) lb4 owns for nat listeners. Default `lb4`. */
  natTable?: string;
  /** Default for every listener: networks trusted to send a PROXY protocol header (none). */
  acceptProxy?: string | string[];
  /** DNS servers (`ip` or `ip:port`) for `dns:`/`srv:` backend entries. Default: the system resolver's. */
  dnsServers?: string | string[];
}

/**
 * One node of an HA pair: the two nodes exchange authenticated heartbeats, elect one active
 * node, and the active one holds the virtual IPs (docs/design.md section 8). The CLI flags of
 * the same names set these (`--node-id`, `--priority`, `--heartbeat`, `--peer`,
 * `--cluster-key-file`, `--vip`, `--heartbeat-interval`, `--dead-after`, `--preempt`,
 * `--on-state-change`).
 */
export interface ClusterOptions {
  /** This node's name in the pair, 1-255 bytes. Default: the host name. */
  nodeId?: string;
  /** 1-255, the higher one holds the virtual IPs. Default 100. */
  priority?: number;
  /** `[host:]port` where heartbeats are sent from and received. Default: the peer's port, every address. */
  heartbeat?: string | number;
  /** `host:port`, the other node's heartbeat address. Required. */
  peer: string;
  /**
   * A file holding the shared key: at least 32 bytes, as hex (`openssl rand -hex 32`) or raw, and
   * readable by its owner only. Default: the `LB4_CLUSTER_KEY` environment variable.
   */
  keyFile?: string;
  /** Virtual IPs, `ADDR/PREFIX[,dev=IFACE]`; without `dev`, the interface whose subnet holds the address. */
  vips?: string[];
  /** Time between two heartbeats. Default 100ms. */
  heartbeatInterval?: number | string;
  /** Missed heartbeats after which the peer is dead. Default 3. */
  deadAfter?: number | string;
  /** A returning node of higher priority takes the virtual IPs back. Default true. */
  preempt?: boolean;
  /** Run on each transition with the new state and the VIPs: a command line, or program and arguments. */
  onStateChange?: string | string[];
}

/** The validated `cluster` option. The key itself is not kept here (it is read again at start). */
export interface ClusterConfig {
  readonly nodeId: string;
  readonly priority: number;
  /** Host '' is every address. */
  readonly heartbeat: { readonly host: string; readonly port: number };
  /** Numeric host. */
  readonly peer: { readonly host: string; readonly port: number };
  /** null: the key comes from LB4_CLUSTER_KEY. */
  readonly keyFile: string | null;
  readonly vips: readonly Vip[];
  readonly heartbeatIntervalMs: number;
  readonly deadAfter: number;
  readonly preempt: boolean;
  readonly onStateChange: string | readonly string[] | null;
}

export interface ListenerConfig extends SniListenerConfig {
  readonly name: string;
  /** The listen address as written. */
  readonly listen: string;
  /** Numeric address to bind; '::' for every interface. */
  readonly ip: string;
  readonly port: number;
  /** Every interface: bind '::' and take IPv4 clients too. */
  readonly anyInterface: boolean;
  /** TCP flows or UDP sessions. */
  readonly protocol: Protocol;
  /**
   * The address is a virtual IP of the cluster: the listener binds it with IP_FREEBIND, so it
   * listens on both nodes all the time, whichever holds the address.
   */
  readonly freeBind: boolean;
  readonly algorithm: Algorithm;
  /** `nat`: the kernel forwards (lib/nat/); lb4 only holds the port and drives the rules. */
  readonly forward: ForwardMode;
  readonly snat: SnatMode;
  /** The PROXY protocol header sent to backends first; `none`: no header. */
  readonly proxyProtocol: ProxyVersion;
  /** Networks trusted to send a PROXY protocol header, as `ip/prefix`; empty: none expected. */
  readonly acceptProxy: readonly string[];
  readonly policy: ListenerPolicyConfig;  // access lists and limits
  readonly backends: readonly BackendConfig[];
  /** Backend entries found in DNS (`dns:`/`srv:`); their backends are in the registry, not here. */
  readonly discover: readonly DnsEntryConfig[];
  readonly health: HealthConfig | null;
}

export type AdminConfig =
  | {
      readonly kind: 'tcp';
      /** The host as written (a name or an address); the API listens on `ip`, what it resolved to. */
      readonly host: string;
      readonly ip: string;
      readonly port: number;
      readonly token: string | null;
      readonly maxConnections: number;
    }
  | { readonly kind: 'unix'; readonly path: string; readonly token: string | null; readonly maxConnections: number };

export interface BackendConfig extends PooledBackend, Required<Readonly<BackendPolicyOptions>> {
  readonly id: string;
  /** The address as written. */
  readonly address: string;
  readonly ip: string;
  readonly port: number;
  readonly weight: number;
  readonly state: BackendState;
  /** The DNS entry (its id) that found this backend; absent for a backend given by address. */
  readonly entry?: string;
  /** This backend's own PROXY protocol version; absent: its listener's. */
  readonly proxyProtocol?: ProxyVersion;
}

/**
 * A validated, frozen config. Besides listeners, admin API and access log it holds every tunable
 * under its `config` key from the option table, in milliseconds for durations (`workers`,
 * `connectTimeoutMs`, `idleTimeoutMs`, `retries`, `drainTimeoutMs`, `pipeSize`, `slowStartMs`,
 * `passiveFailures`).
 */
export interface BalancerConfig extends TunableConfig {
  readonly listeners: readonly ListenerConfig[];
  readonly admin: AdminConfig | null;
  /** Log one closed flow in `sample`; null: no access log. */
  readonly accessLog: { readonly sample: number } | null;
  /** The HA pair this balancer is a node of; null: none. */
  readonly cluster: ClusterConfig | null;
  /** The nftables table lb4 owns for nat listeners. */
  readonly natTable: string;
  /** DNS servers for DNS backend entries, `ip:port`; empty: the system resolver's. */
  readonly dnsServers: readonly string[];
}

// The option table and these types must agree: every top-level option the table declares is a
// key of BalancerOptions and the other way round (`signal` is no setting: it never reaches the
// table or a config file). A mismatch fails to compile here.
type TableFields = Extract<OptionTable[OptionName]['field'], string> extends infer F ? (F extends `${infer Top}.${string}` ? Top : F) : never;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
type OptionsMatchTable = Assert<Same<Exclude<keyof BalancerOptions, 'signal'>, TableFields>>;

// --- a running balancer ----------------------------------------------------------------------

/** What health checks (active or passive) say of a backend. */
export type Health = 'up' | 'down' | 'unchecked';

/** Counter values, by the data plane's counter names (see `counters`). */
export type Counters = Readonly<Record<CounterName, number>>;

/** Where a listener accepts clients. */
export interface ListenerAddress {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

/** A backend as reported by {@link Balancer.backends}. */
export interface BackendInfo extends PooledBackend {
  readonly id: string;
  readonly listener: string;
  readonly address: string;
  readonly ip: string;
  readonly port: number;
  readonly weight: number;
  /** The weight in use now: below `weight` while slow start ramps the backend up. */
  readonly effectiveWeight: number;
  /** The state the operator set. */
  readonly state: BackendState;
  /** What health checks say: `unchecked` when the listener has none. */
  readonly health: Health;
  readonly healthReason: string | null;
  /** Whether new flows may go to it now. */
  readonly takesNewFlows: boolean;
  /** The DNS entry that found it, when one did. */
  readonly entry?: string;
  /** Its own PROXY protocol version, when it overrides the listener's. */
  readonly proxyProtocol?: ProxyVersion;
}

export interface BalancerStats {
  readonly listeners: ReadonlyArray<ListenerAddress & { readonly counters: Counters }>;
  readonly backends: ReadonlyArray<BackendInfo & { readonly counters: Counters; readonly latency: Latency; readonly transitions: BackendTransitions }>;
  /** Engine events dropped because the JS thread did not keep up. */
  readonly droppedEvents: number;
  /** DNS backend entries' resolutions since start, by result. */
  readonly dnsResolutions?: Readonly<Record<DnsResult, number>>;
  /** Records DNS answers gave that were left out (unusable, lb4 itself, past maxBackends), counted once per change of answer. */
  readonly dnsRecordsDropped?: Readonly<Record<DnsDropReason, number>>;
}

/** Which listener a backend operation concerns; all of them (where the id exists) when absent. */
export interface BackendScope {
  listener?: string;
}

/** What a reload changed. */
export interface ReloadSummary {
  readonly listenersAdded: string[];
  readonly listenersRemoved: string[];
  readonly backendsAdded: string[];
  readonly backendsRemoved: string[];
  readonly backendsChanged: string[];
  /**
   * DNS entries (`listener/entry`) the reload added, removed, renamed (`old -> new`: an entry left
   * a listener while one came; the old one's backends serve until the new one's first good
   * answer) or changed. Present only when there are any.
   */
  readonly dnsEntries?: { readonly added: string[]; readonly removed: string[]; readonly renamed: string[]; readonly changed: string[] };
  /** Kept listeners whose access lists or limits changed, and which: `web: allow, limits`. */
  readonly policyChanged: string[];
  /** Settings that changed in the new config but only take effect on a restart. */
  readonly needsRestart: string[];
}

/** What an embedding program may hand a balancer besides its options: a logger, and stand-ins for the VIP and NAT tools. */
export interface BalancerDeps {
  /** A pino logger. Default: silent. */
  logger?: Logger;
  /** How a cluster node adds, removes and announces its virtual IPs. Default: the addon's (rtnetlink). */
  vipDriver?: VipDriver;
  /** The commands nat listeners run. Default: `nft` and `conntrack` from the PATH. */
  natTools?: { nft?: string; conntrack?: string };
}

/** The public deps and what only lb4's CLI and tests hand over (lib/internal.ts): not in the package's API. */
export interface InternalDeps extends BalancerDeps {
  createEngine?: (options: NativeEngineOptions) => NativeEngine;
  /**
   * Where drain timeouts, slow-start steps and health checks read time and set timers. Default:
   * real time; a test passes a clock it advances by hand.
   */
  clock?: Clock;
  /** The file the options came from: `reload()` without options reads it again. */
  configFile?: string;
  /**
   * How `reload()` without options reads `configFile` again, when more than the file makes the
   * options: the CLI lays the flags typed on its command line over the file each time, so a
   * reload keeps them. Default: the file alone.
   */
  readConfig?: () => Promise<BalancerOptions>;
}

