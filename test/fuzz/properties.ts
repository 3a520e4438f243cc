// The input properties lb4 promises for bad input from a person or the network, as fast-check
// properties over generated input: the parsers and the validator never crash; a rejection is
// always an Lb4Error that names the field it is about; what they accept is well formed; and a
// heartbeat decoder fed garbage rejects it with a reason, never throws.
//
// test/fuzz/inputs.test.ts runs each property briefly in `npm test`; `npm run fuzz` runs them with
// LB4_FUZZ_SCALE set, over a million cases in all, and reports the count.

import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { parseHostPort, formatHostPort } from '../../lib/config/address.js';
import { parseDuration } from '../../lib/config/duration.js';
import { optionTable } from '../../lib/config/options.js';
import { parseBackendSpec, validateOptions } from '../../lib/config/validate.js';
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat } from '../../lib/cluster/heartbeat.js';
import { Lb4Error } from '../../lib/errors.js';
import type { BalancerOptions } from '../../lib/types.js';

/** A property with how many cases `npm test` runs of it. */
export interface InputProperty {
  name: string;
  property: fc.IRawProperty<any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- each property has its own input type
  runs: number;
}

/** Checks a rejection: an Lb4Error naming a field (when `field` is expected), nothing else. */
function expectLb4Error(err: unknown, what: string, needField = true): void {
  if (!(err instanceof Lb4Error)) throw new Error(`${what} threw a ${(err as Error)?.constructor?.name ?? typeof err}, not an Lb4Error: ${String((err as Error)?.stack ?? err)}`);
  if (needField && !err.field) throw new Error(`${what} refused without naming a field: ${err.message}`);
  if (err.message.includes('\n')) throw new Error(`${what}: the error is not one line: ${JSON.stringify(err.message)}`);
}

// Strings that look like what people type: addresses, numbers, units, junk, and unicode.
const hostText = fc.oneof(
  fc.constantFrom('127.0.0.1', '::1', '0.0.0.0', '::', 'localhost', '[::1]', '255.255.255.255', '256.1.1.1', '1.2.3', '::ffff:127.0.0.1', 'fe80::1%lo', '[fe80::1%lo]', '', ' '),
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4Extended(),
  fc.string({ maxLength: 20 }),
);
const portText = fc.oneof(
  fc.integer({ min: -2, max: 70_000 }).map(String),
  fc.constantFrom('0', '65535', '65536', '-1', '1e3', '0x10', '', '08', '+80', '80.0', ' 80', '９０'),
  fc.string({ maxLength: 6 }),
);
const suffix = fc.constantFrom('', '', '/udp', '/tcp', '/sctp', '/', ',weight=3', ',weight=0', ',weight=x', ',weight=', ',id=a', ',foo=1');
const addressText = fc
  .tuple(hostText, portText, suffix, fc.boolean())
  .map(([host, port, tail, bracket]) => `${bracket && host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}${tail}`);
const anyText = fc.oneof(addressText, hostText, portText, fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 10 }));
const durationText = fc.oneof(
  fc.constantFrom('1s', '100ms', '2m', '0s', '1h', '1d', '-1s', '1.5s', 's', '1e3ms', '10', '0', '5 s', 'Infinity', 'NaN', '1ms1s'),
  fc.integer({ min: -10, max: 1e10 }),
  fc.double(),
  fc.string({ maxLength: 8 }),
);
const junk = fc.oneof(anyText, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.array(anyText, { maxLength: 3 }), fc.object({ maxDepth: 1 }));
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: arb }, { weight: 1, arbitrary: junk });

