// What the control plane does with the engine's events. They arrive in batches on the JS thread:
// connect reports feed passive health, flow summaries become the access log, and accept errors
// are logged and re-emitted as 'listener-error'. A timer also reports events the engine dropped
// because the JS thread fell behind.

import type { EventEmitter } from 'node:events';
import type { NativeEngine, NativeEvent } from './engine/native-types.js';
import { systemError } from './engine/system-errors.js';
import type { Logger } from './log.js';
import type { BackendControl } from './registry/backends.js';
import type { ListenerTable } from './registry/listeners.js';
import type { BackendRegistry } from './registry/registry.js';
import type { FlowRecord } from './types.js';
import type { BalancerEvents } from './events.js';

export interface EngineEventParts {
  readonly engine: NativeEngine;
  readonly registry: BackendRegistry;
  readonly listeners: ListenerTable;
  readonly backends: BackendControl;
  readonly events: EventEmitter<BalancerEvents>;
  readonly logs: { readonly engine: Logger; readonly access: Logger };
}

export class EngineEvents {
  readonly #p: EngineEventParts;
  #lastDropped = 0;

  constructor(parts: EngineEventParts) {
    this.#p = parts;
    parts.engine.onEvents((events) => this.#onEvents(events));
  }

  /** Logs engine events dropped since the last call. */
  checkDropped(): void {
    const dropped = this.#p.engine.droppedEvents();
    if (dropped > this.#lastDropped) this.#p.logs.engine.warn({ dropped: dropped - this.#lastDropped }, 'engine events dropped: the JS thread fell behind');
    this.#lastDropped = dropped;
  }

  #onEvents(events: NativeEvent[]): void {
    for (const e of events) {
      if (e.type === 'backend-connects') this.#onConnects(e);
      else if (e.type === 'flow-closed') this.#onFlowClosed(e);
      else this.#onListenerError(e);
    }
  }

  #onListenerError(e: Extract<NativeEvent, { type: 'listener-error' }>): void {
    const listener = this.#p.listeners.bySlot(e.listener);
    const err = systemError(e.errno, 'accept', { address: listener?.address.address, port: listener?.address.port });
    this.#p.logs.engine.error({ listener: listener?.config.name, err }, 'accept failed');
    if (this.#p.events.listenerCount('listener-error') > 0) this.#p.events.emit('listener-error', err, listener?.config.name ?? String(e.listener));
  }

  #onConnects(e: Extract<NativeEvent, { type: 'backend-connects' }>): void {
    const b = this.#p.registry.byKey(e.backendKey);
    const backend = b?.id ?? `#${e.backendKey}`;
    const listener = b?.listener ?? '';
    if (e.failures > 0) {
      this.#p.logs.engine.warn({ listener, backend, failures: e.failures, timeouts: e.timeouts, successes: e.successes }, 'backend connect failures');
      this.#p.events.emit('backend-connect-failures', { listener, backend, failures: e.failures, timeouts: e.timeouts, successes: e.successes });
    }
    this.#p.backends.recordConnects(e.backendKey, e);
  }

  #onFlowClosed(e: Extract<NativeEvent, { type: 'flow-closed' }>): void {
    const listener = this.#p.listeners.nameOf(e.listener);
    const backend = e.backendKey === undefined ? null : (this.#p.registry.byKey(e.backendKey)?.id ?? `#${e.backendKey}`);
    const udp = e.protocol === 'udp' ? { datagramsToBackend: e.datagramsToBackend ?? 0, datagramsToClient: e.datagramsToClient ?? 0 } : {};
    const record: FlowRecord = {
      id: e.id,
      protocol: e.protocol,
      listener,
      client: e.client,
      backend,
      bytesToBackend: e.bytesToBackend,
      bytesToClient: e.bytesToClient,
      startedAt: new Date(e.startedAt),
      durationMs: e.durationMs,
      reason: e.reason,
      ...udp,
    };
    // One line per ended flow or UDP session; a session's line says so and counts its datagrams.
    const fields = { listener, client: e.client, backend, bytesToBackend: e.bytesToBackend, bytesToClient: e.bytesToClient, durationMs: e.durationMs, reason: e.reason };
    if (e.protocol === 'udp') this.#p.logs.access.info({ session: e.id, protocol: 'udp', ...fields, ...udp }, 'session closed');
    else this.#p.logs.access.info({ flow: e.id, ...fields }, 'flow closed');
    if (this.#p.events.listenerCount('flow') > 0) this.#p.events.emit('flow', Object.freeze(record));
  }
}
