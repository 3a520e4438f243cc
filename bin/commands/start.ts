// `lb4 start`: run a balancer from command-line flags until SIGINT or SIGTERM.

import { tunables, type TunableName } from '../../lib/config.js';
import { readConfigFile } from '../../lib/config-file.js';
import { Lb4Error } from '../../lib/errors.js';
import { parseHealthFlag } from '../../lib/health/check-config.js';
import { startBalancer, type Balancer, type BalancerOptions } from '../../lib/index.js';
import { createLogger, type LogFormat, type LogLevel, type Logger } from '../../lib/log.js';
import { watchStopSignals, type StopSignals } from '../stop-signals.js';

/** The flags of `lb4 start` as commander hands them over: values as the person typed them. */
export type StartFlags = {
  listen?: string[];
  backend?: string[];
  config?: string;
  healthCheck?: string;
  healthInterval?: string;
  healthTimeout?: string;
  rise?: string;
  fall?: string;
  admin?: string;
  accessLog?: string | boolean;
  logLevel: LogLevel;
  logFormat: LogFormat;
} & { [Name in TunableName]?: string | number };

// The library validates every field and accepts the CLI's strings for whole numbers too, so the
// values go through as typed: its errors then quote exactly what the person wrote.
async function balancerOptions(flags: StartFlags, typed: ReadonlySet<string>): Promise<BalancerOptions> {
  let options: Record<string, unknown>;
  if (flags.config !== undefined) {
    if (flags.listen || flags.backend) {
      throw new Lb4Error('LB4_INVALID_OPTION', 'give listeners and backends either in the file or as --listen/--backend, not both', { field: 'config' });
    }
    options = { ...(await readConfigFile(flags.config)) };
    for (const name of Object.keys(tunables) as TunableName[]) if (typed.has(name)) options[name] = flags[name];
  } else {
    options = { listen: flags.listen ?? [], backends: flags.backend ?? [] };
    for (const name of Object.keys(tunables) as TunableName[]) if (flags[name] !== undefined) options[name] = flags[name];
  }
  const healthParts = { interval: flags.healthInterval, timeout: flags.healthTimeout, rise: flags.rise, fall: flags.fall };
  if (flags.healthCheck !== undefined) {
    options.health = { ...parseHealthFlag(flags.healthCheck, '--health-check'), ...defined(healthParts) };
  } else if (Object.values(healthParts).some((v) => v !== undefined)) {
    const base = (options.health as object | undefined) ?? undefined;
    if (!base) throw new Lb4Error('LB4_INVALID_OPTION', 'give --health-check too (tcp or http:/path)', { field: 'healthCheck' });
    options.health = { ...base, ...defined(healthParts) };
  }
  if (flags.admin !== undefined) options.admin = { listen: flags.admin, ...(process.env.LB4_ADMIN_TOKEN ? { token: process.env.LB4_ADMIN_TOKEN } : {}) };
  if (flags.accessLog !== undefined) options.accessLog = flags.accessLog === true ? true : { sample: Number(flags.accessLog) };
  return options as BalancerOptions;
}

function defined(values: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Record<string, string>;
}

/** SIGHUP re-reads the config file; a bad file is logged and the running config stays. */
function reloadOnHangup(balancer: Balancer, file: string | undefined, log: Logger): void {
  process.on('SIGHUP', () => {
    if (!file) {
      log.warn('SIGHUP: lb4 was started without --config, so there is nothing to reload');
      return;
    }
    log.info({ file }, 'SIGHUP: reloading');
    // The balancer logs what the reload did, or why it was rejected.
    balancer.reload().catch(() => {});
  });
}

/**
 * Waits for the first stop signal, then drains; a second signal cuts the drain short. Resolves
 * once every worker has stopped.
 */
export async function runUntilStopped(balancer: Balancer, signals: StopSignals): Promise<void> {
  await signals.requested;
  const closing = balancer.close();
  // A failure of the quick close is the same failure as the first close's, reported through it.
  signals.hurried.then(() => balancer.close({ drainTimeout: 0 })).catch(() => {});
  await closing;
}

export async function start(flags: StartFlags, typed: ReadonlySet<string> = new Set()): Promise<void> {
  const logger = createLogger({ level: flags.logLevel, format: flags.logFormat });
  const signals = watchStopSignals(logger);
  const balancer = await startBalancer(await balancerOptions(flags, typed), { logger, configFile: flags.config });
  reloadOnHangup(balancer, flags.config, logger);
  await runUntilStopped(balancer, signals);
}
