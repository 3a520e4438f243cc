// Which node of the pair holds the virtual IPs, as a pure function `(state, event, now) ->
// { state, actions }` over the states init, backup, active and fault. It never touches a socket,
// a timer or an address: the runner (cluster-node.ts) feeds it events and carries out the
// actions, and the tests drive it as a table.
//
// The rules, which both nodes apply alike so that they reach the same answer:
// - Rank: the higher priority outranks, between equal priorities the greater node id, and
//   between equal node ids (two nodes misconfigured with one id, e.g. cloned from one image with
//   its host name) the greater instance id, which each process draws at random: the rank is a
//   total order, so exactly one node of any pair outranks the other.
// - A node with no healthy backend is in fault and holds nothing: serving nothing from the VIP
//   is worse than letting the peer serve it.
// - A starting node waits in init until it hears the peer or has heard nothing for the dead
//   time (dead-after x interval), so it never grabs the address from a live active peer just
//   because it has not heard it yet. On hearing the peer it decides at once.
// - An active node stays active (a move costs clients their TCP flows) unless the peer is active
//   too and outranks it: after a partition heals, the lower-ranked one steps down as soon as it
//   hears the other, which is within one interval. Both nodes starting together decide on the
//   first heartbeat each hears; both apply the same rank, so exactly one ends active.
// - A node that is not active takes over when the peer is dead (dead time without a heartbeat),
//   leaving (its final heartbeat says so: take over at once), in fault, or not active and
//   outranked; with preempt, also from an active peer of strictly lower priority (between equal
//   priorities there is no preference to restore, so the address stays where it is).

import type { ClusterState } from './heartbeat.js';

export interface ElectionConfig {
  readonly nodeId: string;
  /** This process's instance id (heartbeat.ts newInstanceId): the last tie-break. */
  readonly instance: string;
  readonly priority: number;
  readonly preempt: boolean;
  readonly intervalMs: number;
  /** Missed intervals after which the peer is dead. */
  readonly deadAfter: number;
}

/** The peer as its last accepted heartbeat described it. */
export interface PeerView {
  readonly nodeId: string;
  readonly instance: string;
  readonly priority: number;
  readonly state: ClusterState;
  /** Monotonic time the heartbeat arrived. */
  readonly heardAt: number;
}

export interface ElectionState {
  readonly config: ElectionConfig;
  readonly state: ClusterState;
  /** Between start and stop: events outside it change nothing. */
  readonly running: boolean;
  readonly startedAt: number;
  readonly healthyBackends: number;
  /** The peer while it is alive: heard within the dead time, and not leaving. */
  readonly peer?: PeerView;
  /** When adding the VIPs last failed (monotonic ms): in fault until vipRetryMs after it. */
  readonly vipFailedAt?: number;
}

export type ElectionEvent =
  | { readonly type: 'start'; readonly healthyBackends: number }
  | {
      readonly type: 'heartbeat';
      readonly peer: { readonly nodeId: string; readonly instance: string; readonly priority: number; readonly state: ClusterState; readonly leaving: boolean };
    }
  /** A deadline from `nextDeadline()` passed. Harmless when a heartbeat came in meanwhile. */
  | { readonly type: 'peer-timeout' }
  | { readonly type: 'health'; readonly healthyBackends: number }
  /** Adding a VIP to its interface failed (EPERM, a device gone): this node cannot serve it. */
  | { readonly type: 'vip-failed' }
  | { readonly type: 'stop' };

/** Why a node changed state: logged with every transition, and given to on-state-change. */
export const transitionReasons = [
  'no-healthy-backends',
  'vip-failed',
  'waiting-for-peer',
  'no-peer',
  'peer-timeout',
  'peer-leaving',
  'peer-fault',
  'peer-active',
  'peer-outranks',
  'outranks-peer',
  'preempt',
  'preempted',
  'split-brain',
  'stop',
] as const;
export type TransitionReason = (typeof transitionReasons)[number];

export type ElectionAction =
  /** Add every VIP to its interface and announce it. */
  | { readonly type: 'add-vips' }
  /** Remove every VIP this node may hold (also at start: a crash can leave one behind). */
  | { readonly type: 'remove-vips' }
  /** Send a heartbeat now rather than at the next interval, so the peer learns at once. */
  | { readonly type: 'send-heartbeat'; readonly leaving: boolean }
  /** Log it, count it, run on-state-change. */
  | { readonly type: 'state-change'; readonly from: ClusterState; readonly to: ClusterState; readonly reason: TransitionReason };

export interface ElectionStep {
  readonly state: ElectionState;
  readonly actions: readonly ElectionAction[];
}

