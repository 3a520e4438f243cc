// `lb4 start`: run a balancer from command-line flags until SIGINT or SIGTERM.

import { readConfigFile } from '../../lib/config/config-file.js';
import { optionTable, tunableNames, type OptionName, type OptionSpec, type OptionTable } from '../../lib/config/options.js';
import { listenerKeys } from '../../lib/config/validate.js';
import { Lb4Error } from '../../lib/errors.js';
import { parseHealthFlag } from '../../lib/health/check-config.js';
import type { Balancer, BalancerOptions } from '../../lib/index.js';
import { startWithHooks } from '../../lib/internal.js';
import { createLogger, type LogFormat, type LogLevel, type Logger } from '../../lib/log.js';
import { watchStopSignals, type StopSignals } from '../stop-signals.js';

/** What commander hands over for one flag: a list for a repeatable flag, `true` for an optional value left out. */
type FlagValue<S> = S extends { readonly repeatable: true }
  ? string[]
  : S extends { readonly flag: `${string}[${string}]` }
    ? string | boolean
    : S extends { readonly field: null; readonly choices: readonly (infer C)[] }
      ? C
      : S extends { readonly default: number }
        ? string | number
        : string;

/** The flags of `lb4 start` as commander hands them over (values as the person typed them), one per flag of the option table. */
export type StartFlags = {
  [K in OptionName as OptionTable[K]['flag'] extends string ? K : never]?: FlagValue<OptionTable[K]>;
} & { logLevel: LogLevel; logFormat: LogFormat };

const entries = Object.entries(optionTable) as Array<[OptionName, OptionSpec]>;
/** The flags that set a part of the health option (`--health-interval` is `health.interval`), by the part's name. */
/** The flags that set a part of the cluster option (`--priority` is `cluster.priority`), by the part's name. */
const clusterPartFlags = entries.flatMap(([name, spec]) => (spec.field?.startsWith('cluster.') ? [[name as keyof StartFlags, spec.field.slice('cluster.'.length)] as const] : []));
const healthPartFlags = entries.flatMap(([name, spec]) => (spec.field?.startsWith('health.') ? [[name as keyof StartFlags, spec.field.slice('health.'.length)] as const] : []));

// The library validates every field and accepts the CLI's strings for whole numbers too, so the
// values go through as typed: its errors then quote exactly what the person wrote.
async function balancerOptions(flags: StartFlags, typed: ReadonlySet<string>): Promise<BalancerOptions> {
  let options: Record<string, unknown>;
  if (flags.config !== undefined) {
    if (flags.listen || flags.backend) {
      throw new Lb4Error('LB4_INVALID_OPTION', 'give listeners and backends either in the file or as --listen/--backend, not both', { field: 'config' });
    }
    options = { ...(await readConfigFile(flags.config)) };
    for (const name of tunableNames) if (typed.has(name)) options[name] = flags[name];
  } else {
    options = { listen: flags.listen ?? [], backends: flags.backend ?? [] };
    for (const name of tunableNames) if (flags[name] !== undefined) options[name] = flags[name];
  }
  const healthParts = Object.fromEntries(healthPartFlags.map(([name, part]) => [part, flags[name] as string | undefined]));
  if (flags.healthCheck !== undefined) {
    options.health = { ...parseHealthFlag(flags.healthCheck, '--health-check'), ...defined(healthParts) };
  } else if (Object.values(healthParts).some((v) => v !== undefined)) {
    const base = (options.health as object | undefined) ?? undefined;
    if (!base) throw new Lb4Error('LB4_INVALID_OPTION', 'give --health-check too (tcp or http:/path)', { field: 'healthCheck' });
    options.health = { ...base, ...defined(healthParts) };
  }
  // Cluster flags lay over the file's `cluster:` part by part, as typed.
  const clusterParts = Object.fromEntries(clusterPartFlags.flatMap(([name, part]) => (flags[name] === undefined ? [] : [[part, flags[name]]])));
  if (Object.keys(clusterParts).length > 0) options.cluster = { ...((options.cluster as object | undefined) ?? {}), ...clusterParts };
  // As typed only: the flag's default ('lb4') would replace a config file's own table name.
  if (typed.has('natTable')) options.natTable = flags.natTable;
  // DNS servers for dns:/srv: backend entries: the flags replace the file's list, as typed.
  if (flags.dnsServer !== undefined) options.dnsServers = flags.dnsServer;
  // Trusted PROXY protocol sources: the flags replace the file's top-level list, as typed.
  if (flags.acceptProxy !== undefined) options.acceptProxy = flags.acceptProxy;
  // Access lists: the same, flag over file.
  if (flags.allow !== undefined) options.allow = flags.allow;
  if (flags.deny !== undefined) options.deny = flags.deny;
  // SNI routes and the default pool: the flags replace the file's top-level ones, as typed.
  if (flags.sni !== undefined) options.sni = flags.sni;
  if (flags.defaultPool !== undefined) options.defaultPool = flags.defaultPool;
  if (flags.admin !== undefined) options.admin = { listen: flags.admin, ...(process.env.LB4_ADMIN_TOKEN ? { token: process.env.LB4_ADMIN_TOKEN } : {}) };
  if (flags.adminMaxConnections !== undefined) {
    const admin = options.admin as object | undefined;
    if (admin === undefined) throw new Lb4Error('LB4_INVALID_OPTION', 'give --admin too (or admin in the config file)', { field: 'adminMaxConnections' });
    options.admin = { ...(typeof admin === 'object' && admin !== null ? admin : { listen: admin }), maxConnections: flags.adminMaxConnections };
  }
  // Digits become a number; anything else goes through as typed, for the error to quote it.
  if (flags.accessLog !== undefined) {
    const sample = String(flags.accessLog);
    options.accessLog = flags.accessLog === true ? true : { sample: /^\d+$/.test(sample) ? Number(sample) : sample };
  }
  if (flags.config !== undefined) refuseShadowedFlags(options, typed, flags.config);
  return options as BalancerOptions;
}

