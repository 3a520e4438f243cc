// A listener's routing by TLS server name (SNI, passthrough): its routes from names to backend
// pools and its default pool, checked against the pools its backends name. The data plane
// (native/core/sni/) matches names the same way: without case or trailing dot, an exact name
// before a wildcard, `*.example.org` standing for exactly one label.

import { Lb4Error } from '../errors.js';
import type { BackendConfig } from '../types.js';
import type { SniListenerConfig, SniRouteConfig, SniRouteOptions } from './sni-types.js';
import { showValue } from './show-value.js';

/** A pool's name: a label in logs, metrics and the admin API; also in the config file's JSON Schema (lib/config/schema.ts). */
export const poolNamePattern = '^[\\w.-]{1,64}$';
const poolName = new RegExp(poolNamePattern);

/** Whether `name` (lower case, no trailing dot) is a host name lb4 routes by, as the data plane checks it. */
function isHostName(name: string): boolean {
  return name.length <= 253 && name.split('.').every((label) => /^[a-z0-9_-]{1,63}$/.test(label));
}

/** `API.Example.com.` -> `api.example.com`; `*.Example.org` -> `*.example.org`; throws naming `field` otherwise. */
export function normaliseRouteName(raw: unknown, field: string): string {
  if (typeof raw !== 'string') throw new Lb4Error('LB4_INVALID_OPTION', `must be a host name or *.domain, got ${showValue(raw)}`, { field });
  const name = raw.trim().toLowerCase().replace(/\.$/, '');
  const host = name.startsWith('*.') ? name.slice(2) : name;
  if (!isHostName(host)) throw new Lb4Error('LB4_INVALID_OPTION', `must be a host name or *.domain (letters, digits, - and _ in dot-separated labels), got ${showValue(raw)}`, { field });
  return name;
}

/** `name=pool` (the `--sni` flag) as a route. */
function parseRouteFlag(text: string, field: string): SniRouteOptions {
  const eq = text.lastIndexOf('=');
  if (eq <= 0) throw new Lb4Error('LB4_INVALID_OPTION', `must be NAME=POOL (e.g. api.example.com=api), got ${showValue(text)}`, { field });
  return { names: [text.slice(0, eq)], pool: text.slice(eq + 1).trim() };
}

export function checkPoolName(raw: unknown, field: string): string {
  if (typeof raw !== 'string' || !poolName.test(raw)) throw new Lb4Error('LB4_INVALID_OPTION', `must be a pool name of 1-64 letters, digits or ._-, got ${showValue(raw)}`, { field });
  return raw;
}

/**
 * Checks `sni` (routes, or `name=pool` strings) and `defaultPool` against the pools of
 * `backends`. `where` names the listener in messages; `fields` says where each value came from.
 */
export function validateSni(
  rawRoutes: unknown,
  rawDefault: unknown,
  backends: readonly BackendConfig[],
  fields: { sni: string; defaultPool: string; backends: string },
  listener: { name: string; protocol: string; forward: string },
): SniListenerConfig {
  const pools = [...new Set(backends.flatMap((b) => (b.pool === null ? [] : [b.pool])))];
  const hasRoutes = rawRoutes !== undefined && rawRoutes !== null && !(Array.isArray(rawRoutes) && rawRoutes.length === 0);
  if (!hasRoutes) {
    if (rawDefault !== undefined && rawDefault !== null) throw new Lb4Error('LB4_INVALID_OPTION', 'a default pool needs sni routes', { field: fields.defaultPool });
    // Pools without routes would leave all but one unreachable, or mean a forgotten `sni`.
    if (pools.length > 0) throw new Lb4Error('LB4_INVALID_OPTION', `backends name pools (${pools.join(', ')}) but listener ${listener.name} has no sni routes`, { field: fields.sni });
    return Object.freeze({ sni: null, defaultPool: null, pools: Object.freeze([]) });
  }
  if (listener.protocol !== 'tcp') throw new Lb4Error('LB4_INVALID_OPTION', `SNI routing is for TCP listeners, and ${listener.name} is UDP`, { field: fields.sni });
  if (listener.forward !== 'proxy') throw new Lb4Error('LB4_INVALID_OPTION', `SNI routing needs forward: proxy, and ${listener.name} is a nat listener`, { field: fields.sni });
  const list: unknown[] = Array.isArray(rawRoutes) ? rawRoutes : [rawRoutes];
  const seen = new Map<string, string>();
  const routes = list.map((raw, i): SniRouteConfig => {
    const at = `${fields.sni}[${i}]`;
    const opts = typeof raw === 'string' ? parseRouteFlag(raw, at) : (raw as SniRouteOptions);
    if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw new Lb4Error('LB4_INVALID_OPTION', 'must be { names, pool } or "name=pool"', { field: at });
    for (const key of Object.keys(opts)) if (key !== 'names' && key !== 'pool') throw new Lb4Error('LB4_INVALID_OPTION', 'unknown option (known: names, pool)', { field: `${at}.${key}` });
    const rawNames: unknown[] = Array.isArray(opts.names) ? opts.names : [opts.names];
    if (rawNames.length === 0) throw new Lb4Error('LB4_INVALID_OPTION', 'at least one name is required', { field: `${at}.names` });
    const pool = checkPoolName(opts.pool, `${at}.pool`);
    if (!pools.includes(pool)) throw new Lb4Error('LB4_INVALID_OPTION', `unknown pool "${pool}" (pools of ${listener.name}'s backends: ${pools.join(', ') || 'none'})`, { field: `${at}.pool` });
    const names = rawNames.map((n, j) => {
      const name = normaliseRouteName(n, `${at}.names[${j}]`);
      if (seen.has(name)) throw new Lb4Error('LB4_INVALID_OPTION', `"${name}" is routed twice (to ${seen.get(name)} already)`, { field: `${at}.names[${j}]` });
      seen.set(name, pool);
      return name;
    });
    return Object.freeze({ names: Object.freeze(names), pool });
  });
  let defaultPool: string | null = null;
  if (rawDefault !== undefined && rawDefault !== null) {
    defaultPool = checkPoolName(rawDefault, fields.defaultPool);
    if (!pools.includes(defaultPool)) throw new Lb4Error('LB4_INVALID_OPTION', `unknown pool "${defaultPool}" (pools of ${listener.name}'s backends: ${pools.join(', ')})`, { field: fields.defaultPool });
  }
  // A pool no route and no default names would be health-checked and shown up, yet never get a
  // flow: most likely a typo in `pool=`.
  const routed = new Set([...routes.map((r) => r.pool), ...(defaultPool === null ? [] : [defaultPool])]);
  const stray = backends.findIndex((b) => b.pool !== null && !routed.has(b.pool));
  if (stray >= 0) {
    const b = backends[stray];
    throw new Lb4Error('LB4_INVALID_OPTION', `backend "${b.id}" is in pool "${b.pool}", which no sni route or defaultPool of listener ${listener.name} names (routed pools: ${[...routed].join(', ')})`, { field: `${fields.backends}[${stray}].pool` });
  }
  const unpooled = backends.find((b) => b.pool === null);
  if (unpooled) throw new Lb4Error('LB4_INVALID_OPTION', `backend "${unpooled.id}" has no pool, and listener ${listener.name} routes by server name: give it pool=NAME`, { field: fields.backends });
  return Object.freeze({ sni: Object.freeze(routes), defaultPool, pools: Object.freeze(pools) });
}
