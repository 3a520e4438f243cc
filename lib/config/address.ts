// Addresses as people write them: listen addresses (`:8080`, `127.0.0.1:8080`, `[::1]:8080`) and
// backends (`10.0.0.5:443`, `app.local:443,weight=3`). Host names are resolved here, once, so the
// data plane only ever sees numeric addresses.

import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Lb4Error } from '../errors.js';

/** A host and port as written, before resolution. `host` is '' for "every interface". */
export interface HostPort {
  host: string;
  port: number;
}

function parsePort(text: string, field: string, whole: string, allowZero: boolean): number {
  if (!/^\d{1,5}$/.test(text)) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${whole}" has no valid port (expected host:port)`, { field });
  const port = Number(text);
  if (port > 65535 || (!allowZero && port === 0)) {
    throw new Lb4Error('LB4_INVALID_ADDRESS', `"${whole}": port ${port} is out of range (${allowZero ? 0 : 1}-65535)`, { field });
  }
  return port;
}

/**
 * Splits `host:port`, `[v6]:port` or `:port` (`allowEmptyHost`). A number, or a string of digits,
 * is a port on every interface when `allowEmptyHost` is set.
 */
export function parseHostPort(value: unknown, field: string, opts: { allowEmptyHost: boolean; allowPortZero: boolean }): HostPort {
  if (typeof value === 'number' && opts.allowEmptyHost) return { host: '', port: parsePort(String(value), field, String(value), opts.allowPortZero) };
  if (typeof value !== 'string' || value.trim() === '') throw new Lb4Error('LB4_INVALID_ADDRESS', 'must be an address such as 127.0.0.1:8080', { field });
  const text = value.trim();
  if (opts.allowEmptyHost && /^\d+$/.test(text)) return { host: '', port: parsePort(text, field, text, opts.allowPortZero) };
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0 || text[end + 1] !== ':') throw new Lb4Error('LB4_INVALID_ADDRESS', `"${text}" is not [ipv6]:port`, { field });
    host = text.slice(1, end);
    portText = text.slice(end + 2);
    if (isIP(host) !== 6) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${host}" in "${text}" is not an IPv6 address`, { field });
    refuseScoped(host, text, field);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${text}" has no port (expected host:port)`, { field });
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${text}": write IPv6 addresses in brackets, e.g. [::1]:8080`, { field });
    if (host === '' && !opts.allowEmptyHost) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${text}" has no host`, { field });
    if (host !== '' && !isIP(host) && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) {
      throw new Lb4Error('LB4_INVALID_ADDRESS', `"${host}" in "${text}" is neither an IP address nor a host name`, { field });
    }
    if (/^[\d.]+$/.test(host) && !isIP(host)) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${host}" in "${text}" is not a valid IPv4 address`, { field });
  }
  return { host, port: parsePort(portText, field, text, opts.allowPortZero) };
}

/**
 * A scoped IPv6 address (`fe80::1%eth0`) needs its interface index at every socket call, which
 * the engine's address tables do not carry: it is refused here, where the field can be named,
 * rather than accepted by validation and rejected later by the engine.
 */
function refuseScoped(host: string, text: string, field: string): void {
  if (host.includes('%')) {
    throw new Lb4Error('LB4_INVALID_ADDRESS', `"${text}": scoped IPv6 addresses (with a %zone) are not supported; use a global or unique-local address`, { field });
  }
}

/** Formats a host and port as `host:port` or `[v6]:port`. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Resolves a host name to one numeric address; numeric hosts come back unchanged. */
export async function resolveHost(host: string, field: string): Promise<string> {
  if (isIP(host)) return host;
  let address: string;
  try {
    ({ address } = await lookup(host));
  } catch (cause) {
    throw new Lb4Error('LB4_UNRESOLVABLE_HOST', `cannot resolve host "${host}" (${(cause as NodeJS.ErrnoException).code ?? 'lookup failed'})`, { field, cause });
  }
  // A name can resolve to a link-local address with a zone (/etc/hosts may say so).
  refuseScoped(address, `${host} (${address})`, field);
  return address;
}
