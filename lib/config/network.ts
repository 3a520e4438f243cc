// Networks as people write them (`10.0.0.0/8`, `2001:db8::/32`, or one address such as
// `127.0.0.1`): the trusted sources of PROXY protocol headers. Validated here with a message that
// names the field; the engine gets them as `ip/prefix` strings.

import { isIP } from 'node:net';
import { Lb4Error } from '../errors.js';

/** `10.0.0.0/8` as written, or a bare address as its single-host network (`/32`, `/128`). */
export function parseNetwork(raw: unknown, field: string): string {
  if (typeof raw !== 'string') throw new Lb4Error('LB4_INVALID_OPTION', `must be a network such as 10.0.0.0/8, got ${JSON.stringify(raw)}`, { field });
  const text = raw.trim();
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text);
  const family = m ? isIP(m[1]) : 0;
  if (!m || family === 0) throw new Lb4Error('LB4_INVALID_OPTION', `"${raw}" is not a network such as 10.0.0.0/8 or 2001:db8::/32`, { field });
  const width = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? width : Number(m[2]);
  if (prefix > width) throw new Lb4Error('LB4_INVALID_OPTION', `"${raw}": prefix /${prefix} is longer than an IPv${family} address (/${width})`, { field });
  return `${m[1]}/${prefix}`;
}

/** A list of networks (or one), each named by its place in `field`. */
export function parseNetworks(raw: unknown, field: string): readonly string[] {
  if (raw === undefined) return Object.freeze([]);
  const list = Array.isArray(raw) ? raw : [raw];
  return Object.freeze(list.map((n, i) => parseNetwork(n, Array.isArray(raw) ? `${field}[${i}]` : field)));
}
