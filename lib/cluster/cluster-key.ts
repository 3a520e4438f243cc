// The shared key that authenticates heartbeats: read from a file only its owner can read, or
// from the LB4_CLUSTER_KEY environment variable. Either holds at least 32 bytes of secret, as
// hex (64 characters for 32 bytes, as `openssl rand -hex 32` prints) or as raw bytes.

import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { Lb4Error } from '../errors.js';

/** The environment variable that may hold the key when no key file is given. */
export const clusterKeyEnv = 'LB4_CLUSTER_KEY';
/** The least secret a key must hold, in bytes: HMAC-SHA256's own output size. */
export const minKeyBytes = 32;

/**
 * Turns the text of a key into its bytes. Surrounding white space (a file's final newline) is not
 * part of it. Text made only of hex digits, of even length, is hex: its secret is half as many
 * bytes, so 40 hex characters are refused as 20 bytes rather than taken as 40.
 */
export function parseClusterKey(content: Buffer, source: string): Buffer {
  const text = content.toString('latin1').trim();
  if (text === '') throw new Lb4Error('LB4_INVALID_OPTION', 'the cluster key is empty', { field: source });
  const hex = /^(?:[0-9a-fA-F]{2})+$/.test(text);
  const key = hex ? Buffer.from(text, 'hex') : Buffer.from(text, 'latin1');
  if (key.length < minKeyBytes) {
    const what = hex ? `${text.length} hex characters are ${key.length} bytes` : `${key.length} bytes`;
    throw new Lb4Error(
      'LB4_INVALID_OPTION',
      `the cluster key is too short: ${what}; it needs at least ${minKeyBytes} bytes of secret (e.g. ${minKeyBytes * 2} hex characters from "openssl rand -hex ${minKeyBytes}")`,
      { field: source },
    );
  }
  return key;
}

/**
 * Reads a key file. Refuses a file that is not a regular file, or that its group or others may
 * read or write: a heartbeat key anyone on the host can read authenticates nothing, and one
 * they can write lets them choose it. The mode is read from the opened descriptor, so the file
 * checked is the file read (a symbolic link is followed: secret volumes are often made of them).
 */
export function readClusterKeyFile(path: string, field = 'cluster.keyFile'): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable by this user' : `cannot be opened (${code})`;
    throw new Lb4Error('LB4_INVALID_OPTION', `cluster key file ${path} ${why}`, { field, cause });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Lb4Error('LB4_INVALID_OPTION', `cluster key file ${path} is not a regular file`, { field });
    if ((st.mode & 0o066) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
      throw new Lb4Error('LB4_INVALID_OPTION', `cluster key file ${path} has mode ${mode}: it must not be readable or writable by group or others (chmod 600 ${path})`, { field });
    }
    return parseClusterKey(readFileSync(fd), field);
  } finally {
    closeSync(fd);
  }
}

/**
 * The key for a node: from `keyFile` when given, else from LB4_CLUSTER_KEY in `env`. Throws an
 * Lb4Error naming the problem when neither is there or the one used is not a valid key.
 */
export function loadClusterKey(options: { keyFile?: string; env?: NodeJS.ProcessEnv; field?: string }): Buffer {
  const env = options.env ?? process.env;
  if (options.keyFile !== undefined && options.keyFile !== '') return readClusterKeyFile(options.keyFile, options.field);
  const value = env[clusterKeyEnv];
  if (value !== undefined && value !== '') return parseClusterKey(Buffer.from(value, 'utf8'), clusterKeyEnv);
  throw new Lb4Error('LB4_INVALID_OPTION', `a cluster needs a shared key: give --cluster-key-file FILE or set ${clusterKeyEnv} (e.g. openssl rand -hex ${minKeyBytes})`, {
    field: options.field ?? 'cluster.keyFile',
  });
}