const backendObject = fc.record(
  { address: maybe(addressText), weight: maybe(fc.integer({ min: -1, max: 300 })), id: maybe(fc.string({ maxLength: 12 })), state: maybe(fc.constantFrom('up', 'down', 'draining', 'maintenance', 'off')), wieght: junk },
  { requiredKeys: [] },
);
const backends = fc.array(fc.oneof(addressText, backendObject, junk), { maxLength: 4 });
const health = fc.record(
  { check: maybe(fc.constantFrom('tcp', 'http:/health', 'http:', 'udp', 'http://x')), interval: durationText, timeout: durationText, rise: junk, fall: junk },
  { requiredKeys: [] },
);
const listener = fc.record(
  { listen: maybe(addressText), name: maybe(fc.string({ maxLength: 12 })), backends, algorithm: maybe(fc.constantFrom('roundrobin', 'leastconn', 'maglev', 'random')), health, protocol: maybe(fc.constantFrom('tcp', 'udp', 'sctp')) },
  { requiredKeys: [] },
);
// Every tunable option (durations, counts, sizes) with values near and far from valid ones.
const tunables = Object.fromEntries(
  Object.values(optionTable)
    .filter((spec) => 'config' in spec && spec.field && !spec.field.includes('.'))
    .map((spec) => [spec.field as string, spec.kind === 'duration' ? durationText : fc.oneof(fc.integer({ min: -5, max: 2_000_000 }), junk)]),
);
const document = fc.record(
  {
    listen: fc.oneof(addressText, fc.array(addressText, { maxLength: 3 }), junk),
    backends,
    listeners: fc.oneof(fc.array(listener, { maxLength: 3 }), junk),
    algorithm: maybe(fc.constantFrom('roundrobin', 'leastconn', 'maglev')),
    health: fc.oneof(health, junk),
    admin: fc.oneof(fc.record({ listen: maybe(addressText), token: maybe(fc.string({ maxLength: 40 })), tokne: junk }, { requiredKeys: [] }), junk),
    accessLog: fc.oneof(fc.boolean(), fc.record({ sample: junk }, { requiredKeys: [] }), junk),
    cluster: fc.oneof(
      fc.record({ peer: maybe(addressText), heartbeat: maybe(addressText), priority: junk, nodeId: junk, vips: fc.array(anyText, { maxLength: 2 }), heartbeatInterval: durationText, deadAfter: junk }, { requiredKeys: [] }),
      junk,
    ),
    ...tunables,
    unknownOption: junk,
  },
  { requiredKeys: [] },
);

// Documents that are valid but for at most a couple of fields: a valid base, a few valid
// settings, then one field replaced by anything at all. These reach the checks behind the first.
const validTunables = Object.fromEntries(
  Object.values(optionTable)
    .filter((spec) => 'config' in spec && spec.field && !spec.field.includes('.'))
    .map((spec) => {
      const { min = 0, max = 1000, choices } = spec as { min?: number; max?: number; choices?: readonly string[] };
      // A choice (hashKey, forward, snat) is one of its words: a number there made every document
      // that had one invalid, and with several such options almost none got through.
      if (choices) return [spec.field as string, fc.constantFrom(...choices)];
      return [spec.field as string, spec.kind === 'duration' ? fc.integer({ min: Math.max(min, 1), max: Math.min(max, 3_600_000) }).map((ms) => `${ms}ms`) : fc.integer({ min, max: Math.max(min, Math.min(max, 64)) })];
    }),
);
const validBackend = fc.oneof(
  fc.integer({ min: 1, max: 65_535 }).map((port) => `127.0.0.1:${port}`),
  fc.record({ address: fc.integer({ min: 1, max: 65_535 }).map((port) => `[::1]:${port}`), weight: fc.integer({ min: 0, max: 256 }) }, { requiredKeys: ['address'] }),
);
const nearlyValid = fc
  .tuple(
    fc.record(
      {
        listen: fc.constantFrom('127.0.0.1:0', '[::1]:0', ':0', '127.0.0.1:0/udp', '127.0.0.2:8080'),
        backends: fc.uniqueArray(validBackend, { minLength: 1, maxLength: 3, selector: (b) => (typeof b === 'string' ? b : b.address) }),
        algorithm: fc.constantFrom('roundrobin', 'leastconn', 'maglev'),
        health: fc.record({ check: fc.constantFrom('tcp', 'http:/health'), interval: fc.constantFrom('1s', '250ms'), rise: fc.integer({ min: 1, max: 5 }) }, { requiredKeys: ['check'] }),
        admin: fc.record({ listen: fc.constantFrom('127.0.0.1:0', '[::1]:0'), token: fc.constant('0123456789abcdef0123456789abcdef') }, { requiredKeys: ['listen'] }),
        accessLog: fc.oneof(fc.boolean(), fc.record({ sample: fc.integer({ min: 1, max: 100 }) })),
        ...validTunables,
      },
      { requiredKeys: ['listen', 'backends'] },
    ),
    fc.option(fc.tuple(fc.constantFrom('listen', 'backends', 'algorithm', 'health', 'admin', 'accessLog', ...Object.keys(validTunables)), junk), { freq: 2 }),
  )
  .map(([doc, broken]) => (broken ? { ...doc, [broken[0]]: broken[1] } : doc));

