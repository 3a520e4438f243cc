// Networks as people write them (`10.0.0.0/8`, `2001:db8::/32`, or one address such as
// `127.0.0.1`): access lists and the trusted sources of PROXY protocol headers. Validated here
// with a message that names the field; the engine gets them as `ip/prefix` strings.
//
// The engine judges an IPv4 client of a dual-stack listener (::ffff:a.b.c.d on the socket) as
// the IPv4 address it is, so an IPv6 network written over IPv4-mapped addresses would never
// match anyone. As HAProxy does, such a network is taken for the IPv4 clients it names: one
// inside ::ffff:0:0/96 becomes the IPv4 network it maps, and one holding all of ::ffff:0:0/96
// (`::/0`, `::/80`) also holds every IPv4 client (0.0.0.0/0 is added).

import { isIP } from 'node:net';
import { Lb4Error } from '../errors.js';

/** ::ffff:0:0, the first IPv4-mapped IPv6 address, and the length of its /96 prefix. */
const mappedBase = 0xffffn << 32n;
const mappedPrefix = 96;

/** An address's bits as one number (`family` from isIP: 4 or 6). */
function addressBits(text: string, family: 4 | 6): bigint {
  if (family === 4) return text.split('.').reduce((bits, octet) => (bits << 8n) | BigInt(Number(octet)), 0n);
  // A trailing dotted quad (::ffff:1.2.3.4) is the last two groups.
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  const hex = dotted ? `${dotted[1]}${(addressBits(dotted[2], 4) >> 16n).toString(16)}:${(addressBits(dotted[2], 4) & 0xffffn).toString(16)}` : text;
  const [head, tail] = hex.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const written = [...groups(head), ...(tail === undefined ? [] : [...Array(8 - groups(head).length - groups(tail).length).fill('0'), ...groups(tail)])];
  return written.reduce((bits, group) => (bits << 16n) | BigInt(parseInt(group, 16)), 0n);
}

/** The address with these bits, written the usual short way. */
function formatAddress(bits: bigint, family: 4 | 6): string {
  const parts = (count: number, width: bigint, mask: bigint) => Array.from({ length: count }, (_, i) => (bits >> (width * BigInt(count - 1 - i))) & mask);
  if (family === 4) return parts(4, 8n, 0xffn).join('.');
  if (bits >> 32n === 0xffffn) return `::ffff:${formatAddress(bits & 0xffffffffn, 4)}`;
  // The URL parser writes an IPv6 address in its RFC 5952 form (the longest run of zeros as ::).
  return new URL(`http://[${parts(8, 16n, 0xffffn).map((g) => g.toString(16)).join(':')}]`).hostname.slice(1, -1);
}

/** The bits of a /prefix network mask over `width` bits. */
const maskOf = (prefix: number, width: number): bigint => ((1n << BigInt(prefix)) - 1n) << BigInt(width - prefix);

/**
 * `10.0.0.0/8` as written, or a bare address as its single-host network (`/32`, `/128`); an
 * IPv6 network over IPv4-mapped addresses as the IPv4 network(s) it names (see above).
 */
function networksFrom(raw: unknown, field: string): string[] {
  if (typeof raw !== 'string') throw new Lb4Error('LB4_INVALID_OPTION', `must be a network such as 10.0.0.0/8, got ${JSON.stringify(raw)}`, { field });
  const text = raw.trim();
  const m = /^([^/%]+)(?:\/(\d{1,3}))?$/.exec(text);
  const family = m ? isIP(m[1]) : 0;
  if (!m || (family !== 4 && family !== 6)) throw new Lb4Error('LB4_INVALID_OPTION', `"${raw}" is not a network such as 10.0.0.0/8 or 2001:db8::/32`, { field });
  const width = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? width : Number(m[2]);
  if (prefix > width) throw new Lb4Error('LB4_INVALID_OPTION', `"${raw}": prefix /${prefix} is longer than an IPv${family} address (/${width})`, { field });
  const bits = addressBits(m[1], family);
  const network = bits & maskOf(prefix, width);
  // `127.0.0.1/0` is the whole Internet, not one host: a typo the engine would take silently.
  if (network !== bits) throw new Lb4Error('LB4_INVALID_OPTION', `${text} has host bits set: did you mean ${formatAddress(network, family)}/${prefix}?`, { field });
  if (family === 6 && prefix >= mappedPrefix && (network & maskOf(mappedPrefix, 128)) === mappedBase) {
    return [`${formatAddress(network & 0xffffffffn, 4)}/${prefix - mappedPrefix}`];
  }
  if (family === 6 && prefix <= mappedPrefix && (mappedBase & maskOf(prefix, 128)) === network) return [`${m[1]}/${prefix}`, '0.0.0.0/0'];
  return [`${m[1]}/${prefix}`];
}

/** One network, as the engine takes it (the IPv4 network for an IPv4-mapped one). */
export function parseNetwork(raw: unknown, field: string): string {
  return networksFrom(raw, field)[0];
}

/** A list of networks (or one), each named by its place in `field`; a network the list already holds is not repeated. */
export function parseNetworks(raw: unknown, field: string): readonly string[] {
  if (raw === undefined) return Object.freeze([]);
  const list = Array.isArray(raw) ? raw : [raw];
  const networks = list.flatMap((n, i) => networksFrom(n, Array.isArray(raw) ? `${field}[${i}]` : field));
  return Object.freeze([...new Set(networks)]);
}

/** Which address families a list holds networks of. */
export function networkFamilies(networks: readonly string[]): Set<4 | 6> {
  return new Set(networks.map((n) => (isIP(n.split('/')[0]) === 4 ? 4 : 6)));
}
