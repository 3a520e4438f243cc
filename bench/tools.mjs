// Which external programs the bench needs, where they come from, and their versions for the
// report. A missing program is reported with the exact install line, and whatever needs it is
// skipped rather than failing the whole run.

import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';

export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** Program -> Debian package that provides it. */
const packages = {
  haproxy: 'haproxy',
  nginx: 'nginx',
  'nginx-stream': 'libnginx-mod-stream',
  iperf3: 'iperf3',
  wrk: 'wrk',
  nsd: 'nsd',
  dnsperf: 'dnsperf',
  nft: 'nftables',
  conntrack: 'conntrack',
};

/** @param {string} name @returns {string | null} */
export function which(name) {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = `${dir}/${name}`;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // Not here.
    }
  }
  return null;
}

/**
 * Availability of every tool: nginx-stream is the stream module file.
 * @returns {Record<string, boolean>}
 */
export function detectTools() {
  return {
    haproxy: which('haproxy') !== null,
    nginx: which('nginx') !== null,
    'nginx-stream': existsSync(NGINX_STREAM_MODULE),
    iperf3: which('iperf3') !== null,
    wrk: which('wrk') !== null,
    nsd: which('nsd') !== null,
    dnsperf: which('dnsperf') !== null,
    nft: which('nft') !== null,
    conntrack: which('conntrack') !== null,
  };
}

/** @param {string[]} missing tool names @returns {string} */
export function installLine(missing) {
  const pkgs = [...new Set(missing.map((m) => packages[m] ?? m))];
  return `apt-get update && apt-get install -y ${pkgs.join(' ')}`;
}

function firstLine(file, args) {
  // nginx -v and wrk -v write to stderr (and wrk exits 1): read both.
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 5000 });
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  return text.split('\n').map((l) => l.trim()).find(Boolean) ?? 'unknown';
}

/** @param {Record<string, boolean>} tools @returns {Record<string, string>} */
export function versions(tools) {
  const v = { node: process.version };
  if (tools.haproxy) v.haproxy = firstLine('haproxy', ['-v']);
  if (tools.nginx) v.nginx = firstLine('nginx', ['-v']);
  if (tools.iperf3) v.iperf3 = firstLine('iperf3', ['--version']);
  if (tools.wrk) v.wrk = firstLine('wrk', ['-v']);
  if (tools.nsd) v.nsd = firstLine('nsd', ['-v']);
  if (tools.nft) v.nft = firstLine('nft', ['--version']);
  // dnsperf has no version flag: its help ends with the version line.
  if (tools.dnsperf) v.dnsperf = `dnsperf ${/Version ([\d.]+)/.exec(spawnSync('dnsperf', ['-h'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '')?.[1] ?? 'unknown'}`;
  return v;
}
