// The failover bench (bench/failover.mjs): how an outage is read from the client's attempts, and,
// as root, a short real run and a run interrupted with SIGINT, each followed by the check that
// the bench left no namespace and no process behind. Every process the bench starts inherits a
// marker in its environment, so "none left" is read from /proc, whatever the process is.

import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { buildDist, root } from '../helpers/cli.js';
import { nodeCommand } from '../helpers/netns-core.mjs';
import { isRoot, notRootMessage } from '../helpers/netns.js';
import { outage, type Attempt } from '../helpers/pair-topology.mjs';
import { until, within } from '../helpers/sockets.js';

const run = promisify(execFile);
const bench = join(root, 'bench', 'failover.mjs');

t.test('outage: from the failure to the first connection started after it that was served', async (t) => {
  const at = 1000;
  const attempts: Attempt[] = [
    { start: 970, end: 975, ok: true, from: 's1' },
    { start: 990, end: 1003, ok: true, from: 's2' }, // started before the failure: does not count as back
    { start: 1001, end: 1002, ok: false, from: '' },
    { start: 1011, end: 2011, ok: false, from: '' }, // no reply within the client's timeout
    { start: 1021, end: 1240, ok: true, from: 's1' }, // slow, but the first started after and served
    { start: 1031, end: 1040, ok: false, from: '' }, // started before the first served one: counts
    { start: 1231, end: 1236, ok: true, from: 's2' }, // ends first
    { start: 1241, end: 1242, ok: false, from: '' }, // after the first served one: not counted
  ];
  t.same(outage(attempts, at), { servedAfterMs: 1236 - 1000, gapMs: 1236 - 975, failedProbes: 3 }, 'served again at the earliest end among those started after; the gap from the last served end before; 3 failed in between');
  t.equal(outage(attempts.slice(0, 4), at), undefined, 'nothing served since the failure: no outage yet');
  t.same(outage(attempts.slice(2), at), { servedAfterMs: 236, gapMs: 236, failedProbes: 3 }, 'nothing served before: the gap starts at the failure');
});

if (!isRoot) {
  t.comment(`test/bench/failover.test.ts: the runs skipped: ${notRootMessage}`);
  t.pass('skipped: not root', { skip: notRootMessage });
} else {
  await buildDist();
  const marker = `${process.pid}-${Date.now()}`;
  const markerEntry = Buffer.from(`LB4_FAILOVER_TEST_MARK=${marker}\0`);
  const withAnchors = (await Promise.all(['keepalived', 'haproxy'].map((p) => run('which', [p]).then(() => true, () => false)))).every(Boolean);
  if (!withAnchors) t.comment('keepalived or haproxy missing: the runs measure lb4 only');

  /** Processes (pid and command) that carry this test's marker: the bench's, whatever they are. */
  const marked = () => {
    const out: string[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      try {
        if (readFileSync(`/proc/${entry}/environ`).includes(markerEntry)) out.push(`${entry} ${readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()}`);
      } catch {
        // gone, or a kernel thread
      }
    }
    return out;
  };
  const namespacesOf = async (pid: number) => (await run('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(`lb4fo-${pid}-`));

  /** `node bench/failover.mjs ARGS`, with the marker in its environment; its output lines. */
  const startBench = (t: Test, args: string[]) => {
    const [command, argv] = nodeCommand(bench, args);
    const child = spawn(command, argv, { cwd: root, env: { ...process.env, LB4_FAILOVER_TEST_MARK: marker }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    // If an assertion throws first, a SIGINT still makes the bench clean up after itself.
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        await within(exited, 20_000, 'the bench to exit after SIGINT').catch(() => child.kill('SIGKILL'));
      }
    });
    const lines: string[] = [];
    let stderr = '';
    createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
    child.stderr!.on('data', (d) => (stderr += d));
    return { child, exited, lines, stderr: () => stderr };
  };
  const systems = withAnchors ? ['lb4', 'keepalived-0.1s', 'lb4-sigterm'] : ['lb4', 'lb4-sigterm'];
  const labels: Record<string, [string, string]> = { lb4: ['lb4', 'SIGKILL'], 'keepalived-0.1s': ['keepalived 0.1 s + HAProxy', 'SIGKILL'], 'lb4-sigterm': ['lb4, clean stop (SIGTERM)', 'SIGTERM'] };

  t.test('a short run measures every system, then leaves no namespace and no process', async (t) => {
    const b = startBench(t, ['--systems', systems.join(','), '--kills', '1', '--stops', '1', '--no-save']);
    await until(() => b.lines.some((l) => l.includes('served again after')) || b.child.exitCode !== null, 120_000, 'the first failure to be measured');
    const during = marked();
    // Whichever system's turn it is (lb4, or keepalived + HAProxy), its nodes, backends and prober run now.
    t.ok(during.length > 0, `the marker reaches the processes in the namespaces (so "none left" below can fail): ${during.length} marked`);
    t.equal((await namespacesOf(b.child.pid!)).length, 6, 'the bench made its six namespaces');
    const [code] = await within(b.exited, 150_000, 'the bench to finish');
    t.equal(code, 0, `the bench exits 0 (stderr: ${b.stderr().slice(-500)})`);
    for (const name of systems) {
      const [label, signal] = labels[name];
      const row = b.lines.find((l) => l.startsWith(`| ${label} | ${signal} | 1 |`));
      t.match(row, /^\| [^|]+ \| SIG\w+ \| 1 \| \d+ \| \d+ \| \d+ \| \d+ \| \d+ \(\d+\.\d\) \|/, `a result row for ${label}`);
    }
    if (withAnchors) t.match(b.lines.find((l) => l.startsWith('| keepalived 0.1 s + HAProxy | SIGKILL')), /\| \d+\.\d{3}, \d+\.\d{3}, \d+\.\d{3} \|$/, "the anchor's row has lb4 / keepalived 0.1 s (median, worst, mean)");
    t.same(await namespacesOf(b.child.pid!), [], 'no namespace left');
    await until(() => marked().length === 0, 5000, 'no process of the bench left').catch(() => {});
    t.same(marked(), [], 'no process left');
  });

  t.test('SIGINT in the middle of a run: every namespace and process goes', async (t) => {
    const b = startBench(t, ['--systems', withAnchors ? 'keepalived-0.1s' : 'lb4', '--kills', '20', '--no-save']);
    await until(() => b.lines.some((l) => l.includes('served again after')) || b.child.exitCode !== null, 120_000, 'the first failure to be measured');
    t.equal((await namespacesOf(b.child.pid!)).length, 6, 'namespaces in use');
    const during = marked();
    t.ok(during.length >= 4, `processes in use: ${during.length}`);
    if (withAnchors) t.ok(during.filter((p) => p.includes(' keepalived --dont-fork')).length >= 2, 'keepalived and its VRRP child among them');
    b.child.kill('SIGINT');
    const [code, signal] = await within(b.exited, 20_000, 'the bench to exit after SIGINT');
    t.same([code, signal], [130, null], 'the bench exits 130');
    t.same(await namespacesOf(b.child.pid!), [], 'no namespace left');
    await until(() => marked().length === 0, 5000, 'no process of the bench left').catch(() => {});
    t.same(marked(), [], 'no process left');
  });
}
