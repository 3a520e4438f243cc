// The CLI shorthand for a health check (`--health-check http:/healthz,rise=3`): parsing it into
// options and formatting a config back into it, so logs and `lb4 check-config` can show a check
// the way a person would type it.

import { formatDuration } from '../config/duration.js';
import { healthCheckTypes, invalid, validateHealthOptions, type HealthConfig, type HealthOptions } from './check-options.js';

/** Shorthand keys: the option names, plus shorter kebab-case spellings for the command line. */
const flagKeys: Record<string, string> = {
  interval: 'interval',
  timeout: 'timeout',
  rise: 'rise',
  fall: 'fall',
  jitter: 'jitter',
  address: 'address',
  port: 'port',
  method: 'method',
  path: 'path',
  host: 'host',
  status: 'expectStatus',
  'expect-status': 'expectStatus',
  expectStatus: 'expectStatus',
  body: 'expectBody',
  'expect-body': 'expectBody',
  expectBody: 'expectBody',
  send: 'send',
  'send-hex': 'sendHex',
  sendHex: 'sendHex',
  expect: 'expect',
  'expect-hex': 'expectHex',
  expectHex: 'expectHex',
  match: 'match',
};

const escapes: Record<string, string> = { n: '\n', r: '\r', t: '\t', '0': '\0', '\\': '\\', ',': ',', '=': '=' };

/**
 * Splits the shorthand on unescaped commas and resolves backslash escapes in each part, so a
 * shell-quoted flag can carry CR/LF (`send=PING\r\n`) and commas (`body=a\,b`).
 */
function splitFlag(text: string, field: string): Array<{ raw: string; value: string; eq: number }> {
  const parts: Array<{ raw: string; value: string; eq: number }> = [];
  let raw = '';
  let value = '';
  let eq = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === ',') {
      parts.push({ raw, value, eq });
      raw = value = '';
      eq = -1;
      continue;
    }
    if (c === '\\') {
      const next = text[i + 1];
      if (next === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
        value += String.fromCharCode(parseInt(text.slice(i + 2, i + 4), 16));
        raw += text.slice(i, i + 4);
        i += 3;
        continue;
      }
      if (next === undefined || !(next in escapes)) {
        throw invalid(field, `unknown escape "\\${next ?? ''}" in "${text}" (known: \\r \\n \\t \\0 \\\\ \\, \\= \\xNN)`);
      }
      value += escapes[next];
      raw += c + next;
      i++;
      continue;
    }
    if (c === '=' && eq < 0) eq = value.length;
    raw += c;
    value += c;
  }
  parts.push({ raw, value, eq });
  return parts;
}

/**
 * Parses the CLI shorthand for a health check: `TYPE[:ARG][,key=value]...`.
 *
 * - `tcp`
 * - `http`, `http:/healthz`, `http:HEAD /ping`, `http:/healthz,status=200-299,body=ok,host=example.com`
 * - `send-expect,send=PING\r\n,expect=+PONG`, `send-expect,expect=SSH-2.0-`, `send-expect,send-hex=0100,expect-hex=0200`
 * - `udp,send=ping,expect=pong`, `udp,send-hex=...,expect-hex=...,match=prefix` (UDP listeners)
 * - common keys: `interval=1s,timeout=500ms,rise=2,fall=3,jitter=0.1,address=10.0.0.9,port=8080`
 *
 * Values take backslash escapes: `\r \n \t \0 \\ \, \= \xNN` (`\xNN` is the character U+00NN, sent
 * as UTF-8 like all text: give binary bytes with send-hex/expect-hex). The result holds only what the text
 * says (durations as written), so a caller can overlay other flags before
 * validation; it is validated here as well, so a bad flag fails at once.
 *
 * @param text - the flag's value.
 * @param field - the flag's name for errors, e.g. `--health-check`.
 * @returns frozen {@link HealthOptions}.
 */
