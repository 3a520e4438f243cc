// The nftables rule set of lb4's kernel NAT data plane, rendered from plain data by a pure
// function (tested against golden text). The text is one `nft -f` transaction that deletes lb4's
// own table and defines it again, so the kernel switches from the old rules to the new ones at
// once: a packet sees one rule set or the other, never half of each, and a file the kernel refuses
// changes nothing.
//
// Shape of the table (docs/design.md section 4b):
// - `prerouting` (remote clients) and `output` (clients on this host) NAT chains jump to
//   `listeners`, which sends a listener's new connections to its pick chain per address family.
//   NAT chains see only the first packet of a connection; conntrack rewrites the rest.
// - A pick chain chooses a backend chain with an anonymous verdict map: `numgen inc` over the
//   weights for round robin, `jhash` of the client address into the Maglev table for maglev.
//   The Maglev map is anonymous because nft 1.0.6 cannot print a named map declared
//   `typeof jhash ...` (it crashes listing the rule set), and an operator must be able to list it.
// - A backend chain counts the new connection and DNATs it.
// - `postrouting` masquerades the connections of `snat: masquerade` listeners.
// - Filter chains on forward, input and output count packets and bytes each way per backend.

import { isIP } from 'node:net';
import { canonicalIp } from '../cluster/vip.js';

/** A backend as the rules see it. `key` is the registry's key, which names its counters. */
export interface NatBackend {
  readonly key: number;
  readonly ip: string;
  readonly port: number;
  /** The weight new connections follow (0: none; drained and down backends are not here). */
  readonly weight: number;
}

export interface NatListenerRules {
  readonly slot: number;
  readonly name: string;
  readonly protocol: 'tcp' | 'udp';
  /** The address clients connect to; null: every address of this host. */
  readonly ip: string | null;
  readonly port: number;
  readonly snat: 'none' | 'masquerade';
  /** Every backend whose connections may still run: counted, and masqueraded when asked. */
  readonly backends: readonly NatBackend[];
  /** Per address family, how new connections pick among the backends that take them. */
  readonly picks: readonly NatPick[];
}

export type NatFamily = 'ipv4' | 'ipv6';

export type NatPick =
  | { readonly family: NatFamily; readonly kind: 'roundrobin'; readonly backends: readonly NatBackend[] }
  /** `table[i]` indexes `backends`: the engine's Maglev table for them (lib/nat/maglev.ts). */
  | { readonly family: NatFamily; readonly kind: 'maglev'; readonly backends: readonly NatBackend[]; readonly table: ArrayLike<number> };

/** The counter names of a backend, as `nft list counters` shows them. */
export const counterNamesOf = (key: number) => ({ flows: `flows_${key}`, toBackend: `to_backend_${key}`, toClient: `to_client_${key}` }) as const;

export const familyOf = (ip: string): NatFamily => (ip.includes(':') ? 'ipv6' : 'ipv4');
const ipWord = (family: NatFamily) => (family === 'ipv4' ? 'ip' : 'ip6');
const hostPort = (b: NatBackend) => (familyOf(b.ip) === 'ipv4' ? `${b.ip}:${b.port}` : `[${b.ip}]:${b.port}`);
const backendChain = (slot: number, key: number) => `backend_${slot}_${key}`;
const pickChain = (slot: number, family: NatFamily) => `pick_${slot}_${family === 'ipv4' ? 'v4' : 'v6'}`;

/** An address as the kernel compares it; one that is not an address goes as written, for nft to name. */
const sameAddress = (ip: string) => (isIP(ip) ? canonicalIp(ip) : ip);

/** The listener takes every address of this host (`:80`, `[::]:80`, `0.0.0.0:80`). */
const onEveryAddress = (l: NatListenerRules) => l.ip === null || l.ip === '::' || l.ip === '0.0.0.0';

/** `ip daddr 10.0.0.1` for a listener on one address; `fib daddr type local` for every address. */
function listenerMatch(l: NatListenerRules, family: NatFamily): string {
  if (onEveryAddress(l)) return 'fib daddr type local';
  return `${ipWord(family)} daddr ${l.ip}`;
}

/** The connection was DNATed from this listener: the match shared by counting and masquerade. */
function fromListener(l: NatListenerRules, family: NatFamily): string {
  const daddr = onEveryAddress(l) ? '' : ` ct original ${ipWord(family)} daddr ${l.ip}`;
  return `meta nfproto ${family} meta l4proto ${l.protocol} ct status dnat${daddr} ct original proto-dst ${l.port}`;
}

function pickRule(l: NatListenerRules, pick: NatPick): string {
  if (pick.kind === 'roundrobin') {
    // Each backend owns a run of `weight` numbers of the generator's cycle.
    let next = 0;
    const elements = pick.backends.map((b) => {
      const first = next;
      next += b.weight;
      const range = b.weight === 1 ? `${first}` : `${first}-${next - 1}`;
      return `${range} : goto ${backendChain(l.slot, b.key)}`;
    });
    return `numgen inc mod ${next} vmap { ${elements.join(', ')} }`;
  }
  const elements = Array.from(pick.table, (index, entry) => `${entry} : goto ${backendChain(l.slot, pick.backends[index].key)}`);
  return `jhash ${ipWord(pick.family)} saddr mod ${pick.table.length} vmap { ${elements.join(', ')} }`;
}

