// Runs test/fixtures/cluster-node-process.ts in a child process (with the same TypeScript loader
// as this test process), optionally inside a network namespace, and reads its JSON lines.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { within } from './sockets.js';

const fixture = fileURLToPath(new URL('../fixtures/cluster-node-process.ts', import.meta.url));

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
  const args = [...process.execArgv, fixture, JSON.stringify(options)];
  const child = netns ? spawn('ip', ['netns', 'exec', netns, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
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
