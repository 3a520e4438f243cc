// One resolution of a DNS backend entry: the addresses, ports and weights its records give now.
// Every query goes through the node:dns Resolver it is handed, which asks the configured servers
// (or the system's, from /etc/resolv.conf) and nothing else: no /etc/hosts, no search domains
// tried on other names, no other server.
//
// Three outcomes, counted apart (lb4_dns_resolutions_total{result}):
// - ok: at least one address;
// - empty: the servers answered that the name has no such records (NXDOMAIN, no data), or an SRV
//   name whose targets have no address;
// - error: no answer (timeout, refused, server failure, a malformed reply).
// Only `ok` changes the backends: an empty answer is as likely a zone being edited as a service
// meant to have no servers, and dropping every backend on it would turn a DNS mistake into an
// outage. That is the documented rule: the last good set stays until an answer with addresses.
//
// Records that cannot be a backend are dropped before that, counted by reason
// (lb4_dns_records_dropped_total{reason}):
// - unusable: an address no connection can go to (unspecified, broadcast, multicast, IPv6
//   link-local without a scope, which an answer cannot carry), an SRV port 0;
// - self: one of lb4's own listeners (lib/config/own-address.ts), which would loop flows back in;
// - limit: past the entry's maxBackends. The kept ones are the first in a fixed order (addresses
//   sorted; SRV targets by name and port), so one answer always gives one set, and SRV targets
//   past the cap are never resolved: a name with a thousand targets costs maxBackends queries.
// An SRV record whose target is "." says the service is not available here (RFC 2782): it has no
// address to look up.

import type { Resolver } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import type { DnsEntryConfig } from '../config/dns-entry.js';

export const dnsResults = ['ok', 'empty', 'error'] as const;
export type DnsResult = (typeof dnsResults)[number];

export const dnsDropReasons = ['unusable', 'self', 'limit'] as const;
export type DnsDropReason = (typeof dnsDropReasons)[number];
export type DnsDropCounts = Record<DnsDropReason, number>;

/** Whether `ip:port` is one of lb4's own listeners (for the entry's protocol). */
export type IsOwnAddress = (ip: string, port: number) => boolean;

const unusable = new BlockList();
unusable.addSubnet('0.0.0.0', 8, 'ipv4');
unusable.addAddress('255.255.255.255', 'ipv4');
unusable.addSubnet('224.0.0.0', 4, 'ipv4');
unusable.addAddress('::', 'ipv6');
unusable.addSubnet('ff00::', 8, 'ipv6');
unusable.addSubnet('fe80::', 10, 'ipv6');

/** Whether no connection can go to `ip` (a BlockList does not see IPv4 inside ::ffff:0:0/96). */
export function isUnusableAddress(ip: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return unusable.check(mapped[1], 'ipv4');
  return unusable.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
}

/** One backend an answer gives. */
export interface DnsTarget {
  readonly ip: string;
  readonly port: number;
  readonly weight: number;
}

export type DnsAnswer =
  | {
      readonly result: 'ok';
      /** Sorted by address, then port. */
      readonly targets: readonly DnsTarget[];
      /** The shortest TTL seen, in ms; null: unknown. */
      readonly ttlMs: number | null;
      /** Records left out, by reason. */
      readonly dropped: DnsDropCounts;
    }
  | { readonly result: 'empty' | 'error'; readonly reason: string; /** Records left out (an empty answer may be one whose every record was). */ readonly dropped?: DnsDropCounts };

/** Error codes of node:dns that mean "the servers said there is no such record", not "no answer". */
const noSuchRecord = new Set(['ENODATA', 'ENOTFOUND']);

/** The highest weight lb4 takes (an SRV weight is at most 65535, below it). */
const maxWeight = 1_000_000;

class NoAnswer extends Error {}

