// Active health check configs: the types, defaults and limits, and the validation of an options
// object (lib/health/check-config.ts adds the CLI shorthand in front of it). Validation checks
// everything once, fills in the defaults and returns a frozen config; nothing downstream validates
// again.
//
// A validated config uses the same field names as the options (durations in milliseconds), so it
// is itself valid input: validating it again gives an equal config. Callers rely on that to
// overlay flags on a parsed config (`{ ...parseHealthFlag(text), interval: '1s' }`) and to compare
// configs across reloads.

import { isIP } from 'node:net';
import { formatDuration, parseDuration } from '../config/duration.js';
import { Lb4Error } from '../errors.js';

/** The kinds of active check. */
export const healthCheckTypes = ['tcp', 'http', 'send-expect', 'udp'] as const;
/** `tcp`, `http` or `send-expect` (TCP listeners), or `udp` (UDP listeners). */
export type HealthCheckType = (typeof healthCheckTypes)[number];

/** Options every check type takes. Durations are milliseconds or strings such as `500ms`, `2s`. */
export interface HealthCommonOptions {
  /** Time between the starts of two checks of one backend. Default 2s. */
  interval?: number | string;
  /** Time one check may take. Default 1s, or the interval if that is shorter; at most the interval. */
  timeout?: number | string;
  /** Consecutive passes that bring a down backend up. Default 2. */
  rise?: number | string;
  /** Consecutive failures that take an up backend down. Default 3. */
  fall?: number | string;
  /** Random spread of each interval, as a fraction of it (0 to 0.5): 0.1 means +-10%. Default 0.1. */
  jitter?: number | string;
  /** IP address to check instead of the backend's own (a separate health address). */
  address?: string;
  /** Port to check instead of the backend's own (a separate health port). */
  port?: number | string;
}

/** Passes when a TCP connection is established. */
export interface TcpHealthOptions extends HealthCommonOptions {
  type: 'tcp';
}

/** Sends a minimal HTTP/1.1 request and checks the status (and optionally the body). */
export interface HttpHealthOptions extends HealthCommonOptions {
  type: 'http';
  /** Request method. Default GET. */
  method?: string;
  /** Request target, starting with `/`. Default `/`. */
  path?: string;
  /** Host header. Default: the address checked, as `ip:port` (`ip` alone for port 80). */
  host?: string;
  /** Statuses that pass: `200`, `'200-299'`, `'2xx'` or `[200, 299]`. Default 200-399. */
  expectStatus?: number | string | readonly [number, number];
  /** A string the response body must contain (searched in the first 64 KiB of the response). */
  expectBody?: string;
}

/**
 * Any TCP protocol: connect, send `send` (if any), and pass once `expect` appears in what the
 * backend sends. Give each as text (UTF-8) or as hex (`sendHex`, `expectHex`), not both.
 * Without `send` it is a banner check (SSH, SMTP, FTP).
 */
export interface SendExpectHealthOptions extends HealthCommonOptions {
  type: 'send-expect';
  send?: string;
  sendHex?: string;
  expect?: string;
  expectHex?: string;
}

/** A health check as a person or program writes it. A string is the CLI shorthand ({@link parseHealthFlag}). */
/**
 * For UDP backends: send one datagram (`send` as text, or `sendHex`) from a connected socket and
 * pass on the first reply that holds `expect` (or `expectHex`): anywhere in it, or at its start
 * with `match: 'prefix'`. Without an expectation any reply passes. A refusal (ICMP port
 * unreachable), a reply without the bytes, or no reply within the timeout fails.
 */
export interface UdpHealthOptions extends HealthCommonOptions {
  type: 'udp';
  send?: string;
  sendHex?: string;
  expect?: string;
  expectHex?: string;
  /** Where `expect` must appear in the reply. Default `substring`. */
  match?: 'prefix' | 'substring';
}

export type HealthOptions = TcpHealthOptions | HttpHealthOptions | SendExpectHealthOptions | UdpHealthOptions;

