// A health check config compiled once into what a probe needs per check (lib/health/checkers.ts),
// and the helpers that word a check's reason: quoted bytes and system errors.

import { getSystemErrorMap } from 'node:util';
import type { HealthConfig } from './check-options.js';

/** Bytes of a backend's reply quoted in a reason. */
const quotedBytes = 64;

/** A config compiled once into what the probe needs per check. */
export interface Plan {
  readonly kind: HealthConfig['type'];
  readonly timeoutReason: string;
  // http
  readonly requestHead: string;
  readonly host: string | undefined;
  readonly statusLow: number;
  readonly statusHigh: number;
  readonly statusText: string;
  /** expectBody for http, expect for send-expect. */
  readonly needle: Buffer | null;
  readonly needleText: string;
  // send-expect, udp
  readonly send: Buffer | null;
  readonly hex: boolean;
  /** udp: the expectation must start the reply. */
  readonly prefix: boolean;
}

const plans = new WeakMap<HealthConfig, Plan>();

export function planFor(config: HealthConfig): Plan {
  let plan = plans.get(config);
  if (plan) return plan;
  const base = { timeoutReason: `timed out after ${config.timeout}ms`, requestHead: '', host: undefined, statusLow: 0, statusHigh: 0, statusText: '', needle: null, needleText: '', send: null, hex: false, prefix: false };
  if (config.type === 'tcp') {
    plan = { ...base, kind: 'tcp' };
  } else if (config.type === 'http') {
    const [lo, hi] = config.expectStatus;
    const needle = config.expectBody === undefined ? null : Buffer.from(config.expectBody);
    plan = {
      ...base,
      kind: 'http',
      requestHead: `${config.method} ${config.path} HTTP/1.1\r\nHost: `,
      host: config.host,
      statusLow: lo,
      statusHigh: hi,
      statusText: lo === hi ? String(lo) : `${lo}-${hi}`,
      needle,
      needleText: needle ? quote(needle, false) : '',
    };
  } else if (config.type === 'udp') {
    const hex = config.expectHex !== undefined || (config.expect === undefined && config.sendHex !== undefined);
    const needle = config.expectHex !== undefined ? Buffer.from(config.expectHex, 'hex') : config.expect !== undefined ? Buffer.from(config.expect) : null;
    const send = config.sendHex !== undefined ? Buffer.from(config.sendHex, 'hex') : Buffer.from(config.send ?? '');
    plan = { ...base, kind: 'udp', needle, needleText: needle ? quote(needle, hex) : '', send, hex, prefix: config.match === 'prefix' };
  } else {
    const hex = config.expectHex !== undefined;
    const needle = hex ? Buffer.from(config.expectHex!, 'hex') : Buffer.from(config.expect!);
    const send = config.sendHex !== undefined ? Buffer.from(config.sendHex, 'hex') : config.send !== undefined ? Buffer.from(config.send) : null;
    plan = { ...base, kind: 'send-expect', needle, needleText: quote(needle, hex), send: send && send.length > 0 ? send : null, hex };
  }
  plans.set(config, plan);
  return plan;
}

const escapes: Record<number, string> = { 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t', 0x22: '\\"', 0x5c: '\\\\' };

/** Bytes for a reason: `"text with \r\n escapes"`, or `0x0a0b` when the config was hex; long ones cut with `...`. */
export function quote(bytes: Uint8Array, hex: boolean): string {
  const shown = bytes.subarray(0, quotedBytes);
  const more = bytes.length > quotedBytes ? '...' : '';
  if (hex) return `0x${Buffer.from(shown.buffer, shown.byteOffset, shown.length).toString('hex')}${more}`;
  let text = '';
  for (const b of shown) text += escapes[b] ?? (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`);
  return `"${text}"${more}`;
}

const systemErrors = getSystemErrorMap();

/** `connection refused (ECONNREFUSED)`: libuv's description and the code. */
export function describeError(err: NodeJS.ErrnoException): string {
  const known = typeof err.errno === 'number' ? systemErrors.get(err.errno) : undefined;
  if (known) return `${known[1]} (${known[0]})`;
  return err.code ? `${err.message} (${err.code})` : err.message;
}

export const httpPrefix = Buffer.from('HTTP/');
export const headerEnd = Buffer.from('\r\n\r\n');
export const statusLine = /^HTTP\/\d(?:\.\d)? (\d{3})(?:[ \r]|$)/;
export const contentLength = /\r\ncontent-length[ \t]*:[ \t]*(\d+)/i;