export function parseHealthFlag(text: string, field = '--health-check'): HealthOptions {
  if (typeof text !== 'string' || text.trim() === '') throw invalid(field, 'must be a check such as tcp, http:/healthz, send-expect,send=PING\\r\\n,expect=+PONG or udp,send=ping,expect=pong');
  const [head, ...params] = splitFlag(text.trim(), field);
  const colon = head.value.indexOf(':');
  const type = (colon < 0 ? head.value : head.value.slice(0, colon)).trim();
  const arg = colon < 0 ? null : head.value.slice(colon + 1).trim();
  if (!(healthCheckTypes as readonly string[]).includes(type)) {
    throw invalid(field, `unknown check type "${type}" in "${text}" (known: ${healthCheckTypes.join(', ')})`);
  }
  const out: Record<string, unknown> = { type };
  if (arg !== null) {
    if (type !== 'http') throw invalid(field, `"${type}:..." takes no argument; give parameters as ${type},key=value (in "${text}")`);
    // `http:/path` or `http:METHOD /path`.
    const m = /^(?:(\S+)\s+)?(\S*)$/.exec(arg);
    if (!m || m[2] === '') throw invalid(field, `"${arg}" is not [METHOD ]/path in "${text}"`);
    if (m[1] !== undefined) out.method = m[1];
    out.path = m[2];
  }
  for (const param of params) {
    if (param.eq < 0) throw invalid(field, `"${param.raw}" is not key=value in "${text}"`);
    const key = param.value.slice(0, param.eq).trim();
    const value = param.value.slice(param.eq + 1);
    const name = flagKeys[key];
    if (!name) throw invalid(field, `unknown parameter "${key}" in "${text}" (known: ${[...new Set(Object.keys(flagKeys).filter((k) => !/[A-Z]/.test(k)))].join(', ')})`);
    if (name in out) throw invalid(field, `"${key}" is given twice in "${text}"`);
    // Text to send or expect keeps its spaces; everything else is trimmed.
    out[name] = name === 'send' || name === 'expect' || name === 'expectBody' ? value : value.trim();
  }
  const options = Object.freeze(out) as unknown as HealthOptions;
  validateHealthOptions(options, field);
  return options;
}

function escapeFlagValue(value: string): string {
  return value.replace(/[\\,=\r\n\t\0]|[^\x20-\x7e]/g, (c) => {
    const named: Record<string, string> = { '\\': '\\\\', ',': '\\,', '=': '\\=', '\r': '\\r', '\n': '\\n', '\t': '\\t', '\0': '\\0' };
    if (named[c]) return named[c];
    const code = c.charCodeAt(0);
    // Beyond latin-1 the text stays as is: the shorthand is read as UTF-8 text too.
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : c;
  });
}

/**
 * Formats a config as the CLI shorthand, every field spelled out: for logs, `lb4 check-config`,
 * and round trips (`parseHealthFlag(formatHealthFlag(c))` validates to a config equal to `c`).
 */
export function formatHealthFlag(config: HealthConfig): string {
  const parts: string[] = [config.type];
  if (config.type === 'http') parts[0] = `http:${config.method === 'GET' ? '' : `${config.method} `}${escapeFlagValue(config.path)}`;
  parts.push(`interval=${formatDuration(config.interval)}`, `timeout=${formatDuration(config.timeout)}`, `rise=${config.rise}`, `fall=${config.fall}`, `jitter=${config.jitter}`);
  if (config.address !== undefined) parts.push(`address=${config.address}`);
  if (config.port !== undefined) parts.push(`port=${config.port}`);
  if (config.type === 'http') {
    const [lo, hi] = config.expectStatus;
    parts.push(`status=${lo === hi ? lo : `${lo}-${hi}`}`);
    if (config.host !== undefined) parts.push(`host=${escapeFlagValue(config.host)}`);
    if (config.expectBody !== undefined) parts.push(`body=${escapeFlagValue(config.expectBody)}`);
  } else if (config.type === 'send-expect' || config.type === 'udp') {
    if (config.send !== undefined) parts.push(`send=${escapeFlagValue(config.send)}`);
    if (config.sendHex !== undefined) parts.push(`send-hex=${config.sendHex}`);
    if (config.expect !== undefined) parts.push(`expect=${escapeFlagValue(config.expect)}`);
    if (config.expectHex !== undefined) parts.push(`expect-hex=${config.expectHex}`);
    if (config.type === 'udp') parts.push(`match=${config.match}`);
  }
  return parts.join(',');
}

