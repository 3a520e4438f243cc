// Backends found in DNS: a backend entry that names a DNS name instead of an address. Two kinds:
//
// - `dns:NAME:PORT` (or `{ dns: NAME, port: PORT }`): every A and AAAA address of NAME, each a
//   backend on PORT with the entry's weight;
// - `srv:NAME` (or `{ srv: NAME }`): the SRV records of NAME of the lowest priority, each target's
//   addresses a backend on the record's port with the record's weight.
//
// Nothing is resolved here: validation must never send a query (a config check, a fuzz run), and
// the discovered set changes while lb4 runs. lib/discovery/ resolves the entries and keeps the
// registry equal to their answers.

import { isIP } from 'node:net';
import { Lb4Error } from '../errors.js';
import { backendStates, type BackendState } from './enums.js';
import { formatHostPort, parseHostPort } from './address.js';
import { showValue } from './show-value.js';
import { specParams, wholeNumberParam } from './spec-params.js';

/** The two kinds of DNS backend entry. */
export const dnsEntryKinds = ['dns', 'srv'] as const;
export type DnsEntryKind = (typeof dnsEntryKinds)[number];

/** A DNS backend entry as a program or a config file gives it. */
export interface DnsBackendOptions {
  /** A name whose A and AAAA records are the backends (with `port`). */
  dns?: string;
  /** An SRV name (`_app._tcp.example.internal`) whose records give targets, ports and weights. */
  srv?: string;
  /** The backends' port: required with `dns`, not taken with `srv` (the records carry it). */
  port?: number;
  /** Every address's weight with `dns` (default 1); `srv` takes the records' weights. */
  weight?: number;
  /** The state each discovered backend starts in. Default `up`. */
  state?: BackendState;
  /** The entry's name; each discovered backend is `ID/ADDRESS:PORT`. Default: the entry as written. */
  id?: string;
  /** The most backends (and, for `srv`, SRV targets) one answer gives; the rest are cut off, counted. Default 64. */
  maxBackends?: number;
}

/** A validated DNS backend entry. */
export interface DnsEntryConfig {
  readonly kind: DnsEntryKind;
  readonly id: string;
  /** The DNS name, without a trailing dot. */
  readonly name: string;
  /** `dns` entries: the backends' port; `srv` entries: 0 (the records give it). */
  readonly port: number;
  /** `dns` entries: each address's weight; `srv` entries: unused (the records give it). */
  readonly weight: number;
  readonly state: BackendState;
  /** The most backends an answer gives (SRV: also the most targets resolved). */
  readonly maxBackends: number;
}

/**
 * The default cap on one entry's backends. A name with thousands of records is a mistake or an
 * attack far more often than a pool: each backend costs a registry record, health checks and a
 * place in every diff, and each SRV target a query per resolution.
 */
export const defaultDnsMaxBackends = 64;
export const dnsMaxBackendsLimit = 10_000;

/** The longest entry id: a discovered backend's id adds `/` and an address to it. */
export const maxDnsEntryIdLength = 80;

/** Whether a backend entry, as written, is a DNS one (and not an address). */
export function isDnsEntry(raw: unknown): boolean {
  if (typeof raw === 'string') return /^(dns|srv):/i.test(raw.trim());
  return typeof raw === 'object' && raw !== null && ('dns' in raw || 'srv' in raw);
}

