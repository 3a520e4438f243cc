// Whether a backend address is one of lb4's own listeners. A backend that is lb4 itself sends
// every flow back into lb4, which picks the same backend again: one client then opens flows until
// descriptors run out. Static backends are refused for it (lib/config/validate.ts) and DNS answers
// that give it are dropped (lib/discovery/dns-resolve.ts).
//
// A listener on a given address matches that address and port. A listener on every interface
// (`:PORT`, `0.0.0.0`, `::`) matches every address of this host on its port: the interfaces'
// addresses, and all of 127.0.0.0/8 and ::1, which Linux delivers locally whatever is configured.
// Only listeners of the backend's protocol count: a TCP backend on a UDP listener's port is another
// socket.

import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Protocol } from './enums.js';

/** A listener as far as a loop is concerned. */
export interface OwnListener {
  readonly ip: string;
  readonly port: number;
  readonly protocol: Protocol;
}

/** `::ffff:a.b.c.d` is the IPv4 address; everything else as it is, lower case. */
function plain(ip: string): string {
  const lower = ip.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  return mapped ? mapped[1] : lower;
}

const isWildcard = (ip: string) => ip === '0.0.0.0' || ip === '::';

/** This host's addresses now (the interfaces' and the loopback ones). */
function isLocal(ip: string): boolean {
  if (ip === '::1' || (isIP(ip) === 4 && ip.startsWith('127.'))) return true;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (plain(a.address) === ip) return true;
  }
  return false;
}

/**
 * The listener `ip:port` (a backend of `protocol`) would reach, or undefined. Listeners still on
 * port 0 (not bound yet) match nothing: their port is not known.
 */
export function ownListenerAt<L extends OwnListener>(ip: string, port: number, protocol: Protocol, listeners: readonly L[]): L | undefined {
  const address = plain(ip);
  let local: boolean | undefined;
  for (const l of listeners) {
    if (l.port === 0 || l.port !== port || l.protocol !== protocol) continue;
    if (plain(l.ip) === address) return l;
    if (isWildcard(plain(l.ip)) && (local ??= isLocal(address))) return l;
  }
  return undefined;
}
