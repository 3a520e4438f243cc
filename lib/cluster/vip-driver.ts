// How a node puts a virtual IP on its interface and takes it off: the VipDriver interface the
// cluster runner calls, and its real implementation over the addon's `vip` functions
// (native/core/vip: rtnetlink for the address, gratuitous ARP or an unsolicited neighbour
// advertisement to announce it). Tests give the runner a fake driver instead.
//
// The addon is loaded on first use, not on import, so a program (or a test) that only needs the
// interface never needs the addon built.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { osErrorMessage } from '../os-errors.js';
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

/** A failure as the addon's vip functions return it: errno-style, never thrown. */
export interface NativeVipFailure {
  errno: number;
  syscall: string;
  /** The kernel's own explanation (netlink extended ack), when it gave one. */
  detail?: string;
}

/** The addon's `vip` object. Each call runs on the JS thread and returns at once. */
export interface NativeVip {
  /** Adds `cidr` ("ip/prefix") to `ifname`; IPv6 without duplicate address detection. */
  add(ifname: string, cidr: string): NativeVipFailure | undefined;
  remove(ifname: string, cidr: string): NativeVipFailure | undefined;
  has(ifname: string, ip: string): boolean | NativeVipFailure;
  announce(ifname: string, ip: string, count: number): NativeVipFailure | undefined;
}

const isFailure = (v: unknown): v is NativeVipFailure => typeof v === 'object' && v !== null && typeof (v as NativeVipFailure).errno === 'number';

// The same search lib/native.ts does: the package root holds build/Release or build/Debug.
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'lb4') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('lb4: cannot find the lb4 package root');
    dir = parent;
  }
}

let nativeVip: NativeVip | undefined;

/** The addon's vip functions, loaded on first call. */
export function loadNativeVip(): NativeVip {
  if (nativeVip) return nativeVip;
  const root = packageRoot();
  const candidates = ['build/Release/lb4.node', 'build/Debug/lb4.node'].map((p) => join(root, p));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`lb4: the native addon is not built (looked for ${candidates.join(', ')}); run "npm run build"`);
  const addon = createRequire(import.meta.url)(found) as { vip?: NativeVip };
  if (!addon.vip) throw new Error('lb4: the native addon has no vip functions; rebuild it ("npm run build")');
  nativeVip = addon.vip;
  return nativeVip;
}

/** A VIP failure as an error shaped like Node's system errors (and lib/native.ts systemError). */
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
