// What DNS answers gave that lb4 left out (lib/discovery/dns-resolve.ts says why), counted and
// logged once per change of answer: a name that keeps giving the same 3,000 records every second
// is one problem, not 3,000 a second, and an unchanged answer must cost next to nothing.

import type { DnsEntryConfig } from '../config/dns-entry.js';
import type { Logger } from '../log.js';
import { dnsDropReasons, type DnsAnswer, type DnsDropCounts } from './dns-resolve.js';

export class DnsDropTally {
  readonly #counts: DnsDropCounts = Object.fromEntries(dnsDropReasons.map((r) => [r, 0])) as DnsDropCounts;
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Records left out since start, by reason. */
  counts(): Readonly<DnsDropCounts> {
    return { ...this.#counts };
  }

  /**
   * What identifies `answer` to `entry`: equal keys mean an equal set of backends and cuts. When it
   * differs from `previous`, the answer's cuts are counted and logged.
   */
  note(previous: string | null, entry: DnsEntryConfig, listener: string, answer: DnsAnswer): string {
    const key = JSON.stringify([entry, answer.result, answer.result === 'ok' ? answer.targets : answer.reason, answer.dropped ?? null]);
    if (key === previous || !answer.dropped) return key;
    const dropped = answer.dropped;
    if (dnsDropReasons.every((r) => dropped[r] === 0)) return key;
    for (const r of dnsDropReasons) this.#counts[r] += dropped[r];
    this.#log.warn({ listener, entry: entry.id, dropped, maxBackends: entry.maxBackends }, 'DNS records left out: unusable addresses, lb4 itself, or past maxBackends');
    return key;
  }
}
