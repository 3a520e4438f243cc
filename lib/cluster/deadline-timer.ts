// One timer for a deadline that mostly moves later. The peer's deadline moves forward with every
// heartbeat (ten times a second): rather than re-arm a timer each time, the timer stays armed for
// the earliest deadline asked for; when it fires, the owner looks again (the election ignores a
// deadline a heartbeat has since moved) and asks for the next one.

export class DeadlineTimer {
  readonly #fire: () => void;
  #timer: NodeJS.Timeout | undefined;
  #at = Infinity;

  constructor(fire: () => void) {
    this.#fire = fire;
  }

  /** Makes sure the timer fires by `at` (monotonic ms; `now` is the time now); undefined clears it. */
  arm(at: number | undefined, now: number): void {
    if (at === undefined) {
      this.clear();
      return;
    }
    if (this.#timer && this.#at <= at) return;
    this.clear();
    this.#at = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#at = Infinity;
      this.#fire();
    }, Math.max(0, Math.ceil(at - now)));
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Infinity;
  }
}
