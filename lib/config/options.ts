// lb4's options, each declared once. Everything else is derived from `optionTable`:
//
// - the `lb4 start` flags, their help and defaults (bin/lb4.ts), and how each flag reaches the
//   library's options (bin/commands/start.ts) and how an error names it (bin/cli-error.ts);
// - validation: the known top-level options, and each tunable's kind, default and range
//   (lib/config/validate.ts);
// - the library's option and config types (`TunableOptions`, `TunableConfig` in lib/types.ts);
// - the native engine's options (lib/engine/open.ts);
// - which settings a reload applies and which wait for a restart (lib/reload/);
// - the settings line of `lb4 check-config`, the public `tunables`, and the checks in
//   test/options.test.ts against the README's option table and the addon's own limits.
//
// To add an option: add one entry below, in the place its flag should take in `lb4 start --help`.
// A tunable (a top-level number, duration or choice, entry name = `field`) with a `config` key is
// then a flag, a library and config-file option, validated, and a field of the validated config;
// what remains is the code that uses it: the engine gets it by naming its native option in
// `native` (and declaring it in lib/engine/native-types.ts), a `live` setting is read from the
// running config where it applies. Anything else (an address, a check, a structured value) also
// needs its parsing in validate.ts and, for a flag, its mapping in bin/commands/start.ts.

import { availableParallelism } from 'node:os';
import type { NativeOptionName } from '../engine/native-types.js';
import { Lb4Error } from '../errors.js';
import { healthDefaults } from '../health/check-options.js';
import { logFormats, logLevels } from '../log.js';
import { formatDuration, parseDuration } from './duration.js';
import { algorithms, forwardModes, hashKeys, proxyVersions, snatModes } from './enums.js';
import { udpProxyHeaderModes } from '../engine/native-types.js';
import { showValue } from './show-value.js';

/**
 * What an option's value is. `integer`, `duration` and `choice` are validated from the table
 * alone; the others are parsed by their own code (addresses, backends, health checks, ...).
 */
export type OptionKind = 'integer' | 'duration' | 'choice' | 'address' | 'backend' | 'path' | 'health-check' | 'sample' | 'object' | 'string' | 'boolean' | 'vip' | 'network';

export interface OptionSpec {
  /** The `lb4 start` flag with its value placeholder, as commander takes it; null: none. */
  readonly flag: string | null;
  /** The flag may be given several times; its values collect into a list. */
  readonly repeatable?: boolean;
  /** A boolean flag that also has its `--no-` form (`--preempt` / `--no-preempt`). */
  readonly negatable?: boolean;
  /**
   * Where the value goes in the library's options, which are also the config file's fields: a
   * top-level option (`workers`) or a part of one (`health.interval`); null: CLI only or fixed.
   */
  readonly field: string | null;
  /** The key of the validated config (`BalancerConfig`) that holds the value, for a tunable. */
  readonly config?: string;
  readonly kind: OptionKind;
  /** The value used when none is given; a function is computed on this host. */
  readonly default?: number | string | (() => number);
  /** How help and docs show the default when it is not `default` itself. */
  readonly defaultText?: string;
  /** Range, inclusive (milliseconds for durations). */
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[];
  /** `live`: a reload applies a change; `restart`: the running value stays until a restart. */
  readonly reload: 'live' | 'restart';
  /** The native engine option it becomes (engine-wide, or per listener for `backlog`). */
  readonly native?: NativeOptionName;
  /** Help text, as `lb4 start --help` shows it. */
  readonly help: string;
}

const maxWorkers = 255;

