// SIGINT and SIGTERM as an operator means them: the first asks for a graceful stop (drain), the
// second for a quick one. The handlers are installed before anything starts, so a signal that
// arrives while listeners are still opening is not lost and does not kill the process half-way.

import type { Logger } from '../lib/log.js';

export interface StopSignals {
  /** Resolves with the first SIGINT or SIGTERM. */
  readonly requested: Promise<NodeJS.Signals>;
  /** Resolves with the second: stop draining and close what is still open. */
  readonly hurried: Promise<NodeJS.Signals>;
}

export function watchStopSignals(log: Logger): StopSignals {
  let onFirst: (signal: NodeJS.Signals) => void = () => {};
  let onSecond: (signal: NodeJS.Signals) => void = () => {};
  const requested = new Promise<NodeJS.Signals>((resolve) => (onFirst = resolve));
  const hurried = new Promise<NodeJS.Signals>((resolve) => (onSecond = resolve));
  let received = 0;
  // The listeners stay installed until the process exits: removing them would let a late
  // signal kill the process with a signal status in the middle of its clean exit.
  const onSignal = (signal: NodeJS.Signals): void => {
    received++;
    if (received === 1) {
      log.info({ signal }, 'stop signal received');
      onFirst(signal);
    } else if (received === 2) {
      log.warn({ signal }, 'second stop signal: closing open flows now');
      onSecond(signal);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { requested, hurried };
}
