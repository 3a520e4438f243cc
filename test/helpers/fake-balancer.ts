// A Balancer running on a fake engine (test/helpers/fake-engine.ts) and a hand-advanced clock
// (test/helpers/fake-clock.ts), with its logs captured: the whole control plane as the library
// wires it, with no socket, thread or addon underneath.

import { pino } from 'pino';
import type { Test } from 'tap';
import { Balancer } from '../../lib/balancer.js';
import type { BalancerDeps, BalancerOptions } from '../../lib/types.js';
import { FakeClock } from './fake-clock.js';
import { FakeEngines, type FakeEngine } from './fake-engine.js';

/** One log line as pino wrote it. */
export interface LogLine {
  level: number;
  msg: string;
  component?: string;
  [field: string]: unknown;
}

export interface FakeRig {
  lb: Balancer;
  engines: FakeEngines;
  /** The engine the balancer runs. */
  engine: FakeEngine;
  clock: FakeClock;
  logs: LogLine[];
  /** The log lines with this message. */
  logged(msg: string): LogLine[];
}

/** A pino logger at `debug` that keeps every line in `lines`. */
export function captureLogger(lines: LogLine[]) {
  return pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
}

/**
 * Starts a balancer on fake engines. `setup` runs before the engine is made (e.g. to make a
 * listener fail to bind). The balancer is closed when the test ends.
 */
export async function startFake(t: Test, options: BalancerOptions, setup: (engines: FakeEngines) => void = () => {}, deps: BalancerDeps = {}): Promise<FakeRig> {
  const engines = new FakeEngines();
  setup(engines);
  const clock = new FakeClock();
  const logs: LogLine[] = [];
  const lb = await Balancer.start({ workers: 1, ...options }, { createEngine: engines.create, clock, logger: captureLogger(logs), ...deps });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  return { lb, engines, engine: engines.engine, clock, logs, logged: (msg) => logs.filter((l) => l.msg === msg) };
}

/** Lets promises already resolved, and the fake engine's setImmediate answers, run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}
