// Active health checks: the configs (one schema for flags, files and options), the checks, the
// rise/fall state machine and the monitor that schedules checks for many targets.

export {
  formatHealthFlag,
  healthCheckTypes,
  healthDefaults,
  healthLimits,
  parseHealthFlag,
  sameHealthConfig,
  validateHealthConfig,
} from './check-config.js';
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
} from './check-config.js';
export { maxResponseBytes, runCheck } from './checkers.js';
export type { CheckResult, CheckTarget } from './checkers.js';
export { HealthMonitor } from './monitor.js';
export type { HealthClock, HealthMonitorEvents, HealthMonitorOptions, HealthResultEvent, HealthStatus, HealthTransition, TimedCheckResult } from './monitor.js';
export { initialRiseFall, riseFall } from './rise-fall.js';
export type { RiseFallState, RiseFallStep } from './rise-fall.js';
