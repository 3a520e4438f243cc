// How a node puts a virtual IP on its interface and takes it off: the VipDriver interface the
// cluster runner calls, and its real implementation over the addon's `vip` functions
// (native/core/vip: rtnetlink for the address, gratuitous ARP or an unsolicited neighbour
// advertisement to announce it). Tests give the runner a fake driver instead.
//
// The addon is loaded on first use, not on import, so a program (or a test) that only needs the
// interface never needs the addon built.

import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { addon } from '../engine/addon.js';
import type { NativeVip, NativeVipFailure } from '../engine/native-types.js';
import { Lb4Error } from '../errors.js';
import { osErrorMessage } from '../engine/system-errors.js';
import { formatVip, type Vip } from './vip.js';

/**
 * What the runner needs to move an address. Every method is synchronous (an rtnetlink request
 * and its ack take microseconds) and throws a Node-style system error (`code`, `errno`,
 * `syscall`) on failure.
 */
export interface VipDriver {
  /** Adds the address to its interface; false when it was there already. */
  add(vip: Vip): boolean;
  /** Removes the address from its interface; false when it was not there. */
  remove(vip: Vip): boolean;
  /** Whether the interface has the address now. */
  has(vip: Vip): boolean;
  /**
   * Tells the link the address has moved here: `count` gratuitous ARP request/reply pairs
   * (IPv4) or unsolicited neighbour advertisements (IPv6), sent at once.
   */
  announce(vip: Vip, count: number): void;
}

const isFailure = (v: unknown): v is NativeVipFailure => typeof v === 'object' && v !== null && typeof (v as NativeVipFailure).errno === 'number';

/** The addon's vip functions (loading the addon on first use). */
export function loadNativeVip(): NativeVip {
  return addon().vip;
}

/** A VIP failure as an error shaped like Node's system errors (and lib/engine/system-errors.ts systemError). */
export function vipError(failure: NativeVipFailure, vip: Vip, what: string): NodeJS.ErrnoException & { address: string; dev: string } {
  const code = getSystemErrorName(-failure.errno);
  const detail = failure.detail ? `: ${failure.detail}` : '';
  const err = new Error(`${what}: ${failure.syscall} ${code} ${formatVip(vip)} dev ${vip.dev} (${osErrorMessage(failure.errno)})${detail}`) as NodeJS.ErrnoException & { address: string; dev: string };
  err.code = code;
  err.errno = -failure.errno;
  err.syscall = failure.syscall;
  err.address = formatVip(vip);
  err.dev = vip.dev;
  return err;
}

function fail(failure: NativeVipFailure, vip: Vip, what: string): never {
  throw vipError(failure, vip, what);
}

/** The real driver: rtnetlink and raw sockets, which need CAP_NET_ADMIN and CAP_NET_RAW. */
export class NativeVipDriver implements VipDriver {
  readonly #vip: NativeVip;

  constructor(native: NativeVip = loadNativeVip()) {
    this.#vip = native;
  }

  add(vip: Vip): boolean {
    const r = this.#vip.add(vip.dev, formatVip(vip));
    if (r === undefined) return true;
    // EEXIST: the address is there already (left by a crash, or added by hand): it is held.
    if (r.errno === constants.errno.EEXIST) return false;
    return fail(r, vip, 'cannot add virtual IP');
  }

  remove(vip: Vip): boolean {
    const r = this.#vip.remove(vip.dev, formatVip(vip));
    if (r === undefined) return true;
    // EADDRNOTAVAIL: it was not there, which is what removing it was for.
    if (r.errno === constants.errno.EADDRNOTAVAIL) return false;
    return fail(r, vip, 'cannot remove virtual IP');
  }

  has(vip: Vip): boolean {
    const r = this.#vip.has(vip.dev, vip.ip);
    if (isFailure(r)) return fail(r, vip, 'cannot list addresses');
    return r;
  }

  announce(vip: Vip, count: number): void {
    const r = this.#vip.announce(vip.dev, vip.ip, count);
    if (r !== undefined) fail(r, vip, vip.family === 4 ? 'cannot send gratuitous ARP' : 'cannot send neighbour advertisement');
  }
}

/**
 * Throws an Lb4Error naming the VIP when its interface does not exist. A node that started anyway
 * would win the election and tell its peer it is active while no address moved: the peer would
 * stand by, and neither node would serve the VIP.
 */
export function checkVipInterfaces(driver: VipDriver, vips: readonly Vip[]): void {
  vips.forEach((vip, i) => {
    try {
      driver.has(vip);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENODEV') return;
      throw new Lb4Error('LB4_INVALID_ADDRESS', `interface ${vip.dev} of virtual IP ${formatVip(vip)} does not exist`, { field: `cluster.vips[${i}]`, cause: err });
    }
  });
}