/**
 * The counting rules: per address family, protocol and listener shape (one address or every
 * address), one rule whose counter is looked up in a map keyed by the packet's direction, the
 * connection's listener (conntrack's original destination) and its backend (conntrack's reply
 * source): `original` packets count to the backend, `reply` packets to the client. A packet walks
 * at most a handful of rules however many listeners and backends there are, and every packet of
 * the host pays for them, lb4's or not (`ct status dnat` first turns the others away at once).
 * One lookup per packet, with every field read from conntrack, not two (one per direction, keyed
 * by the packet's header): 13-19 % of keep-alive requests/s on loopback went to counting with
 * two, measured against the same table without counting.
 */
interface Group {
  readonly family: NatFamily;
  readonly protocol: string;
  readonly anyAddress: boolean;
  /** One-address listeners only: `ip . port` of each, for the return that keeps them out of the every-address map. */
  readonly listeners: Set<string>;
  /** `listener . backend` key to the backend's counter names. */
  readonly counters: Map<string, ReturnType<typeof counterNamesOf>>;
}

function countRules(all: ReadonlyArray<{ l: NatListenerRules; b: NatBackend }>): { sets: string[]; rules: string[] } {
  const groups = new Map<string, Group>();
  for (const { l, b } of all) {
    const family = familyOf(b.ip);
    const anyAddress = onEveryAddress(l);
    const id = `${family} ${l.protocol} ${anyAddress}`;
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { family, protocol: l.protocol, anyAddress, listeners: new Set(), counters: new Map() }));
    if (!anyAddress) g.listeners.add(`${sameAddress(l.ip!)} . ${l.port}`);
    // The kernel compares addresses, not their spelling: `fd20::11`, `FD20::11` and `fd20:0::11`
    // are one key, and a map given it twice refuses the whole file ("File exists").
    const key = `${anyAddress ? '' : `${sameAddress(l.ip!)} . `}${l.port} . ${sameAddress(b.ip)} . ${b.port}`;
    // One listener cannot name one address twice in the kernel's view; should two entries
    // (an old one still draining and its successor, or one address written two ways) share it,
    // the first one counts.
    if (!g.counters.has(key)) g.counters.set(key, counterNamesOf(b.key));
  }
  // A connection to a one-address listener also matches the every-address map when the two
  // share a port and a backend: its rules go first and end with a return for its listeners, so
  // its bytes count once, against the listener the client addressed.
  const sameKind = (g: Group) => `${g.family} ${g.protocol}`;
  const kinds = [...new Set([...groups.values()].map(sameKind))];
  const ordered = [...groups.values()].sort((a, b) => kinds.indexOf(sameKind(a)) - kinds.indexOf(sameKind(b)) || Number(a.anyAddress) - Number(b.anyAddress));
  const sets: string[] = [];
  const rules: string[] = [];
  for (const g of ordered) {
    const ip = ipWord(g.family);
    const listener = `${g.anyAddress ? '' : `ct original ${ip} daddr . `}ct original proto-dst`;
    const elements = [...g.counters].flatMap(([key, names]) => [`original . ${key} : "${names.toBackend}"`, `reply . ${key} : "${names.toClient}"`]);
    const head = `ct status dnat meta nfproto ${g.family} meta l4proto ${g.protocol}`;
    rules.push(`    ${head} counter name ct direction . ${listener} . ct reply ${ip} saddr . ct reply proto-src map { ${elements.join(', ')} }`);
    if (!g.anyAddress && ordered.some((o) => o.anyAddress && sameKind(o) === sameKind(g))) {
      // A named set with its type spelled out, not an anonymous one: nft 1.0.6 lists an
      // anonymous `ct original ip daddr . ct original proto-dst { 10.0.0.1 . 80 }` as
      // `{ 10.0.0.1 }`, which no longer loads (nor says what the rule does).
      const name = `one_address_${g.family}_${g.protocol}`;
      const type = g.family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr';
      sets.push(`  set ${name} {`, `    type ${type} . inet_service`, `    elements = { ${[...g.listeners].join(', ')} }`, '  }');
      rules.push(`    ${head} ${listener} @${name} return`);
    }
  }
  return { sets, rules };
}

/** The picks that can choose something: a family without a backend gets no rule (the held socket answers). */
const livePicks = (l: NatListenerRules) => l.picks.filter((p) => (p.kind === 'roundrobin' ? p.backends.some((b) => b.weight > 0) : p.table.length > 0));

