// A backend address whose connects never finish: a listening socket with a backlog of 0 whose
// accept queue is already full, so the kernel drops further SYNs and the connect stays pending.
// release() makes it accept everything from then on: a SYN it dropped gets in on its
// retransmission (1 s later: the kernel's initial RTO), which is how a slow connect is made.
// Node's own servers always accept, so a small python3 process holds the socket.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { within } from './sockets.js';

const script = `
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
fillers = []
for _ in range(3):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(s.getsockname())
    fillers.append(c)
print(s.getsockname()[1], flush=True)
if sys.stdin.readline().strip() != "release":
    sys.exit(0)
held = []
while True:
    held.append(s.accept()[0])
`;

export interface Blackhole {
  port: number;
  address: string;
  /** Accept every connection from now on, the ones whose SYN was dropped included. */
  release(): void;
  close(): Promise<void>;
}

export async function startBlackhole(): Promise<Blackhole> {
  const child: ChildProcess = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = await within(once(child.stdout!, 'data'), 10_000, 'the blackhole backend');
  const port = Number(String(line).trim());
  return {
    port,
    address: `127.0.0.1:${port}`,
    release: () => child.stdin!.write('release\n'),
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill();
      await within(exited, 5000, 'the blackhole to exit');
    },
  };
}
