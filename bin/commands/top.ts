// `lb4 top`: a live view of a running lb4 over its admin API: per listener and per backend
// flows/s and bytes/s (counter deltas between two samples), open flows, state and health,
// redrawn every interval. `--once` takes two samples one interval apart, prints that one frame
// without any terminal codes, and exits: for scripts and tests.

import { setTimeout as sleep } from 'node:timers/promises';
import { Lb4Error } from '../../lib/errors.js';
import { AdminApiError, callAdmin, query, type AdminFlags, type BackendRow } from './admin-client.js';
import { parseInterval, runLiveView } from './live-view.js';
import { topFrame, type TopSample } from './top-frame.js';

export interface TopFlags extends AdminFlags {
  interval: string;
  once?: boolean;
}

async function sample(flags: AdminFlags): Promise<TopSample> {
  const at = performance.now();
  const [status, listeners, backends, cluster] = await Promise.all([
    callAdmin(flags, 'GET', '/status'),
    callAdmin(flags, 'GET', '/listeners'),
    callAdmin(flags, 'GET', `/backends${query(flags)}`),
    // 404: this lb4 is not one of an HA pair.
    callAdmin(flags, 'GET', '/cluster').catch((err: unknown) => {
      if (err instanceof AdminApiError && err.status === 404) return null;
      throw err;
    }),
  ]);
  const shown = (listeners as TopSample['listeners']).filter((l) => flags.listener === undefined || l.name === flags.listener);
  return { at, status: status as TopSample['status'], listeners: shown, backends: backends as BackendRow[], cluster: cluster as TopSample['cluster'] };
}

export async function top(flags: TopFlags): Promise<void> {
  const intervalMs = parseInterval(flags.interval);
  if (flags.json) throw new Lb4Error('LB4_INVALID_OPTION', 'lb4 top draws for people; for JSON use lb4 status, lb4 backends --json or /metrics', { field: 'json' });
  if (flags.once) {
    const first = await sample(flags);
    await sleep(intervalMs);
    process.stdout.write(`${topFrame(first, await sample(flags), `(rates over ${intervalMs} ms)`)}\n`);
    return;
  }
  let previous: TopSample | null = null;
  await runLiveView(async () => {
    const now = await sample(flags);
    const frame = topFrame(previous, now, `(every ${intervalMs} ms; q quits)`);
    previous = now;
    return frame;
  }, intervalMs);
}