/** Every option, in the order `lb4 start --help` lists their flags. */
export const optionTable = {
  listen: {
    flag: '--listen <address>', repeatable: true, field: 'listen', kind: 'address', defaultText: 'required', reload: 'live',
    help: 'where clients connect: :port (every interface, IPv4 and IPv6), host:port or [ipv6]:port, with /udp for UDP (/tcp is the default); repeatable',
  },
  backend: { flag: '--backend <address>', repeatable: true, field: 'backends', kind: 'backend', defaultText: 'at least one', reload: 'live', help: 'a backend, host:port[,weight=N][,maxconn=N][,pool=NAME][,proxyProtocol=V], or found in DNS: dns:NAME:PORT (A/AAAA) or srv:NAME (SRV); repeatable' },
  listeners: { flag: null, field: 'listeners', kind: 'object', reload: 'live', help: 'the full form: listeners, each with its own backends, algorithm and health checks' },
  config: { flag: '--config <file>', field: null, kind: 'path', defaultText: '', reload: 'restart', help: 'a YAML or JSON config file (instead of --listen/--backend); SIGHUP reloads it' },
  // The health flags are parts of one `health` option, validated by the health check schema
  // (lib/health/check-options.ts), whose defaults and limits apply.
  healthCheck: { flag: '--health-check <check>', field: 'health', kind: 'health-check', defaultText: 'off', reload: 'live', help: 'active health checks for every backend: tcp, http:/path, send-expect,send=TEXT,expect=TEXT (TCP listeners), or udp,send=TEXT[,expect=TEXT] (UDP listeners; send-hex=/expect-hex= for bytes)' },
  healthInterval: { flag: '--health-interval <duration>', field: 'health.interval', kind: 'duration', defaultText: formatDuration(healthDefaults.interval), reload: 'live', help: 'time between two checks of a backend' },
  healthTimeout: { flag: '--health-timeout <duration>', field: 'health.timeout', kind: 'duration', defaultText: formatDuration(healthDefaults.timeout), reload: 'live', help: 'time a check may take' },
  rise: { flag: '--rise <n>', field: 'health.rise', kind: 'integer', defaultText: String(healthDefaults.rise), reload: 'live', help: 'passing checks that bring a down backend back' },
  fall: { flag: '--fall <n>', field: 'health.fall', kind: 'integer', defaultText: String(healthDefaults.fall), reload: 'live', help: 'failing checks that take an up backend down' },
  admin: {
    flag: '--admin <[host:]port>', field: 'admin', kind: 'address', defaultText: 'off', reload: 'live',
    help: 'serve the admin API and /metrics here (127.0.0.1 unless a host is given; a token from LB4_ADMIN_TOKEN is required off loopback)',
  },
  adminMaxConnections: {
    flag: '--admin-max-connections <n>', field: 'admin.maxConnections', kind: 'integer', default: 256, min: 1, max: 65_536, reload: 'live',
    help: 'connections the admin API holds at once (at most a quarter of ulimit -n); more are closed at once (idle ones end after a few seconds), so it never takes the data plane\'s descriptors',
  },
  accessLog: { flag: '--access-log [sample]', field: 'accessLog', kind: 'sample', defaultText: 'off', reload: 'live', help: 'log closed flows (one in SAMPLE, default every one)' },
  algorithm: { flag: '--algorithm <name>', field: 'algorithm', kind: 'choice', choices: algorithms, default: 'roundrobin', reload: 'live', help: 'how new flows pick a backend: roundrobin, leastconn, or maglev (consistent hashing of the client address)' },
  hashKey: {
    flag: '--hash-key <key>', field: 'hashKey', config: 'hashKey', kind: 'choice', choices: hashKeys, default: 'address', reload: 'restart', native: 'hashKey',
    help: "what maglev hashes: address (a client keeps one backend) or address-port (each client port placed on its own, e.g. many clients behind one NAT address)",
  },
  forward: {
    flag: '--forward <mode>', field: 'forward', config: 'forward', kind: 'choice', choices: forwardModes, default: 'proxy', reload: 'live',
    help: "how a listener forwards: proxy (lb4's own connection to the backend) or nat (the kernel's nftables NAT and conntrack; needs root)",
  },
  snat: {
    flag: '--snat <mode>', field: 'snat', config: 'snat', kind: 'choice', choices: snatModes, default: 'none', reload: 'live',
    help: "nat listeners' return path: none (backends route replies through lb4; client address kept) or masquerade (backends see lb4's address)",
  },
  natTable: {
    flag: '--nat-table <name>', field: 'natTable', kind: 'string', default: 'lb4', reload: 'restart',
    help: 'the nftables table (family inet) lb4 owns for nat listeners; give each lb4 process on a host its own',
  },
  // The PROXY protocol (native/core/proxy_protocol/): per listener, the top-level values being
  // every listener's default. A reload applies a change to the flows accepted after it.
  proxyProtocol: {
    flag: '--proxy-protocol <version>', field: 'proxyProtocol', kind: 'choice', choices: proxyVersions, default: 'none', reload: 'live',
    help: "send backends a PROXY protocol header first on each flow, with the client's and the listener's addresses: none, v1 (text) or v2 (binary; also UDP sessions)",
  },
  acceptProxy: {
    flag: '--accept-proxy <cidr>', repeatable: true, field: 'acceptProxy', kind: 'network', defaultText: 'off', reload: 'live',
    help: 'take a PROXY protocol header (v1 or v2) from clients in this network, and refuse clients outside every such network; repeatable; TCP listeners',
  },
  proxyHeaderTimeout: {
    flag: '--proxy-header-timeout <duration>', field: 'proxyHeaderTimeout', config: 'proxyHeaderTimeoutMs', kind: 'duration', default: '5s', min: 1, max: 3_600_000,
    reload: 'restart', native: 'proxyHeaderTimeoutMs', help: 'time a client of an --accept-proxy listener has to send its whole PROXY protocol header',
  },
  // Traffic policy (native/core/policy/, lib/config/listener-policy.ts): per listener, the
  // top-level values being every listener's default. A reload applies a change to the flows
  // admitted after it. 0: no limit.
  allow: {
    flag: '--allow <cidr>', repeatable: true, field: 'allow', kind: 'network', defaultText: 'everyone', reload: 'live',
    help: 'take clients only from these networks (IPv4 or IPv6 CIDR, or one address); repeatable; --deny wins over it',
  },
  deny: { flag: '--deny <cidr>', repeatable: true, field: 'deny', kind: 'network', defaultText: 'no one', reload: 'live', help: 'refuse clients from this network; repeatable' },
  maxConnections: {
    flag: '--max-connections <n>', field: 'maxConnections', kind: 'integer', default: 0, defaultText: 'no limit', min: 0, max: 100_000_000, reload: 'live',
    help: "flows a TCP listener holds at once, over every worker; more clients are refused (0: no limit). Per backend: a backend's maxConnections (host:port,maxconn=N)",
  },
  maxConnectionsPerSource: {
    flag: '--max-connections-per-source <n>', field: 'maxConnectionsPerSource', kind: 'integer', default: 0, defaultText: 'no limit', min: 0, max: 100_000_000, reload: 'live',
    help: 'flows one source (an IPv4 address, an IPv6 /64) holds at once on a TCP listener, per worker (0: no limit)',
  },
  connectionRatePerSource: {
    flag: '--connection-rate-per-source <n>', field: 'connectionRatePerSource', kind: 'integer', default: 0, defaultText: 'no limit', min: 0, max: 100_000_000, reload: 'live',
    help: 'new flows per second one source may open on a TCP listener, per worker (a token bucket with a burst of one second\'s worth; 0: no limit)',
  },
  queueSize: {
    flag: '--queue-size <n>', field: 'queueSize', kind: 'integer', default: 0, min: 0, max: 100_000_000, reload: 'live',
    help: 'flows that wait, over every worker, when every backend is at its maxConnections (0: refuse them at once)',
  },
  queueTimeout: {
    flag: '--queue-timeout <duration>', field: 'queueTimeout', kind: 'duration', default: '5s', min: 1, max: 86_400_000, reload: 'live',
    help: 'how long a queued flow waits for a backend with room before it is closed',
  },
  // DNS discovery (lib/discovery/): backend entries `dns:NAME:PORT` and `srv:NAME` are resolved
  // while lb4 runs, through these servers, and re-resolved within these bounds.
  dnsServer: {
    flag: '--dns-server <ip[:port]>', repeatable: true, field: 'dnsServers', kind: 'address', defaultText: 'the system resolver', reload: 'live',
    help: 'a DNS server (numeric address, port 53 by default) that resolves dns: and srv: backend entries; repeatable',
  },
  dnsInterval: {
    flag: '--dns-interval <duration>', field: 'dnsInterval', config: 'dnsIntervalMs', kind: 'duration', default: '30s', min: 10, max: 86_400_000, reload: 'live',
    help: "re-resolve dns: and srv: backend entries at least this often (sooner when the records' TTL is shorter)",
  },
  dnsMinInterval: {
    flag: '--dns-min-interval <duration>', field: 'dnsMinInterval', config: 'dnsMinIntervalMs', kind: 'duration', default: '1s', min: 10, max: 86_400_000, reload: 'live',
    help: 'never re-resolve a DNS backend entry sooner than this, whatever the TTL; also the first retry after a failure',
  },
  dnsTimeout: {
    flag: '--dns-timeout <duration>', field: 'dnsTimeout', config: 'dnsTimeoutMs', kind: 'duration', default: '2s', min: 10, max: 60_000, reload: 'live',
    help: 'time one DNS query may take before it is sent again (twice at most) and then counted a failure',
  },
  udpProxyHeader: {
    flag: '--udp-proxy-header <when>', field: 'udpProxyHeader', config: 'udpProxyHeader', kind: 'choice', choices: udpProxyHeaderModes, default: 'first', reload: 'restart', native: 'udpProxyHeader',
    help: "a UDP listener with proxyProtocol v2: put the header on each session's first datagram, or on every datagram",
  },
  // TLS SNI routing (native/core/sni/, lib/config/sni-routes.ts): per listener, the top-level
  // values being every listener's default. Backends join a pool with `pool=NAME`.
  sni: {
    flag: '--sni <name=pool>', repeatable: true, field: 'sni', kind: 'string', defaultText: 'off', reload: 'live',
    help: 'route TLS clients whose ClientHello names this server (api.example.com, or *.example.org for one label) to the backends of this pool (--backend ADDR,pool=NAME), without decrypting; repeatable; TCP listeners',
  },
  defaultPool: {
    flag: '--default-pool <pool>', field: 'defaultPool', kind: 'string', defaultText: 'none: close', reload: 'live',
    help: 'with --sni: the pool for clients that name no server, or one no route matches (without it they are closed)',
  },
  sniTimeout: {
    flag: '--sni-timeout <duration>', field: 'sniTimeout', config: 'sniTimeoutMs', kind: 'duration', default: '5s', min: 1, max: 3_600_000,
    reload: 'restart', native: 'sniTimeoutMs', help: 'time a client of an --sni listener has to send its whole TLS ClientHello (at most 16 KiB)',
  },
  workers: {
    flag: '--workers <n>', field: 'workers', config: 'workers', kind: 'integer', default: () => Math.min(availableParallelism(), maxWorkers), defaultText: 'one per CPU',
    min: 1, max: maxWorkers, reload: 'restart', native: 'workers', help: 'data-plane threads (default: one per CPU)',
  },
  connectTimeout: {
    flag: '--connect-timeout <duration>', field: 'connectTimeout', config: 'connectTimeoutMs', kind: 'duration', default: '5s', min: 1, max: 86_400_000,
    reload: 'restart', native: 'connectTimeoutMs', help: 'time allowed for a backend connect before trying another backend',
  },
  idleTimeout: {
    flag: '--idle-timeout <duration>', field: 'idleTimeout', config: 'idleTimeoutMs', kind: 'duration', default: '5m', min: 1, max: 7 * 86_400_000,
    reload: 'restart', native: 'idleTimeoutMs', help: 'close a flow with no bytes either way for this long',
  },
  retries: {
    flag: '--retries <n>', field: 'retries', config: 'retries', kind: 'integer', default: 2, min: 0, max: 7,
    reload: 'restart', native: 'retries', help: 'connect attempts on other backends after a failed one',
  },
  drainTimeout: {
    flag: '--drain-timeout <duration>', field: 'drainTimeout', config: 'drainTimeoutMs', kind: 'duration', default: '10s', min: 0, max: 86_400_000,
    reload: 'live', help: 'on stop, how long open flows may finish before they are closed',
  },
  pipeSize: {
    flag: '--pipe-size <bytes>', field: 'pipeSize', config: 'pipeSize', kind: 'integer', default: 0, min: 0, max: 1 << 20,
    reload: 'restart', native: 'pipeSize', help: 'splice pipe capacity in bytes for every flow (0: 64 KiB, and 1 MiB for up to 32 bulk flows per worker)',
  },
  slowStart: {
    flag: '--slow-start <duration>', field: 'slowStart', config: 'slowStartMs', kind: 'duration', default: '0ms', min: 0, max: 86_400_000,
    reload: 'live', help: "ramp a returning backend's weight up over this time (0: off)",
  },
  passiveFailures: {
    flag: '--passive-failures <n>', field: 'passiveFailures', config: 'passiveFailures', kind: 'integer', default: 3, min: 0, max: 1000,
    reload: 'live', help: 'consecutive connect failures that mark a checked backend down, or refusals that mark an unchecked UDP backend down (0: off)',
  },
  passiveRetry: {
    flag: '--passive-retry <duration>', field: 'passiveRetry', config: 'passiveRetryMs', kind: 'duration', default: '5s', min: 1, max: 86_400_000,
    reload: 'live', help: 'how long passive health keeps an unchecked UDP backend down before trying it again',
  },
  udpIdleTimeout: {
    flag: '--udp-idle-timeout <duration>', field: 'udpIdleTimeout', config: 'udpIdleTimeoutMs', kind: 'duration', default: '30s', min: 1, max: 86_400_000,
    reload: 'restart', native: 'udpIdleTimeoutMs', help: 'close a UDP session with no datagram either way for this long',
  },
  udpResponses: {
    flag: '--udp-responses <n>', field: 'udpResponses', config: 'udpResponses', kind: 'integer', default: 0, min: 0, max: 1_000_000,
    reload: 'restart', native: 'udpResponses', help: 'replies a backend sends per client datagram; the UDP session ends when they are back (1 for DNS; 0: unlimited)',
  },
  udpMaxSessions: {
    flag: '--udp-max-sessions <n>', field: 'udpMaxSessions', config: 'udpMaxSessions', kind: 'integer', default: 16384, min: 1, max: 1_000_000,
    reload: 'restart', native: 'udpMaxSessions', help: 'UDP sessions per listener; a new client past it evicts the least recently active one',
  },
  udpMaxDatagram: {
    flag: '--udp-max-datagram <bytes>', field: 'udpMaxDatagram', config: 'udpMaxDatagram', kind: 'integer', default: 65535, min: 512, max: 65535,
    reload: 'restart', native: 'udpMaxDatagram', help: 'the largest UDP datagram forwarded; larger ones are dropped (counted), never forwarded cut',
  },
  // The HA pair (lib/cluster/, docs/design.md section 8): parts of one `cluster` option, validated
  // in lib/config/cluster-options.ts, which takes their defaults and ranges from here. Every one of
  // them waits for a restart: a running node keeps its identity, key and addresses.
  nodeId: { flag: '--node-id <name>', field: 'cluster.nodeId', kind: 'string', defaultText: 'host name', reload: 'restart', help: "this node's name in the pair (1-255 bytes)" },
  priority: { flag: '--priority <n>', field: 'cluster.priority', kind: 'integer', default: 100, min: 1, max: 255, reload: 'restart', help: 'election priority, 1-255: the higher one holds the virtual IPs' },
  heartbeat: {
    flag: '--heartbeat <[host:]port>', field: 'cluster.heartbeat', kind: 'address', defaultText: "the peer's port", reload: 'restart',
    help: 'where this node sends and receives heartbeats (UDP; every address unless a host is given)',
  },
  peer: { flag: '--peer <host:port>', field: 'cluster.peer', kind: 'address', defaultText: 'no cluster', reload: 'restart', help: "the other node's heartbeat address: makes this node one of an HA pair" },
  clusterKeyFile: {
    flag: '--cluster-key-file <file>', field: 'cluster.keyFile', kind: 'path', defaultText: 'LB4_CLUSTER_KEY', reload: 'restart',
    help: 'the shared heartbeat key, at least 32 bytes (64 hex characters); only its owner may read the file',
  },
  vip: { flag: '--vip <address>', repeatable: true, field: 'cluster.vips', kind: 'vip', defaultText: 'none', reload: 'restart', help: 'a virtual IP the active node holds, ADDR/PREFIX[,dev=IFACE] (IPv4 or IPv6); repeatable' },
  heartbeatInterval: {
    flag: '--heartbeat-interval <duration>', field: 'cluster.heartbeatInterval', kind: 'duration', default: '100ms', min: 10, max: 10_000, reload: 'restart',
    help: 'time between two heartbeats',
  },
  deadAfter: { flag: '--dead-after <n>', field: 'cluster.deadAfter', kind: 'integer', default: 3, min: 1, max: 100, reload: 'restart', help: 'missed heartbeats after which the peer is dead' },
  preempt: {
    flag: '--preempt', negatable: true, field: 'cluster.preempt', kind: 'boolean', defaultText: 'on', reload: 'restart',
    help: 'a returning node of higher priority takes the virtual IPs back (--no-preempt: it waits as backup)',
  },
  onStateChange: {
    flag: '--on-state-change <command>', field: 'cluster.onStateChange', kind: 'string', defaultText: 'none', reload: 'restart',
    help: 'run on each transition with the new state and the virtual IPs (for clouds where gratuitous ARP cannot move an address)',
  },
  logLevel: { flag: '--log-level <level>', field: null, kind: 'choice', choices: logLevels, default: 'info', reload: 'restart', help: 'log events at this level and above' },
  logFormat: { flag: '--log-format <format>', field: null, kind: 'choice', choices: logFormats, default: 'json', reload: 'restart', help: 'json: one object per line; pretty: for reading' },
  // Fixed today: the engine takes them, nobody sets them.
  maxIdlePipes: { flag: null, field: null, kind: 'integer', default: 256, reload: 'restart', native: 'maxIdlePipes', help: 'empty pipes each worker keeps for reuse' },
  backlog: { flag: null, field: null, kind: 'integer', default: 511, reload: 'restart', native: 'backlog', help: "each listening socket's accept queue (listen(2) backlog)" },
} as const satisfies Record<string, OptionSpec>;

