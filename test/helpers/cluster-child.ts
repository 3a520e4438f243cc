// Runs test/fixtures/cluster-node-process.mjs (from dist/, built first) in a child process,
// optionally inside a network namespace, and reads its JSON lines. Also the command line for any
// other fixture that must run inside a namespace.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buildDist } from './cli.js';
import { nodeCommand } from './netns-core.mjs';
import { within } from './sockets.js';

export { nodeCommand } from './netns-core.mjs';

const fixture = fileURLToPath(new URL('../fixtures/cluster-node-process.mjs', import.meta.url));

export interface ClusterChild {
  child: ChildProcess;
  port: number;
  /** The next line matching `match` (lines that do not match are kept for later calls). */
  next(match?: (line: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  send(command: string): void;
  /** Every line seen so far, in order. */
  lines: Record<string, unknown>[];
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts the fixture; with `netns`, under `ip netns exec NETNS`. Resolves once it is bound. */
export async function startClusterChild(options: object, netns?: string): Promise<ClusterChild> {
  await buildDist();
  const [command, args] = nodeCommand(fixture, [JSON.stringify(options)], netns);
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const lines: Record<string, unknown>[] = [];
  const unread: Record<string, unknown>[] = [];
  const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text);
    } catch {
      return;
    }
    lines.push(line);
    const w = waiters.findIndex((x) => x.match(line));
    if (w >= 0) waiters.splice(w, 1)[0].resolve(line);
    else unread.push(line);
  });
  const next = (match: (l: Record<string, unknown>) => boolean = () => true, ms = 20_000) => {
    const i = unread.findIndex(match);
    if (i >= 0) return Promise.resolve(unread.splice(i, 1)[0]);
    return within(new Promise<Record<string, unknown>>((resolve) => waiters.push({ match, resolve })), ms, 'a line from the cluster node child');
  };
  const ready = await Promise.race([next((l) => 'ready' in l), exited.then(([code]) => ({ exited: code }))]);
  if (!('ready' in ready)) throw new Error(`cluster node child did not start: ${JSON.stringify(ready)}`);
  return {
    child,
    port: ready.port as number,
    next,
    send: (command) => child.stdin!.write(`${command}\n`),
    lines,
    exited,
    kill: (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}
