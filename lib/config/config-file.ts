// Config files: YAML or JSON (JSON is YAML too, but .json files get JSON's stricter parser so a
// stray comment is reported rather than accepted). The file holds the same options a program
// passes to startBalancer; validation (lib/config/validate.ts) names the field of any problem.

import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { Lb4Error } from '../errors.js';
import type { BalancerConfig, BalancerOptions } from '../types.js';
import { validateOptions } from './validate.js';

/** Reads and parses a config file into options, without validating them. */
export async function readConfigFile(path: string): Promise<BalancerOptions> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : String(code);
    throw new Lb4Error('LB4_CONFIG_FILE', `cannot read ${path}: ${why}`, { cause });
  }
  let value: unknown;
  if (path.endsWith('.json')) {
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw new Lb4Error('LB4_CONFIG_FILE', `${path} is not valid JSON: ${(cause as Error).message}`, { cause });
    }
  } else {
    // prettyErrors gives each error its line and column (and a code frame, left out here).
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const where = e.linePos ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '';
      throw new Lb4Error('LB4_CONFIG_FILE', `${path} is not valid YAML${where}: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`);
    }
    try {
      // toJS() expands aliases, and refuses (throws) when they would blow up (a "billion laughs"
      // file): that is the file's problem, reported as such.
      value = doc.toJS();
    } catch (cause) {
      throw new Lb4Error('LB4_CONFIG_FILE', `${path} is not usable YAML: ${(cause as Error).message.split('\n')[0]}`, { cause });
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Lb4Error('LB4_CONFIG_FILE', `${path} must hold a mapping of options (listeners, admin, ...)`);
  }
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
