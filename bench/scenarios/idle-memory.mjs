// Resident memory per idle flow: a helper client (bench/idle-conns.mjs, its own process with the
// bench's descriptor limit) opens N connections through the proxy to a sink backend (another
// helper process) and keeps them open without sending a byte. The proxy's VmRSS, summed over its
// process tree (nginx's master and workers), is read before and after; (after - before) / N is
// the figure.
//
// A warm-up of 100 connections opened and closed comes first, so that one-time setup (pools
// created, thread stacks touched) is not charged to the idle flows.

import { setTimeout as sleep } from 'node:timers/promises';
import { rssBytes } from '../proc.mjs';

/**
 * Polls the sink until `predicate(open)` holds or the time is up.
 * @returns {Promise<number>} the last count
 */
async function sinkCount(sink, predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { open } = await sink.request({ op: 'count' }, 5000);
    if (predicate(open) || Date.now() > deadline) return open;
    await sleep(50);
  }
}

/**
 * Opens `count` connections, waits for the sink to hold as many, and returns the counts.
 */
async function openIdle(backend, host, port, count) {
  const opened = await backend.client.request({ op: 'open', host, port, count, concurrency: 256, timeoutMs: 60_000 }, 65_000);
  const sinkOpen = await sinkCount(backend.sink, (n) => n >= opened.clientOpen, 30_000);
  return { ...opened, sinkOpen };
}

/** Closes every client connection and waits (bounded) for the proxy to close the backend ends. */
async function closeIdle(backend) {
  const began = Date.now();
  await backend.client.request({ op: 'close' }, 10_000);
  const left = await sinkCount(backend.sink, (n) => n === 0, 20_000);
  // Whatever the proxy left open is closed here, so the next system starts from nothing.
  if (left > 0) await backend.sink.request({ op: 'reset' }, 5000);
  return { left, ms: Date.now() - began };
}

/** @type {import('./index.mjs').Scenario} */
export default {
  name: 'idle-memory',
  backend: 'idle',
  needs: [],
  proxyOnly: true,
  describe: (s) =>
    `${s.idleConnections} idle connections opened (256 handshakes in flight) through the proxy to a sink and held; (VmRSS after - VmRSS before) / connections held, VmRSS summed over the proxy's process tree; 100-connection warm-up first`,
  estimateSeconds: (s) => 3 + s.idleConnections / 5000,
  async run({ target, settings, backend }) {
    const notes = [];
    await openIdle(backend, target.host, target.port, 100);
    await closeIdle(backend);
    await sleep(300);
    const before = rssBytes(target.pid);
    const opened = await openIdle(backend, target.host, target.port, settings.idleConnections);
    await sleep(1000);
    const after = rssBytes(target.pid);
    const closed = await closeIdle(backend);
    await sleep(300);
    const afterClose = rssBytes(target.pid);

    const held = Math.min(opened.clientOpen, opened.sinkOpen);
    if (opened.clientOpen !== settings.idleConnections || opened.sinkOpen !== opened.clientOpen || opened.errors > 0 || opened.closedEarly > 0) {
      notes.push(
        `idle_mem: asked ${settings.idleConnections}, client side open ${opened.clientOpen}, backend side open ${opened.sinkOpen}, errors ${opened.errors}, closed early ${opened.closedEarly}`,
      );
    }
    if (closed.left > 0) notes.push(`idle_mem: ${closed.left} backend connections still open ${closed.ms} ms after the clients closed`);
    return { metrics: { idle_mem: held > 0 ? (after - before) / held : null }, raw: { idle_mem: { before, after, afterClose, held, opened, closed } }, notes };
  },
};
