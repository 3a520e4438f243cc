// One node of an HA pair at run time: it owns the heartbeat socket, sends a heartbeat to the
// peer every interval, passes what arrives through the filter (heartbeat-filter.ts) and the
// election (election.ts), and carries out the election's actions: the VIP driver adds or removes
// the addresses, a heartbeat goes out at once, on-state-change runs. Everything it decides is in
// election.ts; this file only wires it to sockets, timers and the driver (vip-holder.ts).
//
// Its public types are in cluster-types.ts and re-exported here.

import { createSocket, type Socket } from 'node:dgram';
import { EventEmitter, once } from 'node:events';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { formatHostPort } from '../config/address.js';
import { DeadlineTimer } from './deadline-timer.js';
import { deadTime, elect, initialElection, nextDeadline, type ElectionAction, type ElectionEvent, type ElectionState, type TransitionReason } from './election.js';
import { HeartbeatFilter } from './heartbeat-filter.js';
import { encodeHeartbeat, isInstanceId, newInstanceId, rejectReasons, type ClusterState, type RejectReason } from './heartbeat.js';
import { StateChangeCommand } from './state-change-command.js';
import { formatVip } from './vip.js';
import { systemClock, type ClusterNodeEvents, type ClusterNodeOptions, type ClusterStatus, type ClusterTransition } from './cluster-types.js';
import { RejectTally } from './reject-tally.js';
import { sessionBatchMagic } from './session-batch.js';
import { VipHolder } from './vip-holder.js';
import { checkVipInterfaces } from './vip-driver.js';

export * from './cluster-types.js';

const recentLimit = 16;

export class ClusterNode extends EventEmitter<ClusterNodeEvents> {
  readonly #o: Required<Omit<ClusterNodeOptions, 'onStateChange' | 'logger' | 'peer'>> & { logger?: Logger };
  // The peer's last heartbeat had this node's id; the error about it is logged once per run.
  #duplicateNodeId = false;
  #duplicateLogged = false;
  #peer: { host: string; port: number };
  readonly #filter: HeartbeatFilter;
  readonly #command: StateChangeCommand | undefined;
  #election: ElectionState;
  #socket: Socket | undefined;
  #bound: { address: string; port: number } | undefined;
  #epoch = 0;
  #sequence = 0;
  #generation: number;
  #sendTimer: NodeJS.Timeout | undefined;
  readonly #deadline = new DeadlineTimer(() => this.#step({ type: 'peer-timeout' }));
  readonly #vips: VipHolder;
  #stateSince = 0;
  #transitions = 0;
  #recent: ClusterTransition[] = [];
  #sent = 0;
  #sendErrors = 0;
  #accepted = 0;
  readonly #rejected = new RejectTally(rejectReasons, 'heartbeat');
  #lastPeer: { id: string; instance: string; priority: number; state: ClusterState; healthyBackends: number; generation: number; heardAt: number; leaving: boolean } | undefined;
  #peerRestarts = 0;
  #stopping: Promise<void> | undefined;
  #healthyBackends: number;
  #binding: Promise<{ address: string; port: number }> | undefined;

