// Which sequence numbers of one sender were already accepted, as IPsec's anti-replay window keeps
// them: the highest, and a bit for each of the 32 below it. A number above the highest is new; one
// within the window is new unless its bit is set (the network delivered it after a later one); one
// below the window is refused, old or replayed alike. Constant size, whatever the traffic.

const width = 32;

export class SequenceWindow {
  #highest = -1;
  // Bit i: highest - 1 - i was accepted.
  #below = 0;

  /** Whether `sequence` is new; if so it is marked seen. */
  accept(sequence: number): boolean {
    if (sequence > this.#highest) {
      const shift = sequence - this.#highest;
      // JavaScript shifts by the count mod 32, so the full shifts are spelled out.
      const moved = shift >= width ? 0 : this.#below << shift;
      const previous = this.#highest >= 0 && shift <= width ? 1 << (shift - 1) : 0;
      this.#below = (moved | previous) >>> 0;
      this.#highest = sequence;
      return true;
    }
    const back = this.#highest - sequence - 1;
    if (back < 0 || back >= width) return false;
    const bit = (1 << back) >>> 0;
    if ((this.#below & bit) !== 0) return false;
    this.#below = (this.#below | bit) >>> 0;
    return true;
  }
}
