// Passive health: the data plane counts connect failures per backend and reports them in
// batches, each with the failures that came after its last success. A backend that fails
// `threshold` connects in a row is marked down; only active checks bring it back.

/** Consecutive connect failures, per backend key. */
export class ConsecutiveFailures {
  #counts = new Map<number, number>();

  /**
   * Adds one report; returns the consecutive failures so far. A report with successes restarts
   * the count from the failures that followed the last success.
   */
  record(key: number, report: { failures: number; successes: number; trailingFailures: number }): number {
    const count = report.successes > 0 ? report.trailingFailures : (this.#counts.get(key) ?? 0) + report.failures;
    if (count === 0) this.#counts.delete(key);
    else this.#counts.set(key, count);
    return count;
  }

  reset(key: number): void {
    this.#counts.delete(key);
  }
}
