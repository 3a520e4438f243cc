// The dashboard in a real headless browser (Debian's chromium, driven by playwright-core): a real
// lb4 with two real backends and TCP health checks, its admin API behind a token. The page asks
// for the token, shows both backends, shows rates once traffic flows, shows a backend going down
// when it closes, and drains the other with its button. Every request the page makes goes to the
// admin API itself. With LB4_DASHBOARD_SCREENSHOT=path the final page is saved there (the README's
// docs/dashboard.png comes from `npm run screenshot`).

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import t from 'tap';
import { EventEmitter } from 'node:events';
import { startAdminServer } from '../../lib/api/server.js';
import type { AdminTarget } from '../../lib/api/target.js';
import type { ClusterStatus } from '../../lib/cluster/cluster-types.js';
import { rejectReasons } from '../../lib/cluster/heartbeat.js';
import { silentLogger } from '../../lib/log.js';
import { buildDist, killChildren, startCli, waitMs, type Cli } from '../helpers/cli.js';
import { connect, echoBackend, readAll, within } from '../helpers/sockets.js';

const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
const isRoot = process.getuid?.() === 0;

// As root (CI) a missing chromium is a failure, not a skip: .ci/run installs it.
const skip = chromiumPath === undefined && !isRoot ? 'chromium is not installed (apt-get install chromium); .ci/run installs it' : false;

const token = 'dashboard-test-token';
const dir = mkdtempSync(join(tmpdir(), 'lb4-dashboard-'));
let browser: Browser | undefined;

t.before(buildDist);
t.teardown(async () => {
  await browser?.close();
  killChildren();
  rmSync(dir, { recursive: true, force: true });
});

/** One echo exchange through the balancer, so counters move. */
async function exchange(port: number): Promise<void> {
  const socket = await connect(port);
  socket.end(Buffer.alloc(16 * 1024, 1));
  const { data } = await readAll(socket, waitMs);
  if (data.length !== 16 * 1024) throw new Error(`echo returned ${data.length} bytes`);
}

/** The admin API's JSON, with the token, as a script would read it. */
async function backendsJson(url: string): Promise<Array<{ id: string; state: string; health: string }>> {
  const res = await within(fetch(`${url}/backends`, { headers: { authorization: `Bearer ${token}` } }), waitMs, 'GET /backends');
  return (await res.json()) as Array<{ id: string; state: string; health: string }>;
}

const row = (page: Page, id: string) => page.locator(`#backend-rows tr[data-backend="${id}"]`);

