// The balancer's tunables, each declared once: library option name -> CLI flag, help, default
// and range. The CLI builds its flags and help from this table, and validation reads the defaults
// and ranges from it.

import { availableParallelism } from 'node:os';
import { Lb4Error } from '../errors.js';
import { formatDuration, parseDuration } from './duration.js';
import { algorithms } from './enums.js';

interface TunableSpec {
  flag: string;
  description: string;
  kind: 'duration' | 'integer' | 'choice';
  default: number | string | (() => number);
  min?: number;
  max?: number;
  choices?: readonly string[];
}

/** The tunables, each declared once: library option name -> CLI flag, help, default and range. */
export const tunables = {
  algorithm: { flag: '--algorithm <name>', description: 'how new flows pick a backend: roundrobin or leastconn', kind: 'choice', default: 'roundrobin', choices: algorithms },
  workers: { flag: '--workers <n>', description: 'data-plane threads (default: one per CPU)', kind: 'integer', default: () => Math.min(availableParallelism(), 255), min: 1, max: 255 },
  connectTimeout: { flag: '--connect-timeout <duration>', description: 'time allowed for a backend connect before trying another backend', kind: 'duration', default: '5s', min: 1, max: 86_400_000 },
  idleTimeout: { flag: '--idle-timeout <duration>', description: 'close a flow with no bytes either way for this long', kind: 'duration', default: '5m', min: 1, max: 7 * 86_400_000 },
  retries: { flag: '--retries <n>', description: 'connect attempts on other backends after a failed one', kind: 'integer', default: 2, min: 0, max: 7 },
  drainTimeout: { flag: '--drain-timeout <duration>', description: 'on stop, how long open flows may finish before they are closed', kind: 'duration', default: '10s', min: 0, max: 86_400_000 },
  pipeSize: { flag: '--pipe-size <bytes>', description: 'splice pipe capacity in bytes (0: kernel default, 64 KiB)', kind: 'integer', default: 0, min: 0, max: 1 << 20 },
  slowStart: { flag: '--slow-start <duration>', description: "ramp a returning backend's weight up over this time (0: off)", kind: 'duration', default: '0ms', min: 0, max: 86_400_000 },
  passiveFailures: { flag: '--passive-failures <n>', description: 'consecutive connect failures that mark a checked backend down (0: off)', kind: 'integer', default: 3, min: 0, max: 1000 },
} as const satisfies Record<string, TunableSpec>;

export type TunableName = keyof typeof tunables;

function tunableDefault(name: TunableName): number | string {
  const d = tunables[name].default;
  return typeof d === 'function' ? d() : d;
}

/** The default of a tunable as shown in help text. */
export function describeDefault(name: TunableName): string {
  const spec: TunableSpec = tunables[name];
  if (typeof spec.default === 'function') return 'one per CPU';
  return String(spec.default);
}

/** Checks one tunable's value (the default when absent) against its kind and range. */
export function checkTunable(name: TunableName, raw: unknown, field: string = name): number | string {
  const spec: TunableSpec = tunables[name];
  const value = raw === undefined ? tunableDefault(name) : raw;
  if (spec.kind === 'choice') {
    if (typeof value !== 'string' || !spec.choices!.includes(value)) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${spec.choices!.join(', ')}, got ${JSON.stringify(value)}`, { field });
    }
    return value;
  }
  let n: number;
  if (spec.kind === 'duration') {
    n = parseDuration(value, field);
  } else {
    n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : (value as number);
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number, got ${JSON.stringify(value)}`, { field });
  }
  if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
    const show = spec.kind === 'duration' ? formatDuration : String;
    throw new Lb4Error('LB4_INVALID_OPTION', `must be between ${show(spec.min ?? 0)} and ${show(spec.max ?? Infinity)}, got ${show(n)}`, { field });
  }
  return n;
}