/** The body of lb4's table (without the table line itself). */
function tableBody(listeners: readonly NatListenerRules[]): string[] {
  const out: string[] = [];
  const all = listeners.flatMap((l) => l.backends.map((b) => ({ l, b })));
  for (const { b } of all) {
    for (const name of Object.values(counterNamesOf(b.key))) out.push(`  counter ${name} {`, '  }');
  }
  for (const { l, b } of all) {
    const family = familyOf(b.ip);
    out.push(`  chain ${backendChain(l.slot, b.key)} {`, `    meta l4proto ${l.protocol} counter name "${counterNamesOf(b.key).flows}" dnat ${ipWord(family)} to ${hostPort(b)}`, '  }');
  }
  for (const l of listeners) {
    for (const pick of livePicks(l)) {
      const usable = pick.kind === 'roundrobin' ? { ...pick, backends: pick.backends.filter((b) => b.weight > 0) } : pick;
      out.push(`  chain ${pickChain(l.slot, pick.family)} {`, `    ${pickRule(l, usable)}`, '  }');
    }
  }
  // A listener on one address before those on every address: a client of 10.0.0.1:80 belongs to
  // the `10.0.0.1:80` listener (as the kernel gives a connection to the most specific socket),
  // whatever the order of the config.
  const mostSpecificFirst = [...listeners].sort((a, b) => Number(onEveryAddress(a)) - Number(onEveryAddress(b)));
  /** An every-address listener (that `also` accepts) whose match takes this one's connections too. */
  const everyAddressTwin = (l: NatListenerRules, also: (m: NatListenerRules) => boolean = () => true) =>
    !onEveryAddress(l) && listeners.some((m) => onEveryAddress(m) && m.protocol === l.protocol && m.port === l.port && also(m));
  out.push('  chain listeners {');
  for (const l of mostSpecificFirst) {
    const picks = livePicks(l);
    for (const pick of picks) {
      out.push(`    meta nfproto ${pick.family} ${listenerMatch(l, pick.family)} ${l.protocol} dport ${l.port} jump ${pickChain(l.slot, pick.family)}`);
    }
    // With no backend taking new connections its clients go to its held socket, not on to an
    // every-address listener with the same port further down.
    if (everyAddressTwin(l)) {
      const family = familyOf(l.ip!);
      if (!picks.some((p) => p.family === family)) out.push(`    meta nfproto ${family} ${listenerMatch(l, family)} ${l.protocol} dport ${l.port} accept`);
    }
  }
  out.push('  }');
  const counting = countRules(all);
  out.push(...counting.sets);
  out.push('  chain count {', ...counting.rules, '  }');
  out.push('  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', '    jump listeners', '  }');
  out.push('  chain output {', '    type nat hook output priority -100; policy accept;', '    jump listeners', '  }');
  out.push('  chain postrouting {', '    type nat hook postrouting priority srcnat; policy accept;');
  // The every-address match also takes a one-address listener's connections to the same port: a
  // one-address listener that keeps client addresses returns first, else a masquerading
  // every-address listener beside it would hide its clients' addresses from its backends.
  for (const l of mostSpecificFirst) {
    if (l.snat !== 'masquerade') {
      if (!everyAddressTwin(l, (m) => m.snat === 'masquerade')) continue;
      for (const family of new Set(l.backends.map((b) => familyOf(b.ip)))) out.push(`    ${fromListener(l, family)} return`);
      continue;
    }
    for (const b of l.backends) {
      const family = familyOf(b.ip);
      // The backend from conntrack's reply tuple, not the packet's header: nft 1.0.6 lists a
      // rule that has `tcp dport` without the `meta l4proto tcp` that `ct original proto-dst`
      // needs, and such a listing does not load again.
      out.push(`    ${fromListener(l, family)} ct reply ${ipWord(family)} saddr ${b.ip} ct reply proto-src ${b.port} masquerade`);
    }
  }
  out.push('  }');
  // Filter hooks see the backend's address on both legs: forward for routed clients, output
  // and input for clients or backends on this host (filter input runs before the reply is
  // un-DNATed). A packet from this host to this host passes output and then input (over lo)
  // still addressed to the backend: output has counted it, so input skips what came over lo.
  for (const hook of ['forward', 'input', 'output']) {
    const body = hook === 'input' ? ['    meta iiftype loopback return', '    jump count'] : ['    jump count'];
    out.push(`  chain count_${hook} {`, `    type filter hook ${hook} priority filter; policy accept;`, ...body, '  }');
  }
  return out;
}

/** Removes lb4's table if it is there: `add` first makes the `delete` valid either way. */
export function renderRemoval(table: string): string {
  return `add table inet ${table}\ndelete table inet ${table}\n`;
}

/**
 * The whole rule set for these listeners as one `nft -f` file: lb4's table removed (if present)
 * and defined again, in one transaction.
 */
export function renderRuleset(table: string, listeners: readonly NatListenerRules[]): string {
  return `${renderRemoval(table)}table inet ${table} {\n${tableBody(listeners).join('\n')}\n}\n`;
}
