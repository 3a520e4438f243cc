// Fuzzed documents are full of strings that look like host names. lb4 resolves host names with
// dns/promises.lookup, and a test must never send a query off this machine, so the fuzz tests
// replace lookup (and update the live ES module bindings, which lib/config/address.ts imports)
// with one that answers `localhost` and refuses every other name without asking anyone.

import dnsPromises from 'node:dns/promises';
import { syncBuiltinESMExports } from 'node:module';

/** Names lb4 tried to look up while the stub was in place. */
export const lookedUp: string[] = [];

export function refuseDnsLookups(): () => void {
  const real = dnsPromises.lookup;
  const stub = (async (host: string) => {
    lookedUp.push(host);
    if (host === 'localhost') return { address: '127.0.0.1', family: 4 };
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host} (the fuzz tests resolve no names)`), { code: 'ENOTFOUND' });
  }) as typeof dnsPromises.lookup;
  dnsPromises.lookup = stub;
  syncBuiltinESMExports();
  return () => {
    dnsPromises.lookup = real;
    syncBuiltinESMExports();
  };
}
