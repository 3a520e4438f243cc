// A diagnostic the soak loads into lb4 (`node --expose-gc --import bench/heap-probe.mjs`), never
// part of lb4 itself: on SIGUSR2 it forces a full garbage collection and appends one JSON line
// to $LB4_HEAP_PROBE_FILE with the V8 heap and the process's memory as they are after it. With
// $LB4_HEAP_PROBE_SNAPSHOTS set, it also writes a heap snapshot next to that file, to compare
// objects by constructor between an early and a late point of a run.
//
// A forced collection shows what is still referenced: heapUsed after it staying flat while RSS
// grows means V8 keeps pages it no longer needs (its heap sizing), not that lb4 holds more.

import { appendFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import v8 from 'node:v8';

const file = process.env.LB4_HEAP_PROBE_FILE;
if (file && typeof globalThis.gc === 'function') {
  let count = 0;
  process.on('SIGUSR2', () => {
    count++;
    const spacesBefore = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]));
    const memoryBefore = process.memoryUsage();
    globalThis.gc();
    const heap = v8.getHeapStatistics();
    const memory = process.memoryUsage();
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
    let snapshot = null;
    if (process.env.LB4_HEAP_PROBE_SNAPSHOTS) snapshot = v8.writeHeapSnapshot(join(dirname(file), `lb4-${count}.heapsnapshot`));
    appendFileSync(file, `${JSON.stringify({ count, before: { memory: memoryBefore, spaces: spacesBefore }, heap, memory, spaces, snapshot })}\n`);
  });
}
