// The kernel's connection tracking table, read and pruned with the `conntrack` command line
// (Debian package `conntrack`, from netfilter's conntrack-tools). lb4 asks it rarely (a
// `/connections` request, a drain timeout, the open-connection gauge), so one process per
// question costs little, and it keeps a netlink conntrack client out of the addon: the tool
// already speaks every kernel's version of that protocol.
//
// A NAT listener's connection is an entry whose original direction goes to the listener
// (client -> listener address:port) and whose reply direction comes from a backend
// (backend -> client or lb4's masquerade address).

import { execFile } from 'node:child_process';

export interface ConntrackEntry {
  readonly family: 'ipv4' | 'ipv6';
  readonly protocol: 'tcp' | 'udp';
  /** TCP state (ESTABLISHED, TIME_WAIT, ...); empty for UDP. */
  readonly state: string;
  readonly client: { readonly ip: string; readonly port: number };
  /** Where the client connected: the listener's address. */
  readonly listener: { readonly ip: string; readonly port: number };
  /** Who answers: the backend. */
  readonly backend: { readonly ip: string; readonly port: number };
  /** Bytes each way when the kernel counts them (`net.netfilter.nf_conntrack_acct`), else 0. */
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  readonly packetsToBackend: number;
  readonly packetsToClient: number;
  readonly id: number;
  /** The entry has seen a reply (not `[UNREPLIED]`). */
  readonly replied: boolean;
}

/** Parses `conntrack -L -o extended,id` output; lines it cannot read are skipped. */
export function parseConntrack(text: string): ConntrackEntry[] {
  const out: ConntrackEntry[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words.length < 6) continue;
    const [family, , protocol] = words;
    if ((family !== 'ipv4' && family !== 'ipv6') || (protocol !== 'tcp' && protocol !== 'udp')) continue;
    const state = protocol === 'tcp' && /^[A-Z_]+$/.test(words[5]) ? words[5] : '';
    // Each direction repeats src= dst= sport= dport= (and packets= bytes= with accounting).
    const tuples: Array<Record<string, string>> = [];
    let id = 0;
    for (const w of words) {
      const eq = w.indexOf('=');
      if (eq < 0) continue;
      const key = w.slice(0, eq);
      const value = w.slice(eq + 1);
      if (key === 'id') id = Number(value);
      if (key === 'src') tuples.push({});
      if (tuples.length > 0 && tuples.length <= 2) tuples[tuples.length - 1][key] = value;
    }
    if (tuples.length < 2) continue;
    const [orig, reply] = tuples;
    out.push({
      family,
      protocol,
      state,
      client: { ip: orig.src, port: Number(orig.sport) },
      listener: { ip: orig.dst, port: Number(orig.dport) },
      backend: { ip: reply.src, port: Number(reply.sport) },
      bytesToBackend: Number(orig.bytes ?? 0),
      bytesToClient: Number(reply.bytes ?? 0),
      packetsToBackend: Number(orig.packets ?? 0),
      packetsToClient: Number(reply.packets ?? 0),
      id,
      replied: !line.includes('[UNREPLIED]'),
    });
  }
  return out;
}

/** What to list or delete: a listener's port, and optionally its address and one backend. */
export interface ConntrackFilter {
  readonly protocol: 'tcp' | 'udp';
  readonly family: 'ipv4' | 'ipv6';
  readonly listenerPort: number;
  readonly listenerIp?: string;
  readonly backend?: { readonly ip: string; readonly port: number };
}

function filterArgs(f: ConntrackFilter): string[] {
  const args = ['-f', f.family, '-p', f.protocol, '--orig-port-dst', String(f.listenerPort)];
  if (f.listenerIp) args.push('--orig-dst', f.listenerIp);
  if (f.backend) args.push('--reply-src', f.backend.ip, '--reply-port-src', String(f.backend.port));
  return args;
}

function run(binary: string, args: string[]): Promise<{ stdout: string; stderr: string; failed: boolean }> {
  return new Promise((resolve) => {
    execFile(binary, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => resolve({ stdout, stderr, failed: err !== null }));
  });
}

export class Conntrack {
  readonly #binary: string;

  constructor(binary = 'conntrack') {
    this.#binary = binary;
  }

  /** The entries matching `filter`. */
  async list(filter: ConntrackFilter): Promise<ConntrackEntry[]> {
    const r = await run(this.#binary, ['-L', ...filterArgs(filter), '-o', 'extended,id']);
    return parseConntrack(r.stdout);
  }

  /** Deletes the entries matching `filter`; resolves with how many the kernel dropped. */
  async delete(filter: ConntrackFilter): Promise<number> {
    // conntrack exits 1 when nothing matched; the count it prints is the answer either way.
    const r = await run(this.#binary, ['-D', ...filterArgs(filter)]);
    const m = /(\d+) flow entries have been deleted/.exec(r.stderr + r.stdout);
    return m ? Number(m[1]) : 0;
  }
}