/**
 * A flag such as `--deny` sets every listener's default; a listener of the file that sets its
 * own value would silently win over it. An operator adding `--deny ATTACKER` in a hurry must
 * not get a running lb4 that ignores it: the conflict is refused, naming the listener.
 */
function refuseShadowedFlags(options: Record<string, unknown>, typed: ReadonlySet<string>, file: string): void {
  const listeners = options.listeners;
  if (!Array.isArray(listeners)) return;
  for (const [name, spec] of entries) {
    if (!typed.has(name) || spec.flag === null || spec.field === null || !(listenerKeys as readonly string[]).includes(spec.field)) continue;
    const field = spec.field;
    const own = listeners.findIndex((l) => typeof l === 'object' && l !== null && (l as Record<string, unknown>)[field] !== undefined);
    if (own < 0) continue;
    const flag = spec.flag.split(' ')[0];
    throw new Lb4Error('LB4_INVALID_OPTION', `${flag} sets every listener's default, but listeners[${own}] in ${file} sets its own ${field}, which would win: change it in the file`, { field: name });
  }
}

/**
 * An error in a field that came from the config file names the file, not a flag nobody typed
 * (fields set by typed flags keep pointing at the flag).
 */
function blameTheFile(err: unknown, file: string | undefined, typed: ReadonlySet<string>): unknown {
  if (file === undefined || !(err instanceof Lb4Error) || err.field === undefined) return err;
  if (typed.has(err.field.split(/[.[]/)[0])) return err;
  return new Lb4Error(err.code, `${file}: ${err.message}`, { cause: err });
}

function defined(values: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Record<string, string>;
}

/**
 * SIGHUP re-reads the config file (with the command line's flags laid over it again, as at
 * start); a bad file is logged and the running config stays. The handler is installed before the
 * balancer starts, because SIGHUP's default action would end the process half-way through
 * starting; a SIGHUP that arrives then is applied once the balancer runs. Returns the function
 * that hands the running balancer over.
 */
function reloadOnHangup(file: string | undefined, log: Logger): (balancer: Balancer) => void {
  let running: Balancer | null = null;
  let pending = false;
  const reload = (balancer: Balancer): void => {
    // A stopping balancer takes no new config, and reload() would throw at once.
    if (balancer.closed) {
      log.warn({ file }, 'SIGHUP: lb4 is stopping, so there is nothing to reload');
      return;
    }
    // The reload logs one line itself: what it applied, or why it was rejected (every error,
    // the config file's included); the rejection is not lost, only not logged twice.
    balancer.reload().catch(() => {});
  };
  process.on('SIGHUP', () => {
    if (!file) log.warn('SIGHUP: lb4 was started without --config, so there is nothing to reload');
    else if (running) reload(running);
    else pending = true;
  });
  return (balancer) => {
    running = balancer;
    if (pending) reload(balancer);
  };
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
  const started = reloadOnHangup(flags.config, logger);
  const options = () => balancerOptions(flags, typed);
  const balancer = await startWithHooks(await options(), { logger, configFile: flags.config, readConfig: flags.config === undefined ? undefined : options }).catch(
    (err: unknown) => {
      throw blameTheFile(err, flags.config, typed);
    },
  );
  started(balancer);
  await runUntilStopped(balancer, signals);
}
