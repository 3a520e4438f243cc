// The virtual IPs a node holds: adding them to the interface and announcing them (at once and a
// few more times, so a switch or a neighbour that missed the first announcement still learns),
// removing them, and what failed. The election decides when; this only carries it out through
// the VipDriver, and never throws: a failure is logged, counted and reported to `onError`.

import type { Logger } from 'pino';
import { formatVip, type Vip } from './vip.js';
import type { VipDriver } from './vip-driver.js';

/** What failed: adding an address, removing it, or announcing it. */
export type VipOperation = 'add' | 'remove' | 'announce';

export class VipHolder {
  readonly #driver: VipDriver;
  readonly #announceAtMs: readonly number[];
  readonly #logger: Logger | undefined;
  readonly #onError: (err: Error, vip: Vip, op: VipOperation) => void;
  readonly #held = new Set<Vip>();
  readonly #announceTimers = new Set<NodeJS.Timeout>();
  #errors = 0;

  constructor(driver: VipDriver, announceAtMs: readonly number[], logger: Logger | undefined, onError: (err: Error, vip: Vip, op: VipOperation) => void) {
    this.#driver = driver;
    this.#announceAtMs = announceAtMs;
    this.#logger = logger;
    this.#onError = onError;
  }

  /** Failures to add, announce or remove so far. */
  get errors(): number {
    return this.#errors;
  }

  holds(vip: Vip): boolean {
    return this.#held.has(vip);
  }

  /** Adds the address and announces it now and at each later time of `announceAtMs`. */
  add(vip: Vip): void {
    try {
      const added = this.#driver.add(vip);
      this.#held.add(vip);
      if (!added) this.#logger?.info({ vip: formatVip(vip), dev: vip.dev }, 'cluster: virtual IP was already on the interface');
    } catch (err) {
      this.#failed(err as Error, vip, 'add', 'cannot add virtual IP');
      return;
    }
    for (const at of this.#announceAtMs) {
      if (at <= 0) {
        this.#announce(vip);
        continue;
      }
      const t = setTimeout(() => {
        this.#announceTimers.delete(t);
        if (this.#held.has(vip)) this.#announce(vip);
      }, at);
      this.#announceTimers.add(t);
    }
  }

  remove(vip: Vip): void {
    const held = this.#held.delete(vip);
    try {
      const removed = this.#driver.remove(vip);
      // At start nothing is held: an address found then was left behind by a crash.
      if (removed && !held) this.#logger?.warn({ vip: formatVip(vip), dev: vip.dev }, 'cluster: removed a virtual IP this node does not hold (left by a crash?)');
    } catch (err) {
      this.#failed(err as Error, vip, 'remove', 'cannot remove virtual IP');
    }
  }

  /** Cancels the announcements still to come. */
  stopAnnouncing(): void {
    for (const t of this.#announceTimers) clearTimeout(t);
    this.#announceTimers.clear();
  }

  #announce(vip: Vip): void {
    try {
      this.#driver.announce(vip, 1);
    } catch (err) {
      this.#failed(err as Error, vip, 'announce', 'cannot announce virtual IP');
    }
  }

  #failed(err: Error, vip: Vip, op: VipOperation, msg: string): void {
    this.#errors++;
    this.#logger?.error({ err, vip: formatVip(vip), dev: vip.dev }, `cluster: ${msg}`);
    this.#onError(err, vip, op);
  }
}
