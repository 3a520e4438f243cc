// Active health check configs: one schema for the CLI flag (`--health-check http:/healthz,rise=3`),
// config files and library options. `validateHealthConfig` checks everything once, fills in the
// defaults and returns a frozen config; nothing downstream validates again. The types and the
// object validation live in check-options.ts, the shorthand in health-flag.ts; this module is
// the entry point that takes either.

import { validateHealthOptions, type HealthConfig } from './check-options.js';
import { parseHealthFlag } from './health-flag.js';

export { healthCheckTypes, healthDefaults, healthLimits, sameHealthConfig } from './check-options.js';
export type {
  HealthCheckType,
  HealthCommonOptions,
  HealthConfig,
  HealthOptions,
  HttpHealthConfig,
  HttpHealthOptions,
  SendExpectHealthConfig,
  SendExpectHealthOptions,
  TcpHealthConfig,
  TcpHealthOptions,
  UdpHealthConfig,
  UdpHealthOptions,
} from './check-options.js';
export { formatHealthFlag, parseHealthFlag } from './health-flag.js';

/**
 * Validates a health check config and fills in the defaults. `raw` is {@link HealthOptions}, or a
 * string in the CLI shorthand ({@link parseHealthFlag}). Throws an {@link Lb4Error}
 * (`LB4_INVALID_OPTION`, or `LB4_INVALID_DURATION` for an unreadable duration) whose field names
 * the bad option under `field`, e.g. `listeners[0].health.rise: must be a whole number from 1 to
 * 100, got 0`.
 *
 * @param raw - the options as given.
 * @param field - where they came from, used as the prefix of every error's field.
 * @returns a frozen config; validating it again gives an equal config.
 */
export function validateHealthConfig(raw: unknown, field: string): HealthConfig {
  return validateHealthOptions(typeof raw === 'string' ? parseHealthFlag(raw, field) : raw, field);
}
