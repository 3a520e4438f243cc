// The access log's conntrack event stream (lib/nat/conntrack-events.ts) against a fake
// `conntrack`: the events it reads, the kernel's overflow warnings it counts, and what it says
// when the tool ends. And the NAT driver's warning when events were dropped.

import { readFileSync } from 'node:fs';
import t from 'tap';
import { ConntrackEvents, maxLineBytes, type ConntrackEnd } from '../../lib/nat/conntrack-events.js';
import { NatDriver } from '../../lib/nat/nat-driver.js';
import { NativeAlgorithm, NativeBackendState } from '../../lib/engine/native-types.js';
import { captureLogger } from '../helpers/fake-balancer.js';
import type { LogLine } from '../helpers/cli.js';
import { fakeTools } from '../helpers/fake-tools.js';

const { file, script } = fakeTools(t, 'lb4-ctevents-');

// The event stream never keeps a process alive (its child and pipes are unref'd): while a test
// waits for it, this timer does.
const keepAlive = setInterval(() => {}, 1000);
t.teardown(() => clearInterval(keepAlive));

const destroyLine =
  '[DESTROY] ipv4     2 tcp      6 src=10.10.0.2 dst=10.10.0.1 sport=40000 dport=80 packets=5 bytes=700 src=10.20.0.11 dst=10.10.0.2 sport=8080 dport=40000 packets=4 bytes=900 [ASSURED] id=7';
// What conntrack 1.4.7 prints each time the kernel answers ENOBUFS.
const overflow = [
  'WARNING: We have hit ENOBUFS! We are losing events.',
  'This message means that the current netlink socket buffer size is too small.',
  'Please, check --buffer-size in conntrack(8) manpage.',
]
  .map((l) => `echo "${l}" >&2`)
  .join('\n');

t.test('events are read, overflows counted, and the end says why without the overflow advice', async (t) => {
  const binary = script(
    'conntrack-ends',
    `echo "$@" > ${file('args')}\necho '${destroyLine}'\n${overflow}\n${overflow}\necho "conntrack v1.4.7 (conntrack-tools): Operation not permitted" >&2\necho "NOTICE: Netlink socket buffer size has been set to 33554432 bytes." >&2\nexit 1`,
  );
  const events = new ConntrackEvents(binary);
  const ends: ConntrackEnd[] = [];
  let overflows = 0;
  const ended = new Promise<string>((resolve) => events.start((e) => ends.push(e), resolve, () => overflows++));
  t.ok(events.running);
  const message = await ended;
  t.equal(message, 'conntrack -E ended (exit 1): conntrack v1.4.7 (conntrack-tools): Operation not permitted', 'the last line that is not overflow advice or a notice');
  t.equal(overflows, 2, 'each ENOBUFS warning counted once');
  t.match(ends, [{ entry: { id: 7, bytesToBackend: 700, bytesToClient: 900, backend: { ip: '10.20.0.11', port: 8080 } } }]);
  t.equal(readFileSync(file('args'), 'utf8').trim(), '-E -e DESTROY -o extended,id');
  t.notOk(events.running, 'an ended stream can be started again');
});

t.test('a missing conntrack binary ends the stream once, with its error', async (t) => {
  const events = new ConntrackEvents(file('no-such-conntrack'));
  const messages: string[] = [];
  events.start(() => {}, (m) => messages.push(m));
  // The child's 'close' follows its 'error': once the stream is down, one message was given.
  await new Promise<void>((resolve) => {
    const poll = () => (events.running ? setTimeout(poll, 5) : resolve());
    poll();
  });
  t.equal(messages.length, 1);
  t.match(messages[0], /ENOENT/);
});

t.test('an overlong line is dropped whole; the lines after it are read', async (t) => {
  // A valid event padded past the limit, then a plain one: only the second is taken.
  const padded = `echo '${destroyLine.replace('id=7', 'id=8')}' | tr -d '\\n'; head -c ${maxLineBytes * 2} /dev/zero | tr '\\0' ' '; echo`;
  const binary = script('conntrack-overlong', `${padded}\necho '${destroyLine}'\nexit 0`);
  const events = new ConntrackEvents(binary);
  const ends: ConntrackEnd[] = [];
  await new Promise<string>((resolve) => events.start((e) => ends.push(e), resolve));
  t.same(ends.map((e) => e.entry.id), [7], 'the event after the overlong line, not the overlong one');
});

t.test('the NAT driver warns of dropped events at once, then sums them until the next warning', async (t) => {
  // Three overflows in a burst, then the stream stays open until stopped.
  const binary = script('conntrack-overflows', `${overflow}\n${overflow}\n${overflow}\nexec sleep 30`);
  const logs: LogLine[] = [];
  const driver = new NatDriver({ table: 'lb4', log: captureLogger(logs), conntrack: binary, nft: 'true', skipHostCheck: true });
  driver.setListener(0, { name: 'web', protocol: 'tcp', ip: '10.10.0.1', port: 80, snat: 'none', algorithm: NativeAlgorithm.roundrobin }, [
    { key: 1, id: 'web/10.20.0.11:8080', ip: '10.20.0.11', port: 8080, weight: 1, state: NativeBackendState.up },
  ]);
  driver.setFlowLog(1, () => {});
  const warned = () => logs.filter((l) => /dropped conntrack events/.test(String(l.msg)));
  while (warned().length === 0) await new Promise((r) => setTimeout(r, 10));
  t.match(warned()[0], { level: 40, overflows: 1 }, 'the first overflow is logged at once');
  // The other two arrive within the quiet window: held, and logged when the driver closes.
  while (driver.eventOverflows < 3) await new Promise((r) => setTimeout(r, 10));
  t.equal(warned().length, 1, 'nothing more logged within the window');
  driver.close();
  t.same(
    warned().map((l) => l.overflows),
    [1, 2],
    'the rest in one line, not one line per overflow',
  );
});
