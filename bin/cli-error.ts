// How the CLI reports a failure to a person: one line on stderr that starts with "lb4: " and names
// the flag or address at fault, and an exit code a script can branch on. The library's errors
// already say what is wrong; this file only translates their `field` (a library option name such
// as `backends[1].weight`) into the flag the person typed (`--backend weight`).

import { formatHostPort } from '../lib/config/address.js';
import { optionTable, type OptionSpec } from '../lib/config/options.js';
import { Lb4Error } from '../lib/errors.js';
import { osErrorMessage } from '../lib/engine/system-errors.js';

/** Bad flags, bad values: the person must change the command line. */
export const usageExitCode = 2;
/** The command line was fine but the system said no (port in use, no permission, ...). */
export const runtimeExitCode = 1;

export interface CliFailure {
  /** One line, without its newline. */
  readonly line: string;
  readonly exitCode: number;
}

/**
 * The flag for each field an error may name, from the option table: a library option is named by
 * the flag that sets it whole (`health` by `--health-check`, not by `--health-interval`), and every
 * flag by its own name (`backend`, which addBackend() reports). `port` and `adminPort` are
 * `lb4 demo`'s own flags.
 */
const flagsByField: Readonly<Record<string, string>> = (() => {
  const map: Record<string, string> = { port: '--port', adminPort: '--admin-port' };
  const withFlags = (Object.entries(optionTable) as Array<[string, OptionSpec]>).filter(([, spec]) => spec.flag !== null);
  const flagName = (spec: OptionSpec) => spec.flag!.split(' ')[0];
  for (const [, spec] of withFlags) if (spec.field !== null && !spec.field.includes('.')) map[spec.field] ??= flagName(spec);
  for (const [name, spec] of withFlags) map[name] ??= flagName(spec);
  // The cluster's parts are each set by a flag of their own (`cluster.keyFile` by --cluster-key-file).
  for (const [, spec] of withFlags) if (spec.field?.startsWith('cluster.')) map[spec.field] = flagName(spec);
  return map;
})();

// `listen[0].listen`, `backends[2].address` and `sni[0].names[0]` are the flag's value itself;
// any other sub-field (`weight`, `state`, `id`, a route's `pool`) is a part of it worth naming.
function describeField(field: string): string {
  const whole = flagsByField[field.replace(/\[\d+\]$/, '')];
  if (field.startsWith('cluster.') && whole) return whole;
  const match = /^([A-Za-z]+)(?:\[\d+\])?(?:\.(\w+)(?:\[\d+\])?)?$/.exec(field);
  if (!match) return field;
  const flag = flagsByField[match[1]] ?? match[1];
  const part = match[2];
  return part === undefined || part === 'address' || part === 'listen' || part === 'names' ? flag : `${flag} ${part}`;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

interface SystemErrorLike {
  code: string;
  errno?: number;
  address?: string;
  port?: number;
}

function isSystemError(err: unknown): err is Error & SystemErrorLike {
  return err instanceof Error && typeof (err as Partial<SystemErrorLike>).code === 'string';
}

function describeSystemError(err: Error & SystemErrorLike): string {
  // errno values on Node errors are negative; the text table takes the positive errno.
  const reason = typeof err.errno === 'number' ? osErrorMessage(-err.errno) : err.code;
  const what = reason.startsWith('system error') ? err.code : `${reason} (${err.code})`;
  // A unix socket's error has the path as address and port -1: its own message says it better.
  if (typeof err.address === 'string' && typeof err.port === 'number' && err.port >= 0) {
    // Every-interface listeners bind '::' (or '0.0.0.0' without IPv6): show them the way they
    // are written on the command line.
    const where = err.address === '::' || err.address === '0.0.0.0' ? `:${err.port}` : formatHostPort(err.address, err.port);
    // The one listen failure with a fix the message can name.
    const hint = err.code === 'EACCES' && err.port < 1024 ? '; ports below 1024 need root or CAP_NET_BIND_SERVICE' : '';
    return `cannot listen on ${where}: ${what}${hint}`;
  }
  return `${oneLine(err.message)} (${err.code})`;
}

/** Turns anything a command threw into the line to print and the exit code. */
export function describeFailure(err: unknown): CliFailure {
  if (err instanceof Lb4Error) {
    const prefix = err.field === undefined ? '' : `${err.field}: `;
    const detail = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
    const line = err.field === undefined ? detail : `${describeField(err.field)}: ${detail}`;
    return { line: `lb4: ${oneLine(line)}`, exitCode: usageExitCode };
  }
  if (isSystemError(err)) return { line: `lb4: ${describeSystemError(err)}`, exitCode: runtimeExitCode };
  // Some of the library's own messages (a missing addon build) already start with "lb4: ".
  const message = (err instanceof Error ? err.message : String(err)).replace(/^lb4: /, '');
  return { line: `lb4: ${oneLine(message) || 'unexpected error'}`, exitCode: runtimeExitCode };
}

/** Rewrites one of commander's own messages ("error: unknown option '--foo'\n(Did you mean ...?)") as one lb4 line. */
export function commanderLine(text: string): string {
  return `lb4: ${oneLine(text.replace(/^error: /, ''))}`;
}
