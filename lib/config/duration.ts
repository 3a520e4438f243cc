// Durations as people write them (`500ms`, `2s`, `1.5m`, `1h`) and as lb4 prints them.

import { Lb4Error } from '../errors.js';
import { showValue } from './show-value.js';

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration: a number of milliseconds (a program's form), or a string with a unit such as
 * `500ms`, `2s`, `1.5m`, `1h` (a person's form). A string without a unit is refused, `0` aside:
 * whether `--drain-timeout 30` means 30 ms or 30 s is a guess lb4 will not make. Returns whole
 * milliseconds.
 */
export function parseDuration(value: unknown, field: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Lb4Error('LB4_INVALID_DURATION', `must be a non-negative duration, got ${value}`, { field });
    return Math.round(value);
  }
  if (typeof value !== 'string') throw new Lb4Error('LB4_INVALID_DURATION', `must be a duration such as 500ms, 2s or 1m, got ${showValue(value)}`, { field });
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (!match) throw new Lb4Error('LB4_INVALID_DURATION', `"${value.slice(0, 100)}" is not a duration (use e.g. 500ms, 2s, 1m)`, { field });
  if (match[2] === undefined && Number(match[1]) !== 0) {
    throw new Lb4Error('LB4_INVALID_DURATION', `"${value.trim()}" needs a unit: ${match[1]}ms, ${match[1]}s, ${match[1]}m or ${match[1]}h`, { field });
  }
  return Math.round(Number(match[1]) * units[match[2] ?? 'ms']);
}

/** Formats milliseconds the way a person would write them: 500ms, 2s, 1.5m. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