interface HealthConfigCommon {
  /** Milliseconds between the starts of two checks of one target (before jitter). */
  readonly interval: number;
  /** Milliseconds one check may take; never more than `interval`. */
  readonly timeout: number;
  readonly rise: number;
  readonly fall: number;
  /** Fraction of `interval`, 0 to 0.5. */
  readonly jitter: number;
  /** Numeric IP address checked instead of the backend's. */
  readonly address?: string;
  readonly port?: number;
}

/** A validated TCP connect check. */
export interface TcpHealthConfig extends HealthConfigCommon {
  readonly type: 'tcp';
}

/** A validated HTTP check: every field filled in but `host` and `expectBody`. */
export interface HttpHealthConfig extends HealthConfigCommon {
  readonly type: 'http';
  readonly method: string;
  readonly path: string;
  readonly host?: string;
  /** Inclusive range of passing statuses. */
  readonly expectStatus: readonly [number, number];
  readonly expectBody?: string;
}

/** Exactly one of `send`/`sendHex` may be set (neither: send nothing) and exactly one of `expect`/`expectHex` is. */
export interface SendExpectHealthConfig extends HealthConfigCommon {
  readonly type: 'send-expect';
  readonly send?: string;
  /** Lower-case hex without separators. */
  readonly sendHex?: string;
  readonly expect?: string;
  /** Lower-case hex without separators. */
  readonly expectHex?: string;
}

/** A validated UDP check: exactly one of `send`/`sendHex`; at most one of `expect`/`expectHex`. */
export interface UdpHealthConfig extends HealthConfigCommon {
  readonly type: 'udp';
  readonly send?: string;
  readonly sendHex?: string;
  readonly expect?: string;
  readonly expectHex?: string;
  readonly match: 'prefix' | 'substring';
}

/** A validated, frozen health check config. */
export type HealthConfig = TcpHealthConfig | HttpHealthConfig | SendExpectHealthConfig | UdpHealthConfig;

/** Default values, in the units of {@link HealthConfig}. */
export const healthDefaults = Object.freeze({
  interval: 2000,
  timeout: 1000,
  rise: 2,
  fall: 3,
  jitter: 0.1,
  method: 'GET',
  path: '/',
  expectStatus: Object.freeze([200, 399]) as readonly [number, number],
});

/** Limits on the options, stated once for validation and documentation. */
export const healthLimits = Object.freeze({
  /**
   * Shortest interval. Checks are scheduled on a 10 ms grid (see the monitor), and below this
   * the checks would be a load of their own on the backend.
   */
  minInterval: 50,
  maxInterval: 3_600_000,
  minTimeout: 10,
  maxRiseFall: 100,
  maxJitter: 0.5,
  /** Bytes a send-expect check may send. */
  maxSendBytes: 65_536,
  /** Bytes a send-expect check may expect; they must fit well within what a check reads. */
  maxExpectBytes: 4096,
});

const commonKeys = ['type', 'interval', 'timeout', 'rise', 'fall', 'jitter', 'address', 'port'] as const;
const typeKeys: Record<HealthCheckType, readonly string[]> = {
  tcp: [],
  http: ['method', 'path', 'host', 'expectStatus', 'expectBody'],
  'send-expect': ['send', 'sendHex', 'expect', 'expectHex'],
  udp: ['send', 'sendHex', 'expect', 'expectHex', 'match'],
};
/** Every key some check type takes (the config file's JSON Schema, lib/config/schema.ts). */
export const healthCheckKeys: readonly string[] = [...new Set([...commonKeys, ...Object.values(typeKeys).flat()])];

/** An LB4_INVALID_OPTION error about `field`. */
export function invalid(field: string, detail: string): Lb4Error {
  return new Lb4Error('LB4_INVALID_OPTION', detail, { field });
}

/** A value as an error message quotes it. */
export function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** A whole number in [min, max]; numeric strings are accepted because flags and env vars are text. */
function wholeNumber(value: unknown, min: number, max: number, field: string): number {
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw invalid(field, `must be a whole number from ${min} to ${max}, got ${show(value)}`);
  }
  return n;
}

