// Runs `nft`, the nftables command line, for lb4's NAT data plane. Every change goes in as one
// file on stdin (`nft -f -`), which the kernel applies as one transaction: all of it or, when any
// line is refused, none of it. Reading uses nft's JSON output. The binary is a parameter so tests
// can put a fake `nft` in its place.

import { execFile, spawnSync } from 'node:child_process';
import { Lb4Error } from '../errors.js';

export interface NftCounter {
  readonly packets: number;
  readonly bytes: number;
}

/** The first line of nft's complaint, which names the file line and the problem. */
function firstError(stderr: string): string {
  const line = stderr.split('\n').find((l) => /error/i.test(l)) ?? stderr.split('\n')[0] ?? '';
  return line.trim().slice(0, 300);
}

export class NftRunner {
  readonly #binary: string;

  constructor(binary = 'nft') {
    this.#binary = binary;
  }

  /** Applies a rule set file as one transaction; rejects with nft's own error and changes nothing. */
  apply(text: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = execFile(this.#binary, ['-f', '-'], { maxBuffer: 1 << 20 }, (err, _stdout, stderr) => {
        if (err) reject(new Lb4Error('LB4_NAT_RULES', `nft refused lb4's rules (nothing was changed): ${firstError(stderr) || err.message}`));
        else resolve();
      });
      child.stdin?.end(text);
    });
  }

  /** The same, waiting here: for start-up, where the listeners must not serve before their rules exist. */
  applySync(text: string): void {
    const r = spawnSync(this.#binary, ['-f', '-'], { input: text, encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.error) throw new Lb4Error('LB4_NAT_RULES', `cannot run ${this.#binary}: ${r.error.message}`);
    if (r.status !== 0) throw new Lb4Error('LB4_NAT_RULES', `nft refused lb4's rules (nothing was changed): ${firstError(r.stderr)}`);
  }

  /** Runs nft with these arguments; its stdout, or an error with its first complaint. */
  runSync(args: readonly string[]): string {
    const r = spawnSync(this.#binary, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.error) throw new Lb4Error('LB4_NAT_RULES', `cannot run ${this.#binary}: ${r.error.message}`);
    if (r.status !== 0) throw new Lb4Error('LB4_NAT_RULES', `${this.#binary} ${args.join(' ')}: ${firstError(r.stderr)}`);
    return r.stdout;
  }

  /** Whether `table` exists (family inet). */
  hasTable(table: string): boolean {
    const r = spawnSync(this.#binary, ['list', 'table', 'inet', table], { encoding: 'utf8', maxBuffer: 64 << 20 });
    return r.status === 0;
  }

  /** The named counters of `table`, by name; empty when the table is not there. */
  counters(table: string): Map<string, NftCounter> {
    const out = new Map<string, NftCounter>();
    const r = spawnSync(this.#binary, ['-j', 'list', 'counters', 'table', 'inet', table], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) return out;
    let parsed: { nftables?: Array<{ counter?: { name: string; packets: number; bytes: number } }> };
    try {
      parsed = JSON.parse(r.stdout);
    } catch {
      return out; // not nft's JSON: report no counters rather than fail a stats read
    }
    for (const item of parsed.nftables ?? []) {
      if (item.counter) out.set(item.counter.name, { packets: item.counter.packets, bytes: item.counter.bytes });
    }
    return out;
  }
}
