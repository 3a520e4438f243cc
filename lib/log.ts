// pino loggers. Logs are written synchronously: lb4 logs events (start, listeners, backends,
// errors, stop), not traffic, so the cost is nil and nothing is lost when the process exits.

import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type pinoPretty from 'pino-pretty';

export type { Logger };
export const logFormats = ['json', 'pretty'] as const;
export type LogFormat = (typeof logFormats)[number];
export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

/** A root logger writing to stderr... or to `destination` (a file descriptor) when given. */
export function createLogger(options: { level?: LogLevel; format?: LogFormat; destination?: number } = {}): Logger {
  const level = options.level ?? 'info';
  const fd = options.destination ?? 2;
  if (options.format === 'pretty') {
    // Loaded only when asked for: it costs every CLI start some 25 ms otherwise.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof pinoPretty;
    // One line per event, its fields inline: a reader scans events, and grep finds whole ones.
    // The process id and host name are the same on every line of one run.
    const stream = pretty({ destination: fd, sync: true, colorize: false, singleLine: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' });
    return pino({ level, base: { name: 'lb4' } }, stream);
  }
  return pino({ level, base: { name: 'lb4' } }, pino.destination({ dest: fd, sync: true }));
}

/** A logger that drops everything: the library's default. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
