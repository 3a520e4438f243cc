// The Maglev table of a NAT listener: the engine's own (native/core/balance/maglev.cc), asked
// from the addon rather than computed by a TypeScript copy, so a NAT listener and a proxy
// listener with the same backends, and the two nodes of a pair, hold the same table.

import { addon } from '../engine/addon.js';
import type { NatBackend } from './render.js';

/** A backend the table is built from: its stable id (`<listener>/<backend>`) and weight. */
export interface MaglevMemberInput extends NatBackend {
  readonly id: string;
}

/** Entries index `members`; empty when no member has a weight. */
export type MaglevBuilder = (ids: string[], weights: number[]) => ArrayLike<number>;

export const nativeMaglev: MaglevBuilder = (ids, weights) => addon().maglevTable(ids, weights);

/**
 * The table over `members`, each entry an index into `members`. Members without a weight get no
 * entry; the engine builds its table the same way (a backend that takes no new flows has weight 0).
 */
export function maglevTable(members: readonly MaglevMemberInput[], build: MaglevBuilder = nativeMaglev): ArrayLike<number> {
  return build(members.map((m) => m.id), members.map((m) => m.weight));
}
