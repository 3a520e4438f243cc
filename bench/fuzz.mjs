#!/usr/bin/env node
// `npm run fuzz`: the fuzz and model-based tests at full size. The input properties
// (test/fuzz/inputs.test.ts: addresses, durations, backend specs, whole option documents,
// heartbeats) run LB4_FUZZ_SCALE times their `npm test` count, the admin API fuzz as many times
// its requests, and the data-plane model LB4_FLOW_MODEL_RUNS flow scripts. Each test prints
// "# fuzz cases: N"; this sums them. Then the PROXY protocol parser's native fuzz driver
// (test/native/proxy_header_fuzz.cc, built under AddressSanitizer + UBSan) and the TLS
// ClientHello parser's (test/native/client_hello_fuzz.cc) each run 1,000,000 x scale / 120
// inputs. It ends with one line: cases run, files failed.
//
//   npm run fuzz                      # about 2.1 million cases (several minutes on 2 cores)
//   npm run fuzz -- --scale 10        # a shorter pass

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const scaleAt = args.indexOf('--scale');
const scale = scaleAt >= 0 ? Number(args[scaleAt + 1]) : 120;
if (!Number.isFinite(scale) || scale <= 0) {
  console.error(`--scale must be a positive number, got ${args[scaleAt + 1]}`);
  process.exit(2);
}

const files = ['test/fuzz/inputs.test.ts', 'test/fuzz/admin-requests.test.ts', 'test/integration/flow-model.test.ts'];
const env = { ...process.env, LB4_FUZZ_SCALE: String(scale), LB4_FLOW_MODEL_RUNS: String(Math.round(15 * scale)) };
let cases = 0;
let failedFiles = 0;
const started = Date.now();
for (const file of files) {
  const code = await new Promise((resolve) => {
    const child = spawn(join(root, 'node_modules/.bin/tap'), ['-t', '0', '-R', 'tap', file], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let pending = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) {
        const m = /# fuzz cases: (\d+)/.exec(line);
        if (m) cases += Number(m[1]);
      }
    });
    child.on('close', (c) => resolve(c ?? 1));
  });
  if (code !== 0) failedFiles++;
}
// The native parser fuzz: its own build directory is the one `npm test` uses for ASan.
const run = (command, argv, onLine = () => {}) =>
  new Promise((resolve) => {
    const child = spawn(command, argv, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      for (const line of String(chunk).split('\n')) onLine(line);
    });
    child.on('close', (c) => resolve(c ?? 1));
  });
const nativeDir = 'build/core-tests-address';
const nativeInputs = Math.round((1_000_000 * scale) / 120);
const nativeOk =
  (await run('cmake', ['-S', 'test/native', '-B', nativeDir, '-DCMAKE_BUILD_TYPE=Debug', '-DLB4_SANITIZER=address', '--log-level=WARNING'])) === 0 &&
  (await run('cmake', ['--build', nativeDir, '-j2', '--target', 'lb4_proxy_fuzz', 'lb4_sni_fuzz'])) === 0;
if (!nativeOk) failedFiles++;
// Each driver prints "<what> fuzz: seed S, N inputs: ...".
for (const driver of ['lb4_proxy_fuzz', 'lb4_sni_fuzz']) {
  files.push(driver);
  const ok =
    nativeOk &&
    (await run(join(root, nativeDir, driver), [String(nativeInputs)], (line) => {
      const m = /^[a-z ]+ fuzz: seed \d+, (\d+) inputs/.exec(line);
      if (m) cases += Number(m[1]);
    })) === 0;
  if (nativeOk && !ok) failedFiles++;
}

console.log(`fuzz: ${cases.toLocaleString('en-US')} generated cases in ${Math.round((Date.now() - started) / 1000)} s, ${failedFiles} of ${files.length} files failed`);
process.exit(failedFiles === 0 ? 0 : 1);