/** How many generated documents validated: the generator must reach past the first check. */
export let documentsAccepted = 0;

export const inputProperties: readonly InputProperty[] = [
  {
    name: 'host:port addresses parse to a host and a port in range, or are refused naming the field',
    runs: 2_000,
    property: fc.property(anyText, fc.boolean(), fc.boolean(), (text, allowEmptyHost, allowPortZero) => {
      try {
        const { host, port } = parseHostPort(text, 'listen', { allowEmptyHost, allowPortZero });
        if (!Number.isInteger(port) || port < (allowPortZero ? 0 : 1) || port > 65_535) throw new Error(`"${text}" gave port ${port}`);
        if (!allowEmptyHost && host === '') throw new Error(`"${text}" gave an empty host`);
        // What lb4 prints for an address parses back to the same address.
        const again = parseHostPort(formatHostPort(host, port), 'listen', { allowEmptyHost, allowPortZero });
        if (again.host !== host || again.port !== port) throw new Error(`"${text}" does not survive formatting: ${host} ${port} -> ${again.host} ${again.port}`);
      } catch (err) {
        expectLb4Error(err, `parseHostPort(${JSON.stringify(text)})`);
      }
    }),
  },
  {
    name: 'durations parse to a finite number of milliseconds, or are refused naming the field',
    runs: 2_000,
    property: fc.property(fc.oneof(durationText, junk), (value) => {
      try {
        const ms = parseDuration(value, 'connectTimeout');
        if (!Number.isFinite(ms) || ms < 0) throw new Error(`${JSON.stringify(value)} gave ${ms} ms`);
      } catch (err) {
        expectLb4Error(err, `parseDuration(${JSON.stringify(value)})`);
      }
    }),
  },
  {
    name: 'backend specs (host:port[,weight=N]) parse or are refused naming the field',
    runs: 2_000,
    property: fc.property(anyText, (text) => {
      try {
        parseBackendSpec(text, 'backends[0]');
      } catch (err) {
        expectLb4Error(err, `parseBackendSpec(${JSON.stringify(text)})`);
      }
    }),
  },
  {
    name: 'random option documents are accepted or refused with an Lb4Error naming the field',
    runs: 1_000,
    property: fc.asyncProperty(fc.oneof(document, nearlyValid), async (options) => {
      try {
        const config = await validateOptions(options as BalancerOptions);
        documentsAccepted++;
        if (config.listeners.length === 0) throw new Error('a config with no listener was accepted');
        for (const l of config.listeners) {
          if (l.backends.length === 0) throw new Error(`listener ${l.name} was accepted with no backend`);
        }
      } catch (err) {
        expectLb4Error(err, `validateOptions(${JSON.stringify(options)})`);
      }
    }),
  },
  {
    name: 'heartbeats: garbage, truncation and single bit flips are rejected with a reason, never thrown',
    runs: 2_000,
    property: fc.property(
      fc.oneof(
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }).map((a) => ({ bytes: Buffer.from(a), mutated: true })) },
        { weight: 2, arbitrary: fc.tuple(fc.nat(), fc.nat(7), fc.boolean()).map(([at, bit, cut]) => mutateHeartbeat(at, bit, cut)) },
      ),
      ({ bytes, mutated }) => {
        const result = decodeHeartbeat(bytes, heartbeatKey);
        if (mutated && result.ok) throw new Error(`a damaged heartbeat was accepted: ${bytes.toString('hex')}`);
        if (!mutated && !result.ok) throw new Error('an intact heartbeat was refused');
      },
    ),
  },
];

const heartbeatKey = randomBytes(32);
const sampleHeartbeat: Heartbeat = {
  nodeId: 'node-a',
  priority: 100,
  state: 'active',
  healthyBackends: 3,
  generation: 7,
  epoch: 1_700_000_000_000,
  sequence: 42,
  timestamp: 1_700_000_000_123,
  leaving: false,
  instance: '0123456789abcdef',
};
const intactHeartbeat = encodeHeartbeat(sampleHeartbeat, heartbeatKey);

/** The sample heartbeat with one bit flipped (or cut short at that byte). */
function mutateHeartbeat(at: number, bit: number, cut: boolean): { bytes: Buffer; mutated: boolean } {
  const bytes = Buffer.from(intactHeartbeat);
  const i = at % bytes.length;
  if (cut) return { bytes: bytes.subarray(0, i), mutated: true };
  bytes[i] ^= 1 << bit;
  return { bytes, mutated: true };
}