t.test('the dashboard shows backends, rates, a backend going down, and drains one', { skip }, async (t) => {
  t.ok(chromiumPath, 'chromium is installed (as root, .ci/run installs it)');
  const a = await echoBackend();
  const b = await echoBackend();
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const { cli, ports } = await startCli(
    ['--listen', '127.0.0.1:0', '--backend', `${a.address},id=a`, '--backend', `${b.address},id=b`, '--health-check', 'tcp', '--health-interval', '200ms', '--fall', '2', '--admin', '127.0.0.1:0', '--log-format', 'json'],
    { env: { LB4_ADMIN_TOKEN: token } },
  );
  const url = (await (cli as Cli).waitForLog('admin API listening')).url as string;
  const origin = new URL(url).origin;

  browser = await chromium.launch({ executablePath: chromiumPath, args: isRoot ? ['--no-sandbox'] : [], timeout: 60_000 });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(15_000);
  const offsite: string[] = [];
  const pageErrors: string[] = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(`${origin}/`) && !request.url().startsWith('data:')) offsite.push(request.url());
  });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) pageErrors.push(message.text());
  });

  const loaded = await page.goto(url);
  t.equal(loaded?.status(), 200, 'GET / answers a browser with the page');
  t.match(loaded?.headers()['content-type'], /^text\/html/);

  // Without the token the page can only ask for it.
  await page.locator('#token-form').waitFor({ state: 'visible' });
  await page.locator('[data-testid=token]').fill(token);
  await page.locator('#token-form button[type=submit]').click();
  await row(page, 'a').and(page.locator('[data-state=up]')).waitFor();
  await row(page, 'b').and(page.locator('[data-state=up]')).waitFor();
  t.pass('with the token, both backends show as up');
  t.equal(await page.evaluate(() => sessionStorage.getItem('lb4-admin-token')), token, 'the token is kept in sessionStorage');

  // Traffic: the listener's flows/s and bytes/s go above zero. The page shows the rate over the
  // last poll, so the watch starts before the traffic and catches the poll that saw it.
  const rateShown = page.waitForFunction(
    () => {
      const cells = Array.from(document.querySelectorAll('#listener-rows tr:first-child td'), (td) => td.textContent ?? '');
      const zero = (text: string) => text === '–' || /^0(\.0)? /.test(`${text} `);
      return !zero(cells[6]) && !zero(cells[7]) && !zero(cells[8]) ? cells : false;
    },
    undefined,
    { polling: 50, timeout: 15_000 },
  );
  for (let i = 0; i < 20; i++) await exchange(ports[0]);
  const cells = (await (await rateShown).jsonValue()) as string[];
  t.equal(cells[0], '127.0.0.1:0', 'the listener is shown by name');
  t.match(cells[7], /^\d+(\.\d)? (B|KiB|MiB)\/s$/, `bytes in per second shown: ${cells[7]}`);
  t.equal(await page.locator('#chart-flows canvas').count(), 1, 'the flows chart is drawn');
  t.equal(await page.locator('#chart-bytes canvas').count(), 1, 'the bytes chart is drawn');

  // Backend b closes: health checks fail and the page shows it down, with the reason.
  const downSince = Date.now();
  await b.close();
  await row(page, 'b').and(page.locator('[data-state=down]')).waitFor({ timeout: 10_000 });
  t.ok(Date.now() - downSince < 10_000, 'b shows as down within seconds');
  t.not((await row(page, 'b').locator('.reason').textContent())?.trim() ?? '', '', 'with the health check\'s reason');

  // Drain a from the page: the request passes the Origin check (same origin) and the token check.
  await row(page, 'a').getByRole('button', { name: 'drain' }).click();
  await row(page, 'a').and(page.locator('[data-state=draining]')).waitFor();
  // And a weight, typed into the row and set.
  await row(page, 'b').getByRole('spinbutton').fill('5');
  await row(page, 'b').getByRole('button', { name: 'set weight' }).click();
  await page.waitForFunction(() => document.querySelector('#backend-rows tr[data-backend="b"]')?.children[5].textContent === '5');
  const after = await backendsJson(url);
  t.equal((after.find((x) => x.id === 'b') as { weight?: number } | undefined)?.weight, 5, 'the balancer has the new weight');
  t.equal(after.find((x) => x.id === 'a')?.state, 'draining', 'the balancer has drained a');
  t.equal(after.find((x) => x.id === 'b')?.health, 'down', 'and sees b down');
  t.equal(await page.locator('#problem').isHidden(), true, 'no error shown');
  t.equal(await page.locator('#cluster').isHidden(), true, 'no HA panel for a balancer that is not one of a pair');

  await page.screenshot({ path: process.env.LB4_DASHBOARD_SCREENSHOT ?? join(dir, 'dashboard.png'), fullPage: true });
  t.same(offsite, [], 'the page requested nothing from anywhere but the admin API');
  t.same(pageErrors, [], 'no script errors, no Content-Security-Policy violations');
});

t.test('an HA node: the page shows this node, the peer and the VIPs', { skip }, async (t) => {
  // The pair itself is test/ha/'s (root, namespaces); here the admin API serves a node's status
  // from a stand-in, and the page is what is tested.
  const cluster: ClusterStatus = {
    node: { id: 'lb-a', instance: '0123456789abcdef', priority: 200, state: 'active', stateSince: 1, healthyBackends: 2, generation: 7, preempt: true, heartbeat: { address: '127.0.0.1', port: 7000 }, intervalMs: 100, deadAfter: 3 },
    peer: { address: '127.0.0.2', port: 7000, up: true, id: 'lb-b', instance: 'fedcba9876543210', duplicateNodeId: false, priority: 100, state: 'backup', healthyBackends: 2, generation: 7, lastHeartbeatAgeMs: 40, leaving: false, restarts: 0 },
    generationMismatch: false,
    vips: [{ address: '192.0.2.10/24', dev: 'veth0', held: true }],
    transitions: 3,
    recentTransitions: [],
    heartbeats: { sent: 10, sendErrors: 0, accepted: 9, rejected: Object.fromEntries(rejectReasons.map((r) => [r, 0])) as ClusterStatus['heartbeats']['rejected'] },
    vipErrors: 0,
  };
  const target = Object.assign(new EventEmitter(), {
    config: { workers: 1, listeners: [] },
    uptimeSeconds: 5,
    stats: () => ({ listeners: [], backends: [], droppedEvents: 0 }),
    clusterStatus: () => cluster,
  }) as unknown as AdminTarget;
  const admin = await startAdminServer(target, { kind: 'tcp', host: '127.0.0.1', port: 0, token: null } as never, silentLogger());
  t.teardown(() => admin.close());
  browser ??= await chromium.launch({ executablePath: chromiumPath, args: isRoot ? ['--no-sandbox'] : [], timeout: 60_000 });
  const page = await browser.newPage();
  t.teardown(() => page.close());
  await page.goto(admin.url);
  await page.locator('#cluster').waitFor({ state: 'visible', timeout: 15_000 });
  const text = (await page.locator('#cluster-rows').textContent()) ?? '';
  t.match(text, /lb-a: active, priority 200/, 'this node and its state');
  t.match(text, /lb-b: backup, priority 100, heard 40 ms ago/, 'the peer and when it was heard');
  t.match(text, /192\.0\.2\.10\/24 on veth0 \(held\)/, 'the VIPs held');
});
