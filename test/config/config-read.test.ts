// Reading a config file costs about the file's size, not the size limit: every SIGHUP reload reads
// the file, and a 4 MiB zeroed buffer per read (the limit) kept the allocator's heap growing in the
// soak (issue 11). The limit itself still holds, to the byte.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { maxConfigBytes, readConfigFile } from '../../lib/config/config-file.js';

const dir = mkdtempSync(join(tmpdir(), 'lb4-soak-rss-read-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const options = { listen: '127.0.0.1:0', backends: ['127.0.0.1:9'], workers: 2 };

t.test('a small file is read with buffers of about its size', async (t) => {
  const path = join(dir, 'small.json');
  writeFileSync(path, JSON.stringify(options));
  // Buffers no longer referenced stay counted in arrayBuffers until a collection, so the growth
  // across one read is at least what that read allocated (a collection in between can only lower it).
  for (let i = 0; i < 5; i++) {
    const before = process.memoryUsage().arrayBuffers;
    t.same(await readConfigFile(path), options);
    const grown = process.memoryUsage().arrayBuffers - before;
    t.ok(grown < 256 * 1024, `read ${i + 1}: ${grown} bytes of buffers for a ${JSON.stringify(options).length}-byte file`);
  }
});

t.test('a file of exactly the limit is read whole; one byte more is refused', async (t) => {
  const text = JSON.stringify(options);
  const exact = join(dir, 'exact.json');
  writeFileSync(exact, text + ' '.repeat(maxConfigBytes - text.length));
  t.same(await readConfigFile(exact), options, `${maxConfigBytes} bytes`);
  const over = join(dir, 'over.json');
  writeFileSync(over, text + ' '.repeat(maxConfigBytes + 1 - text.length));
  await t.rejects(readConfigFile(over), { code: 'LB4_CONFIG_FILE', message: new RegExp(`more than the ${maxConfigBytes}`) });
});
