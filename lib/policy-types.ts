// The public types of a listener's traffic policy (lib/config/listener-policy.ts), re-exported by
// lib/types.ts.

/**
 * A listener's access lists and limits (TCP; `allow`/`deny` also for UDP sessions). Given at the
 * top level they are every listener's default; a listener object may set its own.
 */
export interface ListenerPolicyOptions {
  /** Networks (`10.0.0.0/8`, `::1`) whose clients are taken; any other is refused. Default: all. */
  allow?: string | string[];
  /** Networks whose clients are refused; wins over `allow`. */
  deny?: string | string[];
  /** Flows the listener holds at once, over every worker. 0 (default): no limit. */
  maxConnections?: number | string;
  /** Flows one source (IPv4 address, IPv6 /64) holds at once, per worker. 0: no limit. */
  maxConnectionsPerSource?: number | string;
  /** New flows per second one source may open, per worker (token bucket). 0: no limit. */
  connectionRatePerSource?: number | string;
  /** Flows that may wait for a backend with room (every backend at its maxConnections). 0: none. */
  queueSize?: number | string;
  /** How long a queued flow waits (default 5 s). */
  queueTimeout?: number | string;
}

/** The validated policy: networks as `ip/prefix`, counts (0: no limit), the timeout in ms. */
export interface ListenerPolicyConfig {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  readonly maxConnections: number;
  readonly maxConnectionsPerSource: number;
  readonly connectionRatePerSource: number;
  readonly queueSize: number;
  readonly queueTimeout: number;
}

/** A backend's limit (TCP). */
export interface BackendPolicyOptions {
  /** Flows it takes at once, over every worker; when every backend is full flows queue (`queueSize`). 0 (default): no limit. */
  maxConnections?: number;
}
