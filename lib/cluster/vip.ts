// Virtual IPs as people write them, `ADDR/PREFIX[,dev=IFACE]` (IPv4 or IPv6), and the interface
// each goes on: the one named, or else the one whose own subnet contains the address, the way
// keepalived's users expect `virtual_ipaddress` to land next to the node's own address.

import { isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { Lb4Error } from '../errors.js';

/** A virtual IP as written: the interface may still be unknown. */
export interface VipSpec {
  readonly ip: string;
  readonly prefix: number;
  readonly dev?: string;
}

/** A virtual IP with its interface: what the VIP driver adds, removes and announces. */
export interface Vip {
  /** Canonical text: dotted quad, or lower-case compressed IPv6. */
  readonly ip: string;
  readonly prefix: number;
  readonly dev: string;
  readonly family: 4 | 6;
}

// Linux interface names: at most 15 bytes, no '/', no white space, not "." or "..".
const ifnamePattern = /^(?!\.{1,2}$)[^\s/:,=]{1,15}$/;

/** The 4 or 16 bytes of a numeric address; undefined when `ip` is not one. */
export function ipBytes(ip: string): Buffer | undefined {
  const family = isIP(ip);
  if (family === 4) return Buffer.from(ip.split('.').map(Number));
  if (family !== 6) return undefined;
  let text = ip;
  let tail: number[] = [];
  const v4 = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    tail = v4[1].split('.').map(Number);
    text = `${text.slice(0, v4.index)}:0:0`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const words = (s: string) => (s === '' ? [] : s.split(':').map((w) => parseInt(w, 16)));
  const front = words(head);
  const back = rest === undefined ? [] : words(rest);
  const all = [...front, ...new Array(8 - front.length - back.length).fill(0), ...back];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  if (tail.length) Buffer.from(tail).copy(out, 12);
  return out;
}

/** The canonical text of an address (IPv6 compressed, lower case) as the kernel prints it. */
export function canonicalIp(ip: string): string {
  const bytes = ipBytes(ip);
  if (!bytes) throw new TypeError(`"${ip}" is not a numeric IP address`);
  if (bytes.length === 4) return [...bytes].join('.');
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  // The longest run of two or more zero words becomes "::" (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Whether `ip` lies in `network/prefix` (same family). */
export function inSubnet(ip: string, network: string, prefix: number): boolean {
  const a = ipBytes(ip);
  const b = ipBytes(network);
  if (!a || !b || a.length !== b.length || prefix > a.length * 8) return false;
  for (let bit = 0; bit < prefix; bit += 8) {
    const mask = prefix - bit >= 8 ? 0xff : (0xff << (8 - (prefix - bit))) & 0xff;
    if ((a[bit / 8] & mask) !== (b[bit / 8] & mask)) return false;
  }
  return true;
}

/** Parses `ADDR/PREFIX[,dev=IFACE]`. The prefix is required: it decides the kernel's route. */
export function parseVipSpec(value: unknown, field: string): VipSpec {
  if (typeof value !== 'string' || value.trim() === '') throw new Lb4Error('LB4_INVALID_ADDRESS', 'must be a virtual IP such as 192.0.2.10/24 or 192.0.2.10/24,dev=eth0', { field });
  const [cidr, ...options] = value.trim().split(',');
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${cidr}" is not ADDR/PREFIX (e.g. 192.0.2.10/24 or 2001:db8::10/64)`, { field });
  const family = isIP(m[1]);
  if (family === 0) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${m[1]}" is not a numeric IPv4 or IPv6 address`, { field });
  if (m[1].includes('%')) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${m[1]}": scoped IPv6 addresses (with a %zone) are not supported; the interface is given with dev=`, { field });
  const prefix = Number(m[2]);
  const max = family === 4 ? 32 : 128;
  if (prefix < 1 || prefix > max) throw new Lb4Error('LB4_INVALID_ADDRESS', `prefix /${prefix} is out of range for an IPv${family} address (1-${max})`, { field });
  let dev: string | undefined;
  for (const option of options) {
    const [name, v] = option.split('=', 2);
    if (name !== 'dev' || v === undefined) throw new Lb4Error('LB4_INVALID_ADDRESS', `unknown VIP option "${option}" (the only one is dev=IFACE)`, { field });
    if (!ifnamePattern.test(v)) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${v}" is not an interface name`, { field });
    dev = v;
  }
  return dev === undefined ? { ip: canonicalIp(m[1]), prefix } : { ip: canonicalIp(m[1]), prefix, dev };
}

/**
 * Gives a VIP its interface: the one named, else the one with an address of its own (not the
 * VIP itself) whose subnet contains the VIP. Throws when none or several match: guessing wrong
 * would announce the address on a link where no client can reach it.
 */
export function resolveVip(spec: VipSpec, field: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): Vip {
  const family = isIP(spec.ip) === 6 ? 6 : 4;
  if (spec.dev !== undefined) return { ip: spec.ip, prefix: spec.prefix, dev: spec.dev, family };
  const matches = Object.entries(interfaces)
    .filter(([, infos]) => (infos ?? []).some((i) => !i.internal && i.family === `IPv${family}` && canonicalIp(i.address) !== spec.ip && prefixOf(i) !== undefined && inSubnet(spec.ip, i.address, prefixOf(i)!)))
    .map(([name]) => name);
  if (matches.length !== 1) {
    const why = matches.length === 0 ? 'no interface has an address in its subnet' : `several interfaces have its subnet (${matches.join(', ')})`;
    throw new Lb4Error('LB4_INVALID_ADDRESS', `cannot tell which interface ${spec.ip}/${spec.prefix} goes on: ${why}; add ",dev=IFACE"`, { field });
  }
  return { ip: spec.ip, prefix: spec.prefix, dev: matches[0], family };
}

function prefixOf(info: NetworkInterfaceInfo): number | undefined {
  const cidr = info.cidr;
  if (!cidr) return undefined;
  return Number(cidr.slice(cidr.lastIndexOf('/') + 1));
}

/** `ip/prefix`, as the VIP driver and on-state-change receive it. */
export function formatVip(vip: { ip: string; prefix: number }): string {
  return `${vip.ip}/${vip.prefix}`;
}