/** A and AAAA records of `name`, both families asked at once; [] when the name has neither. */
async function addresses(resolver: Resolver, name: string): Promise<{ ips: string[]; ttl: number | null }> {
  const ask = async (family: 4 | 6) => {
    try {
      return family === 4 ? await resolver.resolve4(name, { ttl: true }) : await resolver.resolve6(name, { ttl: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
      if (noSuchRecord.has(code)) return [];
      throw new NoAnswer(`${family === 4 ? 'A' : 'AAAA'} ${name}: ${code}`);
    }
  };
  const answers = (await Promise.all([ask(4), ask(6)])).flat();
  // node:dns gives TTLs for the first 256 records of an answer only: past them `ttl` is missing,
  // and one NaN made the next resolution due at once, over and over (hundreds of queries a second).
  const ttls = answers.map((a) => a.ttl).filter((n) => Number.isFinite(n));
  const ttl = ttls.length === 0 ? null : ttls.reduce((a, b) => Math.min(a, b));
  return { ips: [...new Set(answers.map((a) => a.address))], ttl };
}

/**
 * The SRV records of the lowest priority. A weight of 0 means "only when nothing else will do"
 * (RFC 2782): lb4 gives it weight 0 (no new flows) unless every record weighs 0, when each gets 1.
 */
async function srvTargets(resolver: Resolver, name: string, maxTargets: number, dropped: DnsDropCounts): Promise<{ targets: DnsTarget[]; ttl: number | null }> {
  let records;
  try {
    records = await resolver.resolveSrv(name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
    if (noSuchRecord.has(code)) return { targets: [], ttl: null };
    throw new NoAnswer(`SRV ${name}: ${code}`);
  }
  // node:dns gives the root name "." as "".
  records = records.filter((r) => r.name !== '' && r.name !== '.');
  if (records.length === 0) return { targets: [], ttl: null };
  const lowest = Math.min(...records.map((r) => r.priority));
  let chosen = records.filter((r) => r.priority === lowest);
  const allZero = chosen.every((r) => r.weight === 0);
  dropped.unusable += chosen.filter((r) => r.port === 0).length;
  chosen = chosen.filter((r) => r.port !== 0).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.port - b.port));
  dropped.limit += Math.max(chosen.length - maxTargets, 0);
  chosen = chosen.slice(0, maxTargets);
  // node:dns gives no TTL for SRV records; the targets' address TTLs stand for the entry's. A
  // target named by several records is asked once.
  const lookups = new Map<string, ReturnType<typeof addresses>>();
  for (const r of chosen) if (!lookups.has(r.name)) lookups.set(r.name, addresses(resolver, r.name));
  const resolved = await Promise.all(chosen.map(async (r) => ({ r, found: await (lookups.get(r.name) as ReturnType<typeof addresses>) })));
  const byAddress = new Map<string, DnsTarget>();
  let ttl: number | null = null;
  for (const { r, found } of resolved) {
    if (found.ttl !== null) ttl = ttl === null ? found.ttl : Math.min(ttl, found.ttl);
    for (const ip of found.ips) {
      // Two records naming one address and port are one backend, with both weights.
      const key = `${ip}\u0000${r.port}`;
      const weight = (byAddress.get(key)?.weight ?? 0) + (allZero ? 1 : r.weight);
      byAddress.set(key, { ip, port: r.port, weight: Math.min(weight, maxWeight) });
    }
  }
  return { targets: [...byAddress.values()], ttl };
}

const byAddress = (a: DnsTarget, b: DnsTarget) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port);

/** Drops the targets that cannot be backends, sorts the rest and keeps the first `max`. */
function usable(targets: DnsTarget[], max: number, isOwn: IsOwnAddress, dropped: DnsDropCounts): DnsTarget[] {
  const kept: DnsTarget[] = [];
  for (const t of targets) {
    if (isUnusableAddress(t.ip)) dropped.unusable++;
    else if (isOwn(t.ip, t.port)) dropped.self++;
    else kept.push(t);
  }
  kept.sort(byAddress);
  dropped.limit += Math.max(kept.length - max, 0);
  return kept.slice(0, max);
}

/** Resolves one entry; never throws. */
export async function resolveDnsEntry(resolver: Resolver, entry: DnsEntryConfig, isOwn: IsOwnAddress = () => false): Promise<DnsAnswer> {
  try {
    let targets: DnsTarget[];
    let ttl: number | null;
    const dropped: DnsDropCounts = { unusable: 0, self: 0, limit: 0 };
    if (entry.kind === 'dns') {
      const found = await addresses(resolver, entry.name);
      targets = found.ips.map((ip) => ({ ip, port: entry.port, weight: entry.weight }));
      ttl = found.ttl;
    } else {
      ({ targets, ttl } = await srvTargets(resolver, entry.name, entry.maxBackends, dropped));
    }
    targets = usable(targets, entry.maxBackends, isOwn, dropped);
    if (targets.length === 0) {
      const cut = dnsDropReasons.filter((r) => dropped[r] > 0).map((r) => `${dropped[r]} ${r}`);
      return { result: 'empty', reason: `${entry.kind === 'dns' ? 'A/AAAA' : 'SRV'} ${entry.name}: no addresses${cut.length > 0 ? ` (dropped: ${cut.join(', ')})` : ''}`, dropped };
    }
    return { result: 'ok', targets, ttlMs: ttl === null ? null : ttl * 1000, dropped };
  } catch (err) {
    return { result: 'error', reason: err instanceof NoAnswer ? err.message : `${entry.name}: ${(err as Error).message}` };
  }
}
