// Starts lb4 through its library API, for when the CLI (dist/bin/lb4.js) is not built or not
// usable. Same flags as `lb4 start` for the ones the bench uses, plus --root, the checkout whose
// build to load (default: this repository):
//   node lb4-proxy.mjs [--root DIR] --listen 127.0.0.1:PORT[/udp] ... --backend 127.0.0.1:PORT
//     --workers N [--udp-responses N]

import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const backends = [];
let root = fileURLToPath(new URL('..', import.meta.url));
const listen = [];
let workers;
let udpResponses;
for (let i = 0; i < args.length; i += 2) {
  if (args[i] === '--root') root = args[i + 1];
  else if (args[i] === '--listen') listen.push(args[i + 1]);
  else if (args[i] === '--udp-responses') udpResponses = Number(args[i + 1]);
  else if (args[i] === '--backend') backends.push(args[i + 1]);
  else if (args[i] === '--workers') workers = Number(args[i + 1]);
  else throw new Error(`lb4-proxy.mjs: unknown flag ${args[i]}`);
}

/** @type {typeof import('../dist/lib/index.js')} */
const { startBalancer } = await import(pathToFileURL(join(root, 'dist/lib/index.js')).href);
const balancer = await startBalancer({ listen, backends, workers, drainTimeout: 0, ...(udpResponses === undefined ? {} : { udpResponses }) });
const stopNow = async () => {
  await balancer.close({ drainTimeout: 0 });
  process.exit(0);
};
process.on('SIGTERM', stopNow);
process.on('SIGINT', stopNow);
