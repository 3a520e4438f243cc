// Runs test/fixtures/balancer-process.ts in a child process (with the same TypeScript loader as
// this test process) and talks to it line by line.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { within } from './sockets.js';

const fixture = fileURLToPath(new URL('../fixtures/balancer-process.ts', import.meta.url));

export interface ChildBalancer {
  child: ChildProcess;
  port: number;
  fdsAtStart: number;
  /** The next JSON line the child prints. */
  next(): Promise<Record<string, unknown>>;
  send(command: string): void;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  kill(): void;
}

/** Starts the child; `fdLimit` runs it under `ulimit -n`. */
export async function startChildBalancer(options: object, fdLimit?: number): Promise<ChildBalancer> {
  const args = [...process.execArgv, fixture, JSON.stringify(options)];
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = fdLimit ? spawn('sh', ['-c', `ulimit -n ${fdLimit} && exec ${quoted}`], { stdio: ['pipe', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const queue: Record<string, unknown>[] = [];
  const waiters: ((v: Record<string, unknown>) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(line);
    } catch {
      return; // not ours
    }
    const w = waiters.shift();
    if (w) w(value);
    else queue.push(value);
  });
  const next = () => within(new Promise<Record<string, unknown>>((r) => (queue.length ? r(queue.shift()!) : waiters.push(r))), 20_000, 'a line from the child balancer');
  const ready: Record<string, unknown> = await Promise.race([next(), exited.then(([code]) => ({ exited: code }))]);
  if (!ready.ready) throw new Error(`child balancer did not start: ${JSON.stringify(ready)}`);
  return {
    child,
    port: ready.port as number,
    fdsAtStart: ready.fds as number,
    next,
    send: (command) => child.stdin!.write(`${command}\n`),
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