export type OptionTable = typeof optionTable;
export type OptionName = keyof OptionTable;

/** A top-level number, duration or choice of the library's options, named by its field. */
export type TunableName = {
  [K in OptionName]: OptionTable[K] extends { readonly field: K; readonly kind: 'integer' | 'duration' | 'choice' } ? K : never;
}[OptionName];

/** How a program may give a tunable: whole numbers and durations may also be strings (as from a command line). */
export type TunableOptions = {
  [K in TunableName]?: OptionTable[K] extends { readonly choices: readonly (infer C)[] } ? C | string : number | string;
};

/** The tunables of the validated config, under their `config` keys. */
export type TunableConfig = {
  readonly [K in TunableName as OptionTable[K] extends { readonly config: infer C extends string } ? C : never]: OptionTable[K] extends { readonly kind: 'choice' } ? string : number;
};

const entries = Object.entries(optionTable) as Array<[OptionName, OptionSpec]>;

/** The tunables' names, in table order. */
export const tunableNames: readonly TunableName[] = entries
  .filter(([name, spec]) => spec.field === name && (spec.kind === 'integer' || spec.kind === 'duration' || spec.kind === 'choice'))
  .map(([name]) => name as TunableName);

/** A tunable as the public `tunables` describes it. */
export interface TunableSpec {
  readonly flag: string;
  readonly description: string;
  readonly kind: 'duration' | 'integer' | 'choice';
  readonly default: number | string | (() => number);
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[];
}

