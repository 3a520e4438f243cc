// Types of anchors.mjs, for the TypeScript tests.

export interface Best {
  system: string;
  value: number;
}
export type Summary = Record<string, Record<string, Record<string, { median: number | null; values?: Array<number | null>; rounds?: number[] }>>>;
/** A ratio taken round by round (null without two rounds to compare). */
export interface RoundRatios {
  perRound: number[];
  min: number;
  max: number;
  median: number;
}
export interface Ratio {
  ratio: number;
  against: string;
  verdict: 'better' | 'worse' | 'tie';
  rounds: RoundRatios | null;
}
/** What a NAT target is measured against (a reference system, or the best anchor). */
export type TargetReference = 'direct' | 'direct-conntrack' | 'kernel-dnat' | 'best anchor';
export interface TargetRow {
  metric: string;
  against: TargetReference;
  reference: string;
  value: number;
  referenceValue: number;
  ratio: number;
  atLeast: number;
  met: boolean;
  rounds: RoundRatios | null;
  /** In how many of the rounds the round's own ratio met the target (null without rounds). */
  roundsMet: number | null;
}

export function bestOf(metric: { better: 'higher' | 'lower' }, candidates: Array<{ system: string; value: number | null | undefined }>): Best | null;
export function bestTable(summary: Summary, systems: string[]): Record<string, Record<string, Best>>;
export function ratiosByRound(
  bySystem: Summary[string],
  subject: string,
  references: string[],
  metric: { key: string; better: 'higher' | 'lower' },
): Array<{ round: number; ratio: number }>;
export function roundRatios(
  bySystem: Summary[string],
  subject: string,
  references: string[],
  metric: { key: string; better: 'higher' | 'lower' },
): RoundRatios | null;
export function ratiosToBest(summary: Summary, anchors: string[], subject?: string): Record<string, Record<string, Ratio>>;
export const NAT_TARGETS: Array<{ metric: string; against: TargetReference; atLeast: number }>;
export function natTargets(summary: Summary, anchors: string[], subject?: string): Record<string, TargetRow[]>;
