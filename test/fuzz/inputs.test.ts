// Runs every input property of test/fuzz/properties.ts: briefly in `npm test`, and scaled by
// LB4_FUZZ_SCALE in `npm run fuzz` (bench/fuzz.mjs), which sums the "# fuzz cases:" lines.

import fc from 'fast-check';
import t from 'tap';
import { resolveHost } from '../../lib/config/address.js';
import { lookedUp, refuseDnsLookups } from './no-dns.js';
import { documentsAccepted, inputProperties } from './properties.js';

const scale = Number(process.env.LB4_FUZZ_SCALE ?? 1);
const restoreDns = refuseDnsLookups();
t.teardown(restoreDns);

t.test('no fuzzed name reaches the real resolver', async (t) => {
  await t.rejects(resolveHost('fuzz-check.example', 'listen'), { code: 'LB4_UNRESOLVABLE_HOST' });
  t.same(lookedUp.at(-1), 'fuzz-check.example', 'lookups go to the stub');
});

for (const { name, property, runs } of inputProperties) {
  t.test(name, async (t) => {
    const numRuns = Math.round(runs * scale);
    await fc.assert(property, { numRuns });
    t.comment(`fuzz cases: ${numRuns}`);
    t.pass(`${numRuns} generated cases`);
  });
}

t.test('the document generator produces valid configs too, not only junk', async (t) => {
  t.ok(documentsAccepted > 0, `${documentsAccepted} generated documents were valid configs`);
});