/** The state before start. */
export function initialElection(config: ElectionConfig): ElectionState {
  if (!Number.isInteger(config.priority) || config.priority < 1 || config.priority > 255) throw new RangeError(`priority must be 1-255, got ${config.priority}`);
  if (!(config.intervalMs > 0) || !Number.isInteger(config.deadAfter) || config.deadAfter < 1) throw new RangeError('intervalMs must be positive and deadAfter a positive integer');
  return { config, state: 'init', running: false, startedAt: 0, healthyBackends: 0 };
}

/**
 * What a takeover takes after the peer is declared dead, kept inside the dead time: the timer
 * firing late, adding and announcing the VIP, a client's next connection. See deadTime.
 */
export const reactionBudgetMs = 25;

/**
 * How long without a heartbeat before the peer is dead: `deadAfter` intervals, less the reaction
 * budget (at most a quarter interval, and none for deadAfter 1, whose single interval has no
 * slack to give). The peer may die just after its last heartbeat, so the dead time is also the
 * longest time from a crash to the takeover; less the budget, a crash, the takeover and the
 * clients' move all fit in deadAfter x interval (300 ms with the defaults), while a late
 * heartbeat still has deadAfter - 1 intervals and three quarters of one to arrive.
 */
export function deadTime(config: ElectionConfig): number {
  const budget = config.deadAfter >= 2 ? Math.min(reactionBudgetMs, config.intervalMs / 4) : 0;
  return config.deadAfter * config.intervalMs - budget;
}

/**
 * When the runner should send `peer-timeout`: the peer's dead time from its last heartbeat, or,
 * in init with no peer heard, the dead time from start. Undefined when nothing is waited for.
 */
export function nextDeadline(s: ElectionState): number | undefined {
  const peer = peerDeadline(s);
  const retry = s.running && s.vipFailedAt !== undefined ? s.vipFailedAt + vipRetryMs : undefined;
  if (retry === undefined) return peer;
  return peer === undefined ? retry : Math.min(peer, retry);
}

function peerDeadline(s: ElectionState): number | undefined {
  if (!s.running) return undefined;
  if (s.peer) return s.peer.heardAt + deadTime(s.config);
  if (s.state === 'init') return s.startedAt + deadTime(s.config);
  return undefined;
}

/**
 * How long a node whose VIPs could not be added stays in fault before it may try again. It must
 * not claim the address it cannot hold (its peer would stand by while nobody serves it), and
 * retrying at once would flap the pair on every heartbeat; a few seconds lets the peer take the
 * address and an operator or the system fix what failed (a device coming back, a capability).
 */
export const vipRetryMs = 5000;

/** A node as the rank sees it. */
export interface Rank {
  readonly priority: number;
  readonly nodeId: string;
  readonly instance: string;
}

/** Whether `a` outranks `b`: higher priority, then the greater node id, then the greater instance id. */
export function outranks(a: Rank, b: Rank): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  if (a.nodeId !== b.nodeId) return a.nodeId > b.nodeId;
  return a.instance > b.instance;
}

const noChange = (state: ElectionState): ElectionStep => ({ state, actions: [] });

/** The state this node should be in now, and why; `gone` says why there is no peer, if it went. */
function decide(s: ElectionState, now: number, gone?: 'peer-timeout' | 'peer-leaving', previous?: PeerView): { to: ClusterState; reason?: TransitionReason } {
  if (s.healthyBackends === 0) return { to: 'fault', reason: 'no-healthy-backends' };
  if (s.vipFailedAt !== undefined && now < s.vipFailedAt + vipRetryMs) return { to: 'fault', reason: 'vip-failed' };
  const self: Rank = { nodeId: s.config.nodeId, instance: s.config.instance, priority: s.config.priority };
  const peer = s.peer;
  if (s.state === 'active') {
    if (peer?.state !== 'active' || !outranks(peer, self)) return { to: 'active' };
    // Told apart for the log only: a peer that was not active before took over on purpose.
    return { to: 'backup', reason: previous && previous.state !== 'active' ? 'preempted' : 'split-brain' };
  }
  if (!peer) {
    if (gone) return { to: 'active', reason: gone };
    // Not heard yet: wait out the dead time from start before assuming there is no peer.
    if (now < s.startedAt + deadTime(s.config)) return { to: 'init', reason: 'waiting-for-peer' };
    return { to: 'active', reason: s.state === 'backup' ? 'peer-timeout' : 'no-peer' };
  }
  switch (peer.state) {
    case 'fault':
      return { to: 'active', reason: 'peer-fault' };
    case 'active':
      return s.config.preempt && self.priority > peer.priority ? { to: 'active', reason: 'preempt' } : { to: 'backup', reason: 'peer-active' };
    default:
      // Neither holds the address: the higher-ranked one takes it, and the other waits for it.
      return outranks(self, peer) ? { to: 'active', reason: 'outranks-peer' } : { to: 'backup', reason: 'peer-outranks' };
  }
}