function checkName(raw: unknown, field: string): string {
  const name = typeof raw === 'string' ? raw.trim().replace(/\.$/, '') : raw;
  // A host name (letters, digits, hyphens, underscores for SRV labels), dotted, at most 253 bytes.
  if (typeof name !== 'string' || name.length === 0 || name.length > 253 || isIP(name) || !/^[A-Za-z0-9_]([A-Za-z0-9_-]*)(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$/.test(name)) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be a DNS name such as app.example.internal, got ${showValue(raw)}`, { field });
  }
  return name;
}

/** Parses `dns:NAME:PORT[,weight=N][,state=S][,id=ID][,maxBackends=N]` or `srv:NAME[,state=S][,id=ID][,maxBackends=N]`. */
function parseSpec(text: string, field: string): DnsBackendOptions {
  const [head, ...params] = text.trim().split(',');
  const colon = head.indexOf(':');
  const kind = head.slice(0, colon).toLowerCase() as DnsEntryKind;
  const rest = head.slice(colon + 1);
  const out: DnsBackendOptions = {};
  if (kind === 'dns') {
    const { host, port } = parseHostPort(rest, field, { allowEmptyHost: false, allowPortZero: false });
    out.dns = host;
    out.port = port;
  } else {
    out.srv = rest;
  }
  for (const [key, value] of specParams(params)) {
    if (key === 'weight' && kind === 'dns') {
      out.weight = wholeNumberParam(key, value, text, field);
    } else if (key === 'state') {
      out.state = value as BackendState;
    } else if (key === 'id') {
      out.id = value;
    } else if (key === 'maxBackends') {
      out.maxBackends = wholeNumberParam(key, value, text, field);
    } else {
      const known = kind === 'dns' ? 'weight, state, id, maxBackends' : 'state, id, maxBackends (an SRV record gives the weight)';
      throw new Lb4Error('LB4_INVALID_OPTION', `unknown ${kind} entry parameter "${key}" in "${text}" (known: ${known})`, { field });
    }
  }
  return out;
}

/** Checks one DNS backend entry (`isDnsEntry(raw)` holds). */
export function validateDnsEntry(raw: unknown, field: string): DnsEntryConfig {
  const opts = typeof raw === 'string' ? parseSpec(raw, field) : (raw as DnsBackendOptions);
  const known = ['dns', 'srv', 'port', 'weight', 'state', 'id', 'maxBackends'];
  for (const key of Object.keys(opts)) {
    if (!known.includes(key)) throw new Lb4Error('LB4_INVALID_OPTION', `unknown option (known: ${known.join(', ')})`, { field: `${field}.${key}` });
  }
  if (opts.dns !== undefined && opts.srv !== undefined) throw new Lb4Error('LB4_INVALID_OPTION', 'give dns or srv, not both', { field: `${field}.srv` });
  const kind: DnsEntryKind = opts.dns !== undefined ? 'dns' : 'srv';
  const name = checkName(opts[kind], `${field}.${kind}`);
  let port = 0;
  let weight = 1;
  if (kind === 'dns') {
    port = opts.port as number;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Lb4Error('LB4_INVALID_OPTION', `must be a port from 1 to 65535, got ${showValue(opts.port)}`, { field: `${field}.port` });
    weight = opts.weight === undefined ? 1 : opts.weight;
    if (!Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 0 to 1000000, got ${showValue(opts.weight)}`, { field: `${field}.weight` });
    }
  } else {
    // SRV records carry both: a second source for either would leave which one wins unclear.
    if (opts.port !== undefined) throw new Lb4Error('LB4_INVALID_OPTION', 'an srv entry takes its ports from the SRV records', { field: `${field}.port` });
    if (opts.weight !== undefined) throw new Lb4Error('LB4_INVALID_OPTION', 'an srv entry takes its weights from the SRV records', { field: `${field}.weight` });
  }
  const state = opts.state === undefined ? 'up' : opts.state;
  if (!backendStates.includes(state)) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${backendStates.join(', ')}, got ${showValue(state)}`, { field: `${field}.state` });
  }
  const id = opts.id === undefined ? (kind === 'dns' ? `dns:${formatHostPort(name, port)}` : `srv:${name}`) : opts.id;
  if (typeof id !== 'string' || id === '') throw new Lb4Error('LB4_INVALID_OPTION', `must be a non-empty string, got ${showValue(id)}`, { field: `${field}.id` });
  if (id.length > maxDnsEntryIdLength) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be at most ${maxDnsEntryIdLength} characters (give a shorter id), got ${id.length}`, { field: `${field}.id` });
  }
  if (/[\x00-\x1f\x7f]/.test(id)) throw new Lb4Error('LB4_INVALID_OPTION', `must not hold control characters, got ${showValue(id)}`, { field: `${field}.id` });
  const maxBackends = opts.maxBackends === undefined ? defaultDnsMaxBackends : opts.maxBackends;
  if (!Number.isInteger(maxBackends) || maxBackends < 1 || maxBackends > dnsMaxBackendsLimit) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 1 to ${dnsMaxBackendsLimit}, got ${showValue(opts.maxBackends)}`, { field: `${field}.maxBackends` });
  }
  return Object.freeze({ kind, id, name, port, weight, state, maxBackends });
}

/**
 * The DNS servers to ask, as node:dns `setServers` takes them: numeric addresses only (a server
 * given by name would need a query to some other server first), with an optional port.
 */
export function validateDnsServers(raw: unknown): readonly string[] {
  if (raw === undefined || raw === null) return Object.freeze([]);
  const list = Array.isArray(raw) ? raw : [raw];
  return Object.freeze(
    list.map((item, i) => {
      const field = Array.isArray(raw) ? `dnsServers[${i}]` : 'dnsServers';
      const text = typeof item === 'string' ? item.trim() : item;
      if (typeof text === 'string' && isIP(text)) return isIP(text) === 6 ? `[${text}]:53` : `${text}:53`;
      const numeric = typeof text === 'string' && /^(\d+\.\d+\.\d+\.\d+|\[[^\]]+\]):\d+$/.test(text);
      if (!numeric) throw new Lb4Error('LB4_INVALID_ADDRESS', `a DNS server must be a numeric address (ip, ip:port or [ipv6]:port), got ${showValue(item)}`, { field });
      const { host, port } = parseHostPort(text, field, { allowEmptyHost: false, allowPortZero: false });
      return formatHostPort(host, port);
    }),
  );
}