/** The tunables, each with its CLI flag, help, default and range (a view of `optionTable`). */
export const tunables = Object.fromEntries(
  tunableNames.map((name) => {
    const spec: OptionSpec = optionTable[name];
    const out: Record<string, unknown> = { flag: spec.flag, description: spec.help, kind: spec.kind, default: spec.default };
    for (const key of ['min', 'max', 'choices'] as const) if (spec[key] !== undefined) out[key] = spec[key];
    return [name, out];
  }),
) as unknown as { readonly [K in TunableName]: TunableSpec };

/** The top-level library options (and config file fields), in table order. */
export const topLevelOptions: readonly string[] = [...new Set(entries.flatMap(([, spec]) => (spec.field === null ? [] : [spec.field.split('.')[0]])))];

/** Keys of the validated config that only a restart changes, and those a reload applies. */
export const restartOnlySettings: readonly string[] = entries.flatMap(([, spec]) => (spec.config !== undefined && spec.reload === 'restart' ? [spec.config] : []));
export const liveSettings: readonly string[] = entries.flatMap(([, spec]) => (spec.config !== undefined && spec.reload === 'live' ? [spec.config] : []));

/** An option's default value, computed where it depends on the host. */
export function optionDefault(name: OptionName): number | string | undefined {
  const d = (optionTable[name] as OptionSpec).default;
  return typeof d === 'function' ? d() : d;
}

