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

import type { Resolver } from 'node:dns/promises';
import type { DnsEntryConfig } from '../config/dns-entry.js';

export const dnsResults = ['ok', 'empty', 'error'] as const;
export type DnsResult = (typeof dnsResults)[number];

/** One backend an answer gives. */
export interface DnsTarget {
  readonly ip: string;
  readonly port: number;
  readonly weight: number;
}

export type DnsAnswer =
  | { readonly result: 'ok'; readonly targets: readonly DnsTarget[]; /** The shortest TTL seen, in ms; null: unknown. */ readonly ttlMs: number | null }
  | { readonly result: 'empty' | 'error'; readonly reason: string };

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
  const ttl = answers.length === 0 ? null : Math.min(...answers.map((a) => a.ttl));
  return { ips: [...new Set(answers.map((a) => a.address))], ttl };
}

/**
 * The SRV records of the lowest priority. A weight of 0 means "only when nothing else will do"
 * (RFC 2782): lb4 gives it weight 0 (no new flows) unless every record weighs 0, when each gets 1.
 */
async function srvTargets(resolver: Resolver, name: string): Promise<{ targets: DnsTarget[]; ttl: number | null }> {
  let records;
  try {
    records = await resolver.resolveSrv(name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
    if (noSuchRecord.has(code)) return { targets: [], ttl: null };
    throw new NoAnswer(`SRV ${name}: ${code}`);
  }
  if (records.length === 0) return { targets: [], ttl: null };
  const lowest = Math.min(...records.map((r) => r.priority));
  const chosen = records.filter((r) => r.priority === lowest);
  const allZero = chosen.every((r) => r.weight === 0);
  // node:dns gives no TTL for SRV records; the targets' address TTLs stand for the entry's.
  const resolved = await Promise.all(chosen.map(async (r) => ({ r, found: await addresses(resolver, r.name) })));
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

/** Resolves one entry; never throws. */
export async function resolveDnsEntry(resolver: Resolver, entry: DnsEntryConfig): Promise<DnsAnswer> {
  try {
    let targets: DnsTarget[];
    let ttl: number | null;
    if (entry.kind === 'dns') {
      const found = await addresses(resolver, entry.name);
      targets = found.ips.map((ip) => ({ ip, port: entry.port, weight: entry.weight }));
      ttl = found.ttl;
    } else {
      ({ targets, ttl } = await srvTargets(resolver, entry.name));
    }
    if (targets.length === 0) return { result: 'empty', reason: `${entry.kind === 'dns' ? 'A/AAAA' : 'SRV'} ${entry.name}: no addresses` };
    return { result: 'ok', targets, ttlMs: ttl === null ? null : ttl * 1000 };
  } catch (err) {
    return { result: 'error', reason: err instanceof NoAnswer ? err.message : `${entry.name}: ${(err as Error).message}` };
  }
}
