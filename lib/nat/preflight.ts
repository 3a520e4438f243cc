// What a host needs before lb4 may run nat listeners, checked once at start so a missing piece
// is one clear error and nothing is half-applied: CAP_NET_ADMIN (nftables and conntrack changes
// need it), the `nft` and `conntrack` commands, and a kernel with nf_tables.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Lb4Error } from '../errors.js';

const CAP_NET_ADMIN = 12;

/** Whether this process holds CAP_NET_ADMIN in its effective set (from /proc/self/status). */
export function hasNetAdmin(status = readFileSync('/proc/self/status', 'utf8')): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m !== null && (BigInt(`0x${m[1]}`) & (1n << BigInt(CAP_NET_ADMIN))) !== 0n;
}

export interface NatTools {
  readonly nft: string;
  readonly conntrack: string;
}

/** Throws LB4_NAT_UNAVAILABLE naming the first thing missing for nat listeners (`names` says which). */
export function checkNatHost(names: readonly string[], tools: NatTools, status?: string): void {
  const which = names.join(', ');
  if (!hasNetAdmin(status)) {
    throw new Lb4Error('LB4_NAT_UNAVAILABLE', `nat (${which}) needs root or CAP_NET_ADMIN, which this process does not have`, { field: 'forward' });
  }
  for (const [tool, pkg] of [[tools.nft, 'nftables'], [tools.conntrack, 'conntrack']] as const) {
    const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
    if (r.error) throw new Lb4Error('LB4_NAT_UNAVAILABLE', `nat (${which}) needs the ${tool} command (Debian package ${pkg}): ${r.error.message}`, { field: 'forward' });
  }
  // Listing needs the nf_tables kernel module; without it nft says "Operation not supported".
  const r = spawnSync(tools.nft, ['list', 'tables'], { encoding: 'utf8' });
  if (r.status !== 0) {
    const why = (r.stderr || '').split('\n').find((l) => l.trim() !== '') ?? `exit ${r.status}`;
    throw new Lb4Error('LB4_NAT_UNAVAILABLE', `nat (${which}) needs nf_tables in the kernel; nft list tables said: ${why.trim()}`, { field: 'forward' });
  }
}
