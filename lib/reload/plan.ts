// What a reload changes: the difference between what runs and a new, valid config (the desired
// state), as a plan the balancer applies in order (open new listeners, change backends in place,
// drain the listeners and backends that are gone). Pure: tested without sockets.
//
// The rule a reload follows: it makes the listeners, the backend set and the weights equal to the
// file, whatever the admin API changed since (a backend added at run time and not in the file
// goes; a weight set at run time goes back to the file's). An operator's state on a backend
// that stays in the file (draining, maintenance, down) is kept, unless the file itself now says
// something new about that backend's state: then the file wins.

import { samePolicy } from '../config/listener-policy.js';
import { liveSettings, restartOnlySettings } from '../config/options.js';
import type { BackendConfig, BalancerConfig, ListenerConfig } from '../types.js';

export interface BackendChanges {
  added: BackendConfig[];
  removed: BackendConfig[];
  /** Same id and address, new weight, state and/or PROXY protocol setting. */
  changed: { before: BackendConfig; after: BackendConfig }[];
}

export interface ListenerChanges {
  before: ListenerConfig;
  after: ListenerConfig;
  backends: BackendChanges;
  algorithmChanged: boolean;
  /** proxyProtocol, acceptProxy or the SNI routes changed: new flows take the new settings. */
  proxyChanged: boolean;
  /** Access lists or limits changed: flows admitted from now on are judged by the new ones. */
  policyChanged: boolean;
  healthChanged: boolean;
}

export interface ReloadPlan {
  addedListeners: ListenerConfig[];
  removedListeners: ListenerConfig[];
  keptListeners: ListenerChanges[];
  adminChanged: boolean;
  accessLogChanged: boolean;
  /** Settings that only take effect on a restart; the running values stay. */
  needsRestart: string[];
  /** Settings the balancer applies from the next change on (slow start, passive health, drain). */
  tunablesChanged: string[];
}

const json = (v: unknown) => JSON.stringify(v);
const sameProxySettings = (running: ListenerConfig, next: ListenerConfig) =>
  running.proxyProtocol === next.proxyProtocol && json(running.acceptProxy) === json(next.acceptProxy) &&
  json(running.sni) === json(next.sni) && running.defaultPool === next.defaultPool;

// The running config holds the ports listeners are bound to; port 0 in a new config means
// "any port", which the running listener already has. A listener that changes how it forwards
// (proxy or nat, or its NAT return path) is opened anew too: its data plane changes.
const sameAddress = (running: ListenerConfig, next: ListenerConfig) =>
  running.ip === next.ip && running.anyInterface === next.anyInterface && running.protocol === next.protocol && running.freeBind === next.freeBind && (running.port === next.port || next.port === 0) &&
  running.forward === next.forward && running.snat === next.snat;

/**
 * `before`: the backends that run; `after`: the file's; `filed`: the previous file's, which tells
 * whether the file changed a backend's state or the operator did.
 */
function diffBackends(before: readonly BackendConfig[], after: readonly BackendConfig[], filed: readonly BackendConfig[]): BackendChanges {
  const old = new Map(before.map((b) => [b.id, b]));
  const previous = new Map(filed.map((b) => [b.id, b]));
  const out: BackendChanges = { added: [], removed: [], changed: [] };
  for (const b of after) {
    const prior = old.get(b.id);
    old.delete(b.id);
    if (!prior) out.added.push(b);
    else if (prior.ip !== b.ip || prior.port !== b.port || prior.pool !== b.pool) {
      // Another server under the same name (or the same one in another pool): its flows belong to the old one.
      out.removed.push(prior);
      out.added.push(b);
    } else {
      const wanted = previous.get(b.id)?.state === b.state ? { ...b, state: prior.state } : b;
      const changed = prior.weight !== wanted.weight || prior.state !== wanted.state || prior.address !== wanted.address || prior.maxConnections !== wanted.maxConnections || prior.proxyProtocol !== wanted.proxyProtocol;
      if (changed) out.changed.push({ before: prior, after: wanted });
    }
  }
  out.removed.push(...old.values());
  return out;
}

/**
 * The plan that takes `current` (what runs: each listener's backends as the registry holds them)
 * to `next` (the new file). `previous` is the config the last reload or the start applied, whose
 * backend states tell an operator's change from the file's; by default `current` itself.
 */
export function planReload(current: BalancerConfig, next: BalancerConfig, previous: BalancerConfig = current): ReloadPlan {
  const plan: ReloadPlan = { addedListeners: [], removedListeners: [], keptListeners: [], adminChanged: false, accessLogChanged: false, needsRestart: [], tunablesChanged: [] };
  const old = new Map(current.listeners.map((l) => [l.name, l]));
  for (const l of next.listeners) {
    const prior = old.get(l.name);
    old.delete(l.name);
    if (!prior || !sameAddress(prior, l)) {
      if (prior) plan.removedListeners.push(prior);
      plan.addedListeners.push(l);
      continue;
    }
    plan.keptListeners.push({
      before: prior,
      after: l,
      backends: diffBackends(prior.backends, l.backends, previous.listeners.find((p) => p.name === l.name)?.backends ?? []),
      algorithmChanged: prior.algorithm !== l.algorithm,
      proxyChanged: !sameProxySettings(prior, l),
      policyChanged: !samePolicy(prior.policy, l.policy),
      healthChanged: json(prior.health) !== json(l.health),
    });
  }
  plan.removedListeners.push(...old.values());
  plan.adminChanged = json(current.admin) !== json(next.admin);
  plan.accessLogChanged = json(current.accessLog) !== json(next.accessLog);
  // Which settings wait for a restart is the option table's `reload` column.
  const setting = (config: BalancerConfig, key: string) => (config as unknown as Readonly<Record<string, unknown>>)[key];
  for (const key of restartOnlySettings) if (setting(current, key) !== setting(next, key)) plan.needsRestart.push(key);
  // The running node keeps its identity, key, peer and addresses: the cluster waits for a restart.
  if (json(current.cluster) !== json(next.cluster)) plan.needsRestart.push('cluster');
  // The NAT driver owns one table from start to stop.
  if (current.natTable !== next.natTable) plan.needsRestart.push('natTable');
  for (const key of liveSettings) if (setting(current, key) !== setting(next, key)) plan.tunablesChanged.push(key);
  return plan;
}
