// The scenarios, in the order they run.

import connRate from './conn-rate.mjs';
import dnsRate from './dns-rate.mjs';
import idleMemory from './idle-memory.mjs';
import requestRate from './request-rate.mjs';
import tcpThroughput from './tcp-throughput.mjs';
import udpBulk from './udp-bulk.mjs';

/**
 * @typedef {object} Scenario
 * @property {string} name
 * @property {'iperf3' | 'http' | 'idle' | 'dns'} backend which shared backend the systems forward to
 * @property {string[]} needs tools it needs (keys of detectTools())
 * @property {boolean} [proxyOnly] skipped for `direct`
 * @property {import('../systems.mjs').ListenSpec} [listen] what the system listens on (default: TCP);
 *   systems that cannot (HAProxy and node-pipe have no UDP) skip the scenario
 * @property {(settings: any) => string} describe
 * @property {(settings: any) => number} estimateSeconds one system, one round, without start-up
 * @property {(ctx: {target: import('../systems.mjs').Running, settings: any, backend: any, tmp: string}) =>
 *   Promise<{metrics: Record<string, number | null>, raw: object, notes: string[]}>} run
 */

/** @type {Scenario[]} */
export const scenarios = [tcpThroughput, connRate, requestRate, idleMemory, dnsRate, udpBulk];