function durationIn(value: unknown, min: number, max: number, field: string): number {
  const ms = parseDuration(value, field);
  if (ms < min || ms > max) throw invalid(field, `must be from ${formatDuration(min)} to ${formatDuration(max)}, got ${formatDuration(ms)}`);
  return ms;
}

/** Printable ASCII without spaces: what may go into a request line or a header value as is. */
const visibleAscii = /^[\x21-\x7e]+$/;
/** RFC 9110 token, the syntax of a method name. */
const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Parses an expected status: `200`, `'200-299'`, `'2xx'` or `[200, 299]`. */
function parseStatusRange(value: unknown, field: string): readonly [number, number] {
  const what = `must be a status such as 200, "200-299", "2xx" or [200, 299], got ${show(Array.isArray(value) ? JSON.stringify(value) : value)}`;
  let range: [number, number] | null = null;
  if (typeof value === 'number') {
    range = [value, value];
  } else if (typeof value === 'string') {
    const text = value.trim();
    const classMatch = /^([1-5])xx$/i.exec(text);
    const rangeMatch = /^(\d{3})(?:\s*-\s*(\d{3}))?$/.exec(text);
    if (classMatch) range = [Number(classMatch[1]) * 100, Number(classMatch[1]) * 100 + 99];
    else if (rangeMatch) range = [Number(rangeMatch[1]), Number(rangeMatch[2] ?? rangeMatch[1])];
  } else if (Array.isArray(value) && value.length === 2) {
    range = [value[0], value[1]];
  }
  if (!range || !range.every((n) => Number.isInteger(n) && n >= 100 && n <= 599)) throw invalid(field, what);
  if (range[0] > range[1]) throw invalid(field, `the range ${range[0]}-${range[1]} is empty (write the lower status first)`);
  return Object.freeze(range);
}

/** Normalises hex (spaces, colons and a 0x prefix allowed) to lower case without separators. */
function parseHex(value: unknown, field: string, maxBytes: number): string {
  if (typeof value !== 'string') throw invalid(field, `must be a string of hex digits, got ${show(value)}`);
  const hex = value.replace(/^0x/i, '').replace(/[\s:]/g, '').toLowerCase();
  if (!/^[0-9a-f]*$/.test(hex) || hex.length % 2 !== 0) throw invalid(field, `must be an even number of hex digits (e.g. "50494e470d0a"), got ${show(value)}`);
  if (hex.length / 2 > maxBytes) throw invalid(field, `must be at most ${maxBytes} bytes, got ${hex.length / 2}`);
  return hex;
}

function checkText(value: unknown, field: string, maxBytes: number): string {
  if (typeof value !== 'string') throw invalid(field, `must be a string, got ${show(value)}`);
  const bytes = Buffer.byteLength(value);
  if (bytes > maxBytes) throw invalid(field, `must be at most ${maxBytes} bytes, got ${bytes}`);
  return value;
}

/**
 * Validates a health check options object and fills in the defaults (a string, the CLI shorthand,
 * is `validateHealthConfig`'s to parse first). Throws an {@link Lb4Error} (`LB4_INVALID_OPTION`, or
 * `LB4_INVALID_DURATION` for an unreadable duration) whose field names the bad option under
 * `field`, e.g. `listeners[0].health.rise: must be a whole number from 1 to 100, got 0`.
 *
 * @param raw - the options as given.
 * @param field - where they came from, used as the prefix of every error's field.
 * @returns a frozen config; validating it again gives an equal config.
 */