  constructor(options: ClusterNodeOptions) {
    super();
    if (options.key.length < 32) throw new RangeError('the cluster key must be at least 32 bytes');
    if (!isIP(options.peer.host)) throw new TypeError(`peer host must be a numeric IP address, got "${options.peer.host}"`);
    const own = options.heartbeat.host;
    if (own !== '' && !isIP(own)) throw new TypeError(`heartbeat host must be a numeric IP address or '', got "${own}"`);
    if (own !== '' && isIP(own) !== isIP(options.peer.host)) throw new TypeError(`heartbeat address ${own} and peer ${options.peer.host} are of different IP families`);
    this.#o = {
      nodeId: options.nodeId,
      instance: options.instance ?? newInstanceId(),
      priority: options.priority ?? 100,
      heartbeat: options.heartbeat,
      key: options.key,
      vips: options.vips ?? [],
      vipDriver: options.vipDriver,
      intervalMs: options.intervalMs ?? 100,
      deadAfter: options.deadAfter ?? 3,
      preempt: options.preempt ?? true,
      timestampWindowMs: options.timestampWindowMs ?? 2000,
      onStateChangeTimeoutMs: options.onStateChangeTimeoutMs ?? 30_000,
      healthyBackends: options.healthyBackends ?? 1,
      generation: options.generation ?? 0,
      announceAtMs: options.announceAtMs ?? [0, 200, 1000],
      clock: options.clock ?? systemClock,
      logger: options.logger,
    };
    if (Buffer.byteLength(this.#o.nodeId) < 1 || Buffer.byteLength(this.#o.nodeId) > 255) throw new RangeError('node id must be 1-255 bytes');
    if (!isInstanceId(this.#o.instance)) throw new RangeError('instance must be 16 lower-case hex digits');
    this.#peer = { host: options.peer.host, port: options.peer.port };
    this.#generation = this.#o.generation;
    this.#healthyBackends = this.#o.healthyBackends;
    this.#election = initialElection({ nodeId: this.#o.nodeId, instance: this.#o.instance, priority: this.#o.priority, preempt: this.#o.preempt, intervalMs: this.#o.intervalMs, deadAfter: this.#o.deadAfter });
    this.#filter = new HeartbeatFilter({ nodeId: this.#o.nodeId, instance: this.#o.instance, key: this.#o.key, timestampWindowMs: this.#o.timestampWindowMs });
    checkVipInterfaces(this.#o.vipDriver, this.#o.vips);
    this.#vips = new VipHolder(this.#o.vipDriver, this.#o.announceAtMs, this.#o.logger, (err, vip, op) => {
      this.emit('vip-error', err, vip);
      // A node that cannot add its address must not claim it: the election goes to fault (the
      // peer takes over) once the step that tried has finished its actions.
      if (op === 'add') queueMicrotask(() => void this.#step({ type: 'vip-failed' }));
    });
    if (options.onStateChange !== undefined) {
      this.#command = new StateChangeCommand({
        command: options.onStateChange,
        timeoutMs: this.#o.onStateChangeTimeoutMs,
        logger: this.#o.logger,
        onResult: (r) => this.emit('state-change-result', r),
      });
    }
  }

  /** This node's state now. */
  get state(): ClusterState {
    return this.#election.state;
  }

  /** The heartbeat socket's address once bound. */
  get address(): { address: string; port: number } | undefined {
    return this.#bound;
  }

  /**
   * Opens and binds the heartbeat socket (start() does it too). Separate so that two nodes in one
   * process can bind port 0 and learn each other's port before either starts.
   */
  bind(): Promise<{ address: string; port: number }> {
    this.#binding ??= this.#bind();
    return this.#binding;
  }

  async #bind(): Promise<{ address: string; port: number }> {
    const host = this.#o.heartbeat.host;
    const family = host !== '' ? isIP(host) : isIP(this.#peer.host);
    const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
    socket.on('message', (msg, rinfo) => this.#receive(msg, rinfo.address, rinfo.port));
    try {
      // once() rejects when 'error' comes first: the bind failed (EADDRINUSE, EADDRNOTAVAIL).
      const listening = once(socket, 'listening');
      socket.bind({ address: host === '' ? (family === 6 ? '::' : '0.0.0.0') : host, port: this.#o.heartbeat.port, exclusive: true });
      await listening;
    } catch (err) {
      socket.close();
      throw err;
    }
    // A send error (ICMP unreachable reported on a later call, no route) must not end the
    // process: the peer may just be down, which is what heartbeats are for.
    socket.on('error', (err) => {
      this.#sendErrors++;
      this.#o.logger?.debug({ err }, 'cluster: heartbeat socket error');
    });
    this.#socket = socket;
    const a = socket.address();
    this.#bound = { address: a.address, port: a.port };
    return this.#bound;
  }

  /** This process's instance id (random unless given): what its heartbeats and batches carry. */
  get instance(): string {
    return this.#o.instance;
  }

  /** Sends a datagram (a session batch) to the peer's heartbeat address; a failure is counted. */
  sendToPeer(datagram: Buffer): void {
    this.#socket?.send(datagram, this.#peer.port, this.#peer.host, (err) => {
      if (err) this.#sendErrors++;
    });
  }

  /** Changes where heartbeats go (a reload, or tests that bind port 0 first). */
  setPeer(peer: { host: string; port: number }): void {
    if (!isIP(peer.host)) throw new TypeError(`peer host must be a numeric IP address, got "${peer.host}"`);
    this.#peer = { host: peer.host, port: peer.port };
  }

  /** Binds (if not yet), removes any leftover VIP, and starts sending heartbeats and electing. */
  async start(): Promise<{ address: string; port: number }> {
    const bound = await this.bind();
    if (this.#election.running || this.#stopping) return bound;
    this.#epoch = this.#o.clock.wall();
    this.#sequence = 0;
    this.#stateSince = this.#o.clock.wall();
    this.#o.logger?.info({ nodeId: this.#o.nodeId, priority: this.#o.priority, heartbeat: formatHostPort(bound.address, bound.port), peer: formatHostPort(this.#peer.host, this.#peer.port) }, 'cluster: node started');
    this.#step({ type: 'start', healthyBackends: this.#healthyBackends });
    this.#sendTimer = setInterval(() => this.#send(false), this.#o.intervalMs);
    return bound;
  }

  /** Reports how many backends are healthy; 0 puts this node in fault. */
  setHealthyBackends(count: number): void {
    this.#healthyBackends = count;
    this.#step({ type: 'health', healthyBackends: count });
  }

  /** Sets the backend-set generation the heartbeats report. */
  setGeneration(generation: number): void {
    this.#generation = generation;
  }

  /**
   * Gives the VIPs up (if held), sends a final "leaving" heartbeat so the peer takes over at
   * once, and closes the socket. Waits for the leaving heartbeat to be sent, not for
   * on-state-change. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    clearInterval(this.#sendTimer);
    this.#deadline.clear();
    const sent = this.#election.running ? this.#step({ type: 'stop' }) : undefined;
    this.#vips.stopAnnouncing();
    await sent;
    // A bind still under way finishes first, so its socket is closed too and not left open.
    await this.#binding?.catch(() => {});
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
    this.#o.logger?.info({ nodeId: this.#o.nodeId }, 'cluster: node stopped');
  }

  /** Resolves once on-state-change has nothing running or waiting (tests, shutdown). */
  async stateChangeIdle(): Promise<void> {
    await this.#command?.idle();
  }

  status(): ClusterStatus {
    const now = this.#o.clock.monotonic();
    const p = this.#lastPeer;
    return {
      node: {
        id: this.#o.nodeId,
        instance: this.#o.instance,
        priority: this.#o.priority,
        state: this.#election.state,
        stateSince: this.#stateSince,
        healthyBackends: this.#healthyBackends,
        generation: this.#generation,
        preempt: this.#o.preempt,
        heartbeat: this.#bound ? { ...this.#bound } : null,
        intervalMs: this.#o.intervalMs,
        deadAfter: this.#o.deadAfter,
      },
      peer: {
        address: this.#peer.host,
        port: this.#peer.port,
        up: this.#election.peer !== undefined,
        id: p?.id ?? null,
        instance: p?.instance ?? null,
        duplicateNodeId: this.#duplicateNodeId,
        priority: p?.priority ?? null,
        state: p?.state ?? null,
        healthyBackends: p?.healthyBackends ?? null,
        generation: p?.generation ?? null,
        lastHeartbeatAgeMs: p ? Math.max(0, Math.round(now - p.heardAt)) : null,
        leaving: p?.leaving ?? false,
        restarts: this.#peerRestarts,
      },
      generationMismatch: p !== undefined && p.generation !== this.#generation,
      vips: this.#o.vips.map((v) => ({ address: formatVip(v), dev: v.dev, held: this.#vips.holds(v) })),
      transitions: this.#transitions,
      recentTransitions: [...this.#recent],
      heartbeats: { sent: this.#sent, sendErrors: this.#sendErrors, accepted: this.#accepted, rejected: this.#rejected.counts() },
      vipErrors: this.#vips.errors,
    };
  }

  // --- the event loop side -------------------------------------------------------------------

  /** Runs one election step and its actions; resolves when any heartbeat it sent has left. */
  #step(event: ElectionEvent): Promise<void> | undefined {
    const now = this.#o.clock.monotonic();
    const step = elect(this.#election, event, now);
    this.#election = step.state;
    let sent: Promise<void> | undefined;
    for (const action of step.actions) {
      const s = this.#act(action);
      if (s) sent = s;
    }
    if (this.#election.running) this.#deadline.arm(nextDeadline(this.#election), now);
    return sent;
  }

  #act(action: ElectionAction): Promise<void> | undefined {
    switch (action.type) {
      case 'add-vips':
        for (const vip of this.#o.vips) this.#vips.add(vip);
        return undefined;
      case 'remove-vips':
        this.#vips.stopAnnouncing();
        for (const vip of this.#o.vips) this.#vips.remove(vip);
        return undefined;
      case 'send-heartbeat':
        return this.#send(action.leaving);
      case 'state-change':
        this.#transition(action.from, action.to, action.reason);
        return undefined;
    }
  }

  #transition(from: ClusterState, to: ClusterState, reason: TransitionReason): void {
    const t: ClusterTransition = { from, to, reason, at: this.#o.clock.wall() };
    this.#transitions++;
    this.#stateSince = t.at;
    this.#recent.push(t);
    if (this.#recent.length > recentLimit) this.#recent.shift();
    this.#o.logger?.info({ from, to, reason, peer: this.#lastPeer?.id }, `cluster: ${from} -> ${to} (${reason})`);
    this.emit('transition', t);
    this.#command?.notify({ state: to, previous: from, reason, nodeId: this.#o.nodeId, vips: this.#o.vips });
  }

  #send(leaving: boolean): Promise<void> | undefined {
    const socket = this.#socket;
    if (!socket) return undefined;
    let buf: Buffer;
    try {
      buf = encodeHeartbeat(
        {
          nodeId: this.#o.nodeId,
          instance: this.#o.instance,
          priority: this.#o.priority,
          state: this.#election.state,
          healthyBackends: Math.min(this.#election.healthyBackends, 0xffff_ffff),
          generation: this.#generation >>> 0,
          epoch: this.#epoch,
          sequence: this.#sequence++,
          timestamp: Math.round(this.#o.clock.wall()),
          leaving,
        },
        this.#o.key,
      );
    } catch (err) {
      this.#o.logger?.error({ err }, 'cluster: cannot encode a heartbeat');
      return undefined;
    }
    return new Promise((resolve) => {
      socket.send(buf, this.#peer.port, this.#peer.host, (err) => {
        if (err) {
          this.#sendErrors++;
          this.#o.logger?.debug({ err }, 'cluster: heartbeat not sent');
        } else this.#sent++;
        resolve();
      });
    });
  }

  #receive(msg: Buffer, address: string, port: number): void {
    if (!this.#election.running) return;
    // Session batches share the socket (session-replicator.ts says why) and are judged there.
    if (msg.subarray(0, 4).equals(sessionBatchMagic)) {
      this.emit('session-batch', msg, { address, port });
      return;
    }
    const r = this.#filter.accept(msg, { wall: this.#o.clock.wall(), monotonic: this.#o.clock.monotonic() });
    if (!r.ok) {
      this.#reject(r.reason, address, port);
      return;
    }
    const hb = r.heartbeat;
    this.#accepted++;
    if (r.duplicateNodeId && !this.#duplicateLogged) {
      // Once per run: the pair still works (the instance id breaks the tie), but logs, status and
      // on-state-change cannot say which node is which, and the rank is left to chance.
      this.#duplicateLogged = true;
      this.#o.logger?.error(
        { nodeId: hb.nodeId, peer: formatHostPort(address, port), instance: this.#o.instance, peerInstance: hb.instance },
        `cluster: the peer has this node's id "${hb.nodeId}": give each node its own with --node-id (cluster.nodeId); until then the random instance id decides between equal priorities`,
      );
    }
    this.#duplicateNodeId = r.duplicateNodeId;
    if (r.restarted) {
      this.#peerRestarts++;
      this.#o.logger?.info({ peer: hb.nodeId }, 'cluster: the peer restarted');
    }
    if (this.#lastPeer && this.#lastPeer.id !== hb.nodeId) this.#o.logger?.warn({ was: this.#lastPeer.id, now: hb.nodeId }, 'cluster: heartbeats now come from another node id');
    if (hb.generation !== this.#generation && this.#lastPeer?.generation !== hb.generation) {
      this.#o.logger?.warn({ peer: hb.nodeId, peerGeneration: hb.generation, generation: this.#generation }, 'cluster: the peer runs a different backend set');
    }
    this.#lastPeer = { id: hb.nodeId, instance: hb.instance, priority: hb.priority, state: hb.state, healthyBackends: hb.healthyBackends, generation: hb.generation, heardAt: this.#o.clock.monotonic(), leaving: hb.leaving };
    if (hb.leaving) this.#o.logger?.info({ peer: hb.nodeId }, 'cluster: the peer is leaving');
    const wasUp = this.#election.peer !== undefined;
    this.#step({ type: 'heartbeat', peer: { nodeId: hb.nodeId, instance: hb.instance, priority: hb.priority, state: hb.state, leaving: hb.leaving } });
    if (!hb.leaving && (!wasUp || r.restarted)) this.emit('peer-up');
  }

  #reject(reason: RejectReason, address: string, port: number): void {
    this.#rejected.record(reason, { address, port }, this.#o.clock.monotonic(), this.#o.logger);
    this.emit('reject', { reason, address, port });
  }

  /** The dead time (dead-after x interval), for callers that wait on a takeover. */
  get deadTimeMs(): number {
    return deadTime(this.#election.config);
  }
}
