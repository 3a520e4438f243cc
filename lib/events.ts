// What a running balancer tells its listeners: every change to a backend, whatever made it (a
// library call or the admin API, which calls the same methods; a reload; health checks), and the
// flows, errors and reloads. One interface names each event with its payload, so
// `lb.on('backend-added', (e) => ...)` is typed for TypeScript users.

import type { BackendState } from './config/enums.js';
import type { FlowRecord, ReloadSummary } from './types.js';

/**
 * What made a backend change: `operator` is a call of the library's methods (`addBackend`,
 * `setBackendState`, ...) or the admin API, which calls them; `reload` is `reload()`, SIGHUP or
 * the admin API's reload, reconciling the running backends with a config.
 */
export type ChangeSource = 'operator' | 'reload';

/** A backend of one listener, and what changed it. */
export interface BackendEvent {
  readonly listener: string;
  readonly backend: string;
  readonly by: ChangeSource;
}

export interface BackendAddedEvent extends BackendEvent {
  /** As it was given (`host:port`). */
  readonly address: string;
  readonly weight: number;
  readonly state: BackendState;
}

export type BackendRemovedEvent = BackendEvent;

/** The state the operator or the config set (not health: see `backend-health`). */
export interface BackendStateEvent extends BackendEvent {
  readonly from: BackendState;
  readonly to: BackendState;
}

/** The configured weight (slow start's ramp steps are not reported). */
export interface BackendWeightEvent extends BackendEvent {
  readonly from: number;
  readonly to: number;
}

/** What health checks say of a backend, active or passive (connect failures). */
export interface BackendHealthEvent {
  readonly listener: string;
  readonly backend: string;
  readonly health: 'up' | 'down' | 'unchecked';
  readonly reason: string;
}

/** Events a {@link Balancer} emits: `lb.on(name, (payload) => ...)`. */
export interface BalancerEvents {
  /** A backend joined a listener: `addBackend`, the admin API, or a reload. */
  'backend-added': [event: BackendAddedEvent];
  /** A backend left a listener (its open flows drain): `removeBackend`, the admin API, or a reload. */
  'backend-removed': [event: BackendRemovedEvent];
  /** A backend's state changed (up, draining, maintenance, down): `setBackendState`, the admin API, or a reload. */
  'backend-state': [event: BackendStateEvent];
  /** A backend's weight changed: `setBackendWeight`, the admin API, or a reload. */
  'backend-weight': [event: BackendWeightEvent];
  /** A backend's health changed (active checks or passive connect failures). */
  'backend-health': [event: BackendHealthEvent];
  /** Connects to a backend failed (refused or timed out), summed over a short interval. */
  'backend-connect-failures': [info: { listener: string; backend: string; failures: number; timeouts: number; successes: number }];
  /** One active health check finished. */
  'health-check': [info: { listener: string; backend: string; ok: boolean; durationMs: number; reason: string }];
  /** A flow closed (only with the access log on, and only the sampled ones). */
  flow: [record: FlowRecord];
  /** accept() failed on a listener for a reason other than running out of descriptors. */
  'listener-error': [error: NodeJS.ErrnoException, listener: string];
  /** A reload was applied (after the backend events it caused). */
  reload: [summary: ReloadSummary];
  /** The balancer has closed and every worker has stopped. */
  close: [];
}
