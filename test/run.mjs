#!/usr/bin/env node
// The whole test suite, as `npm test` runs it: the type check, the C++ unit tests of
// native/core, then every tap test. Ends with one plain line, "N passed, N failed", and exits
// non-zero if anything failed.

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const totals = { passed: 0, failed: 0, skipped: 0 };

// Runs a command with its output passed through, and hands each line to `onLine`.
function run(command, args, onLine = () => {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let pending = '';
    const feed = (chunk, out) => {
      out.write(chunk);
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      lines.forEach(onLine);
    };
    child.stdout.on('data', (c) => feed(c, process.stdout));
    child.stderr.on('data', (c) => feed(c, process.stderr));
    child.on('error', (err) => {
      console.error(`cannot run ${command}: ${err.message}`);
      resolve(127);
    });
    child.on('close', (code, signal) => {
      if (pending) onLine(pending);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

async function step(name, command, args) {
  console.log(`\n# ${name}: ${command} ${args.join(' ')}`);
  const code = await run(command, args);
  if (code === 0) totals.passed++;
  else totals.failed++;
  return code === 0;
}

const bin = (name) => join(root, 'node_modules', '.bin', name);

await step('type check', bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']);

// native/core unit tests: a plain CMake build, no Node headers involved; once under
// AddressSanitizer + UBSan and once under ThreadSanitizer (the engine, its workers and the control
// thread share queues and counters).
async function nativeTests(sanitizer) {
  const dir = `build/core-tests-${sanitizer}`;
  if (
    !(await step(`native unit tests (${sanitizer}): configure`, 'cmake', ['-S', 'test/native', '-B', dir, '-DCMAKE_BUILD_TYPE=Debug', `-DLB4_SANITIZER=${sanitizer}`, '--log-level=WARNING'])) ||
    !(await step(`native unit tests (${sanitizer}): build`, 'cmake', ['--build', dir, '-j2']))
  ) {
    return;
  }
  let counted = false;
  let failedHere = 0;
  const code = await run(join(root, dir, 'lb4_core_tests'), [], (line) => {
    const m = /^# native: (\d+) passed, (\d+) failed/.exec(line);
    if (m) {
      counted = true;
      totals.passed += Number(m[1]);
      failedHere = Number(m[2]);
      totals.failed += failedHere;
    }
  });
  // A sanitizer report makes the program exit non-zero after every test passed: one failure.
  if (!counted || (code !== 0 && failedHere === 0)) totals.failed++;
}
await nativeTests('address');
await nativeTests('thread');

// tap: its closing "# { total, pass, fail, ... }" line is read for the counts.
let tapCounted = false;
const tapCode = await run(bin('tap'), ['--reporter=tap', ...process.argv.slice(2)], (line) => {
  const m = /^# \{ total: (\d+)(.*)\}/.exec(line);
  if (!m) return;
  tapCounted = true;
  const field = (name) => Number(new RegExp(`${name}: (\\d+)`).exec(m[2])?.[1] ?? 0);
  totals.passed += field('pass');
  totals.failed += field('fail');
  totals.skipped += field('skip') + field('todo');
});
if (!tapCounted || (tapCode !== 0 && totals.failed === 0)) totals.failed++;

const skipped = totals.skipped ? `, ${totals.skipped} skipped` : '';
console.log(`\n${totals.passed} passed, ${totals.failed} failed${skipped}`);
process.exit(totals.failed > 0 ? 1 : 0);