/** The default of an option as help text and docs show it ('' when it has none). */
export function describeDefault(name: OptionName): string {
  const spec: OptionSpec = optionTable[name];
  return spec.defaultText ?? (spec.default === undefined || typeof spec.default === 'function' ? '' : String(spec.default));
}

/** Checks one tunable's value (the default when absent) against its kind and range. */
export function checkTunable(name: TunableName, raw: unknown, field: string = name): number | string {
  return checkValue(name, raw, field);
}

/** Checks a whole-number option that is part of another (`admin.maxConnections`) against the table. */
export function checkTableInteger(name: OptionName, raw: unknown, field: string): number {
  return checkValue(name, raw, field) as number;
}

function checkValue(name: OptionName, raw: unknown, field: string): number | string {
  const spec: OptionSpec = optionTable[name];
  const value = raw === undefined ? optionDefault(name) : raw;
  if (spec.kind === 'choice') {
    if (typeof value !== 'string' || !spec.choices!.includes(value)) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${spec.choices!.join(', ')}, got ${showValue(value)}`, { field });
    }
    return value;
  }
  let n: number;
  if (spec.kind === 'duration') {
    n = parseDuration(value, field);
  } else {
    n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : (value as number);
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number, got ${showValue(value)}`, { field });
  }
  if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
    const show = spec.kind === 'duration' ? formatDuration : String;
    // Text is echoed as given: a number past 2^53 read back would be rounded (1.2345678901234568e+22).
    const given = typeof value === 'string' ? value.trim() : show(n);
    throw new Lb4Error('LB4_INVALID_OPTION', `must be between ${show(spec.min ?? 0)} and ${show(spec.max ?? Infinity)}, got ${given}`, { field });
  }
  return n;
}

/** The tunables of a validated config, checked from `options` (defaults where absent). */
export function validateTunables(options: Readonly<Record<string, unknown>>): TunableConfig {
  const out: Record<string, number | string> = {};
  for (const name of tunableNames) {
    const spec: OptionSpec = optionTable[name];
    if (spec.config !== undefined) out[spec.config] = checkTunable(name, options[name]);
  }
  return out as TunableConfig;
}
