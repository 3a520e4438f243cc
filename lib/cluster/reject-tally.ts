// What a node refuses on its heartbeat port, counted by reason (the metric's labels) and logged
// at most once a second per reason: a flood of forgeries must not flood the log.

import type { Logger } from 'pino';
import { formatHostPort } from '../config/address.js';

export class RejectTally<Reason extends string> {
  readonly #counts: Record<Reason, number>;
  readonly #loggedAt = new Map<Reason, number>();
  readonly #what: string;

  /** `what` names the refused thing in the log line ("heartbeat", "session batch"). */
  constructor(reasons: readonly Reason[], what: string) {
    this.#counts = Object.fromEntries(reasons.map((r) => [r, 0])) as Record<Reason, number>;
    this.#what = what;
  }

  /** Counts one refusal at monotonic time `now` (ms), and logs it unless one was logged within a second. */
  record(reason: Reason, from: { address: string; port: number }, now: number, logger: Logger | undefined): void {
    this.#counts[reason]++;
    const last = this.#loggedAt.get(reason);
    if (last === undefined || now - last >= 1000) {
      this.#loggedAt.set(reason, now);
      logger?.warn({ reason, from: formatHostPort(from.address, from.port), total: this.#counts[reason] }, `cluster: ${this.#what} rejected`);
    }
  }

  /** A copy of the counts. */
  counts(): Readonly<Record<Reason, number>> {
    return { ...this.#counts };
  }
}
