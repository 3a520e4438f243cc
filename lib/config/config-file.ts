// Config files: YAML or JSON (JSON is YAML too, but .json files get JSON's stricter parser so a
// stray comment is reported rather than accepted). The file holds the same options a program
// passes to startBalancer; validation (lib/config/validate.ts) names the field of any problem.
//
// A config file is input from a person and is read with bounds: a regular file only (a FIFO
// would block the read forever, /dev/zero would never end), at most `maxConfigBytes`, nested at
// most `maxConfigDepth` deep, no key twice in one mapping, and durations with a unit. Every error
// is one line that names the file.

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { Lb4Error } from '../errors.js';
import type { BalancerConfig, BalancerOptions } from '../types.js';
import { optionTable, type OptionSpec } from './options.js';
import { validateOptions } from './validate.js';

/** The largest config file lb4 reads: thousands of listeners fit many times over. */
export const maxConfigBytes = 4 * 1024 * 1024;
/** The deepest nesting of mappings and lists; lb4's own options go about 5 deep. */
export const maxConfigDepth = 32;

function fileError(path: string, detail: string, cause?: unknown): Lb4Error {
  return new Lb4Error('LB4_CONFIG_FILE', `cannot read ${path}: ${detail}`, { cause });
}

/** The file's text, if it is a regular file of at most maxConfigBytes. */
async function readBounded(path: string): Promise<string> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever. It
    // changes nothing for a regular file.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : String(code);
    throw fileError(path, why, cause);
  }
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw fileError(path, 'it is a directory');
    if (!stat.isFile()) throw fileError(path, 'not a regular file');
    if (stat.size > maxConfigBytes) throw fileError(path, `it holds ${stat.size} bytes, more than the ${maxConfigBytes} a config file may`);
    // Read to the end, but never more than the limit: the file may grow while it is read. The
    // first read takes the size the file had (and a byte more, to see that it grew); only a file
    // that grew is read on in chunks. A buffer of the limit's size on every read (4 MiB, zeroed,
    // on every reload) grew the allocator's main heap under the soak's frequent SIGHUPs.
    const chunks: Buffer[] = [];
    let length = 0;
    let want = Math.min(stat.size, maxConfigBytes) + 1;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(want, maxConfigBytes + 1 - length));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, length);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      length += bytesRead;
      if (length > maxConfigBytes) throw fileError(path, `it holds more than the ${maxConfigBytes} bytes a config file may`);
      // A short read is the end as the size said; one more byte confirms it. A full one: it grew.
      want = bytesRead < chunk.length ? 1 : 64 * 1024;
    }
    return Buffer.concat(chunks, length).toString('utf8');
  } finally {
    await handle.close();
  }
}

/** How deep a parsed value nests (walked without recursion, so no depth can overflow the stack). */
function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    deepest = Math.max(deepest, depth + 1);
    if (deepest > maxConfigDepth) return deepest;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** The duration options' places in a config file: `drainTimeout`, `health.interval`, `listeners[i].health.interval`, ... */
const durationFields = (Object.values(optionTable) as OptionSpec[]).flatMap((spec) => (spec.kind === 'duration' && spec.field !== null ? [spec.field.split('.')] : []));

/**
 * A number in a file is read by a person as seconds as often as milliseconds: a duration in a
 * file needs its unit (`500ms`, `30s`); 0 alone is 0 in any unit. A program passing options
 * gives milliseconds as numbers, which is why this is checked here and not in validation.
 */
function refuseUnitlessDurations(options: Record<string, unknown>, path: string): void {
  const places: Array<[Record<string, unknown>, string]> = [[options, '']];
  if (Array.isArray(options.listeners)) options.listeners.forEach((l, i) => typeof l === 'object' && l !== null && places.push([l as Record<string, unknown>, `listeners[${i}].`]));
  for (const [where, prefix] of places) {
    for (const parts of durationFields) {
      let value: unknown = where;
      for (const part of parts) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined;
      if (typeof value === 'number' && value !== 0) {
        throw new Lb4Error('LB4_INVALID_DURATION', `${path}: ${prefix}${parts.join('.')}: ${value} needs a unit, e.g. ${value}ms or ${value}s`);
      }
    }
  }
}

/** The first key that appears twice in one mapping, as the YAML parser reports it (JSON.parse keeps the last silently). */
function duplicateKey(text: string): { message: string; line?: number } | null {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const e = doc.errors.find((err) => err.code === 'DUPLICATE_KEY');
  return e ? { message: e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, ''), line: e.linePos?.[0].line } : null;
}

/** Reads and parses a config file into options, without validating them. */
export async function readConfigFile(path: string): Promise<BalancerOptions> {
  const text = await readBounded(path);
  let value: unknown;
  try {
    if (path.endsWith('.json')) {
      try {
        value = JSON.parse(text);
      } catch (cause) {
        if (cause instanceof RangeError) throw cause;
        throw new Lb4Error('LB4_CONFIG_FILE', `${path} is not valid JSON: ${(cause as Error).message}`, { cause });
      }
      // Depth first: the YAML parser that finds duplicate keys recurses on nesting.
      if (depthOf(value) > maxConfigDepth) throw new Lb4Error('LB4_CONFIG_FILE', `${path} is nested too deeply (at most ${maxConfigDepth} levels)`);
      const duplicate = duplicateKey(text);
      if (duplicate) throw new Lb4Error('LB4_CONFIG_FILE', `${path} is not valid: ${duplicate.message}${duplicate.line ? ` at line ${duplicate.line}` : ''}`);
    } else {
      // prettyErrors gives each error its line and column (and a code frame, left out here).
      const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
      if (doc.errors.length > 0) {
        const e = doc.errors[0];
        // The parser recursed past the stack and reported it as a syntax error: only a file
        // nested absurdly deep does that.
        if (/Maximum call stack size exceeded/.test(e.message)) throw new RangeError(e.message);
        const where = e.linePos ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '';
        throw new Lb4Error('LB4_CONFIG_FILE', `${path} is not valid YAML${where}: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`);
      }
      try {
        // toJS() expands aliases, and refuses (throws) when they would blow up (a "billion laughs"
        // file): that is the file's problem, reported as such.
        value = doc.toJS();
      } catch (cause) {
        if (cause instanceof RangeError) throw cause;
        throw new Lb4Error('LB4_CONFIG_FILE', `${path} is not usable YAML: ${(cause as Error).message.split('\n')[0]}`, { cause });
      }
    }
  } catch (cause) {
    // A parser that recursed past the stack: only a file nested absurdly deep does that.
    if (cause instanceof RangeError) throw new Lb4Error('LB4_CONFIG_FILE', `${path} is nested too deeply (at most ${maxConfigDepth} levels)`, { cause });
    throw cause;
  }
  if (depthOf(value) > maxConfigDepth) throw new Lb4Error('LB4_CONFIG_FILE', `${path} is nested too deeply (at most ${maxConfigDepth} levels)`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Lb4Error('LB4_CONFIG_FILE', `${path} must hold a mapping of options (listeners, admin, ...)`);
  }
  refuseUnitlessDurations(value as Record<string, unknown>, path);
  return value as BalancerOptions;
}

/** Reads, parses and validates a config file. Errors name the file and the field. */
export async function loadConfigFile(path: string): Promise<{ options: BalancerOptions; config: BalancerConfig }> {
  const options = await readConfigFile(path);
  try {
    return { options, config: await validateOptions(options) };
  } catch (err) {
    if (err instanceof Lb4Error) {
      const located = new Lb4Error(err.code, `${path}: ${err.message}`, { cause: err });
      throw located;
    }
    throw err;
  }
}