/** Moves to `to` (if it differs) with the actions that go with the move, in the order to run them. */
function moveTo(s: ElectionState, to: ClusterState, reason: TransitionReason | undefined, extra: ElectionAction[] = []): ElectionStep {
  if (to === s.state) return { state: s, actions: extra };
  const actions: ElectionAction[] = [];
  // Release before telling the peer, acquire before telling it: the address is never announced
  // by a node that has already said it does not hold it.
  if (s.state === 'active') actions.push({ type: 'remove-vips' });
  if (to === 'active') actions.push({ type: 'add-vips' });
  actions.push({ type: 'send-heartbeat', leaving: false });
  actions.push({ type: 'state-change', from: s.state, to, reason: reason ?? 'no-peer' });
  return { state: { ...s, state: to }, actions: [...extra, ...actions] };
}

/** Applies one event at monotonic time `now`. Pure: the same inputs give the same step. */
export function elect(s: ElectionState, event: ElectionEvent, now: number): ElectionStep {
  if (event.type === 'start') {
    if (s.running) return noChange(s);
    const started: ElectionState = { ...s, state: 'init', running: true, startedAt: now, healthyBackends: event.healthyBackends, peer: undefined };
    const { to, reason } = decide(started, now);
    // A node that crashed while active may still have the addresses on its interfaces. It
    // starts in init (waiting for the peer) or, with no healthy backend, in fault.
    if (to === 'init') return { state: started, actions: [{ type: 'remove-vips' }, { type: 'send-heartbeat', leaving: false }] };
    return moveTo(started, to, reason, [{ type: 'remove-vips' }]);
  }
  if (!s.running) return noChange(s);

  switch (event.type) {
    case 'stop': {
      const actions: ElectionAction[] = [];
      if (s.state === 'active') actions.push({ type: 'remove-vips' });
      actions.push({ type: 'send-heartbeat', leaving: true });
      if (s.state !== 'init') actions.push({ type: 'state-change', from: s.state, to: 'init', reason: 'stop' });
      return { state: { ...s, state: 'init', running: false, peer: undefined }, actions };
    }
    case 'health': {
      if (event.healthyBackends === s.healthyBackends) return noChange(s);
      const next = { ...s, healthyBackends: event.healthyBackends };
      // Only crossing zero matters to the election; the count itself is reported in heartbeats.
      if ((s.healthyBackends === 0) === (event.healthyBackends === 0)) return noChange(next);
      const { to, reason } = decide(next, now);
      return moveTo(next, to, reason);
    }
    case 'heartbeat': {
      const p = event.peer;
      if (p.leaving) {
        const next = { ...s, peer: undefined };
        const { to, reason } = decide(next, now, 'peer-leaving');
        return moveTo(next, to, reason);
      }
      const next = { ...s, peer: { nodeId: p.nodeId, instance: p.instance, priority: p.priority, state: p.state, heardAt: now } };
      const { to, reason } = decide(next, now, undefined, s.peer);
      // Both active and this node outranks the peer: say so now, so the peer steps down without
      // waiting for the next interval. On first hearing it active (a partition healed), announce
      // the addresses again too: during the split the peer announced them, so clients and
      // switches send to it, and once it steps down nothing else would move them back.
      if (to === 'active' && s.state === 'active' && p.state === 'active') {
        const reclaim: ElectionAction[] = s.peer?.state === 'active' ? [] : [{ type: 'add-vips' }];
        return { state: next, actions: [...reclaim, { type: 'send-heartbeat', leaving: false }] };
      }
      return moveTo(next, to, reason);
    }
    case 'vip-failed': {
      // Only a node taking or holding the address can fail to add it.
      if (s.state !== 'active') return noChange(s);
      const next = { ...s, vipFailedAt: now };
      const { to, reason } = decide(next, now);
      return moveTo(next, to, reason);
    }
    case 'peer-timeout': {
      // The fault after a failed VIP add ends: the election decides anew (and may try again).
      const retried = s.vipFailedAt !== undefined && now >= s.vipFailedAt + vipRetryMs ? { ...s, vipFailedAt: undefined } : s;
      const deadline = peerDeadline(retried);
      if (deadline === undefined || now < deadline) {
        if (retried === s) return noChange(s);
        const { to, reason } = decide(retried, now);
        return moveTo(retried, to, reason);
      }
      const lost = retried.peer !== undefined;
      const next = { ...retried, peer: undefined };
      const { to, reason } = decide(next, now, lost ? 'peer-timeout' : undefined);
      return moveTo(next, to, reason);
    }
  }
}