export function validateHealthOptions(raw: unknown, field: string): HealthConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid(field, `must be an object such as { type: 'http', path: '/healthz' } or a string such as "http:/healthz", got ${show(raw)}`);
  }
  const opts = raw as Record<string, unknown>;
  const type = opts.type;
  if (typeof type !== 'string' || !(healthCheckTypes as readonly string[]).includes(type)) {
    throw invalid(`${field}.type`, `must be one of ${healthCheckTypes.join(', ')}, got ${show(type)}`);
  }
  const checkType = type as HealthCheckType;
  const known = [...commonKeys, ...typeKeys[checkType]];
  for (const key of Object.keys(opts)) {
    if (known.includes(key) || opts[key] === undefined) continue;
    const owner = healthCheckTypes.find((t) => typeKeys[t].includes(key));
    throw invalid(`${field}.${key}`, owner ? `only applies to ${owner} checks, not ${checkType}` : `unknown option (known for ${checkType}: ${known.join(', ')})`);
  }

  const interval = opts.interval === undefined ? healthDefaults.interval : durationIn(opts.interval, healthLimits.minInterval, healthLimits.maxInterval, `${field}.interval`);
  // The default timeout shrinks with a short interval rather than making the interval an error.
  const timeout = opts.timeout === undefined ? Math.min(healthDefaults.timeout, interval) : durationIn(opts.timeout, healthLimits.minTimeout, healthLimits.maxInterval, `${field}.timeout`);
  if (timeout > interval) {
    throw invalid(`${field}.timeout`, `must not exceed the interval (${formatDuration(interval)}), got ${formatDuration(timeout)}: a target has one check in flight at a time`);
  }
  const rise = opts.rise === undefined ? healthDefaults.rise : wholeNumber(opts.rise, 1, healthLimits.maxRiseFall, `${field}.rise`);
  const fall = opts.fall === undefined ? healthDefaults.fall : wholeNumber(opts.fall, 1, healthLimits.maxRiseFall, `${field}.fall`);
  let jitter: number = healthDefaults.jitter;
  if (opts.jitter !== undefined) {
    const j = typeof opts.jitter === 'string' && opts.jitter.trim() !== '' ? Number(opts.jitter) : opts.jitter;
    if (typeof j !== 'number' || !Number.isFinite(j) || j < 0 || j > healthLimits.maxJitter) {
      throw invalid(`${field}.jitter`, `must be a fraction of the interval from 0 to ${healthLimits.maxJitter} (0.1 = +-10%), got ${show(opts.jitter)}`);
    }
    jitter = j;
  }
  const common: Record<string, unknown> = { type: checkType, interval, timeout, rise, fall, jitter };
  if (opts.address !== undefined) {
    if (typeof opts.address !== 'string' || !isIP(opts.address)) {
      // Checks run every second or so: resolving a name each time would put DNS on the hot path.
      throw invalid(`${field}.address`, `must be a numeric IP address such as 10.0.0.5 or ::1, got ${show(opts.address)}`);
    }
    // The checker connects without an interface index, as the engine does (lib/config/address.ts).
    if (opts.address.includes('%')) throw invalid(`${field}.address`, `scoped IPv6 addresses (with a %zone) are not supported, got ${show(opts.address)}`);
    common.address = opts.address;
  }
  if (opts.port !== undefined) common.port = wholeNumber(opts.port, 1, 65535, `${field}.port`);

  if (checkType === 'http') {
    const method = opts.method === undefined ? healthDefaults.method : opts.method;
    if (typeof method !== 'string' || !token.test(method)) throw invalid(`${field}.method`, `must be an HTTP method such as GET or HEAD, got ${show(method)}`);
    const path = opts.path === undefined ? healthDefaults.path : opts.path;
    if (typeof path !== 'string' || !path.startsWith('/') || !visibleAscii.test(path)) {
      throw invalid(`${field}.path`, `must start with / and hold no spaces or control characters (percent-encode them), got ${show(path)}`);
    }
    const out: Record<string, unknown> = { ...common, method, path };
    if (opts.host !== undefined) {
      if (typeof opts.host !== 'string' || !visibleAscii.test(opts.host)) throw invalid(`${field}.host`, `must be a host name such as example.com, got ${show(opts.host)}`);
      out.host = opts.host;
    }
    out.expectStatus = opts.expectStatus === undefined ? healthDefaults.expectStatus : parseStatusRange(opts.expectStatus, `${field}.expectStatus`);
    if (opts.expectBody !== undefined) {
      if (typeof opts.expectBody !== 'string' || opts.expectBody === '') throw invalid(`${field}.expectBody`, `must be a non-empty string, got ${show(opts.expectBody)}`);
      if (method === 'HEAD') throw invalid(`${field}.expectBody`, 'cannot be checked with method HEAD: its responses have no body');
      checkText(opts.expectBody, `${field}.expectBody`, healthLimits.maxExpectBytes);
      out.expectBody = opts.expectBody;
    }
    return Object.freeze(out) as unknown as HttpHealthConfig;
  }

  if (checkType === 'send-expect') {
    const out: Record<string, unknown> = { ...common };
    if (opts.send !== undefined && opts.sendHex !== undefined) throw invalid(`${field}.sendHex`, 'give send (text) or sendHex, not both');
    if (opts.send !== undefined) out.send = checkText(opts.send, `${field}.send`, healthLimits.maxSendBytes);
    if (opts.sendHex !== undefined) out.sendHex = parseHex(opts.sendHex, `${field}.sendHex`, healthLimits.maxSendBytes);
    if (opts.expect !== undefined && opts.expectHex !== undefined) throw invalid(`${field}.expectHex`, 'give expect (text) or expectHex, not both');
    if (opts.expect === undefined && opts.expectHex === undefined) {
      throw invalid(`${field}.expect`, 'is required: the bytes the backend must send (expect, or expectHex for binary protocols)');
    }
    if (opts.expect !== undefined) out.expect = checkText(opts.expect, `${field}.expect`, healthLimits.maxExpectBytes);
    if (opts.expectHex !== undefined) out.expectHex = parseHex(opts.expectHex, `${field}.expectHex`, healthLimits.maxExpectBytes);
    if (out.expect === '' || out.expectHex === '') throw invalid(`${field}.${out.expect === '' ? 'expect' : 'expectHex'}`, 'must not be empty');
    return Object.freeze(out) as unknown as SendExpectHealthConfig;
  }

  if (checkType === 'udp') {
    const out: Record<string, unknown> = { ...common };
    if (opts.send !== undefined && opts.sendHex !== undefined) throw invalid(`${field}.sendHex`, 'give send (text) or sendHex, not both');
    if (opts.send === undefined && opts.sendHex === undefined) {
      throw invalid(`${field}.send`, 'is required: the datagram to send (send, or sendHex for binary protocols)');
    }
    if (opts.send !== undefined) out.send = checkText(opts.send, `${field}.send`, healthLimits.maxSendBytes);
    if (opts.sendHex !== undefined) out.sendHex = parseHex(opts.sendHex, `${field}.sendHex`, healthLimits.maxSendBytes);
    if (opts.expect !== undefined && opts.expectHex !== undefined) throw invalid(`${field}.expectHex`, 'give expect (text) or expectHex, not both');
    if (opts.expect !== undefined) out.expect = checkText(opts.expect, `${field}.expect`, healthLimits.maxExpectBytes);
    if (opts.expectHex !== undefined) out.expectHex = parseHex(opts.expectHex, `${field}.expectHex`, healthLimits.maxExpectBytes);
    if (out.expect === '' || out.expectHex === '') throw invalid(`${field}.${out.expect === '' ? 'expect' : 'expectHex'}`, 'must not be empty (leave it out to accept any reply)');
    const match = opts.match ?? 'substring';
    if (match !== 'prefix' && match !== 'substring') throw invalid(`${field}.match`, `must be prefix or substring, got ${show(match)}`);
    out.match = match;
    return Object.freeze(out) as unknown as UdpHealthConfig;
  }

  return Object.freeze(common) as unknown as TcpHealthConfig;
}

/** Whether two validated configs check the same way (for reloads: an unchanged check keeps its state). */
export function sameHealthConfig(a: HealthConfig, b: HealthConfig): boolean {
  if (a === b) return true;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const x = (a as unknown as Record<string, unknown>)[key];
    const y = (b as unknown as Record<string, unknown>)[key];
    if (Array.isArray(x) && Array.isArray(y)) {
      if (x.length !== y.length || x.some((v, i) => v !== y[i])) return false;
    } else if (x !== y) {
      return false;
    }
  }
  return true;
}
