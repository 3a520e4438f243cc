// The nsd.conf of a one-zone NSD answering on one address: plain JavaScript so that both the tap
// tests (test/helpers/nsd.ts) and the bench's DNS backend (bench/backends.mjs) write the same one.

/**
 * @param {{ host: string, port: number, dir: string, zone: string }} where NSD listens, keeps its
 *   files (the zone file is `${zone}.zone` in `dir`), and the zone it serves
 * @returns {string}
 */
export function nsdConfig({ host, port, dir, zone }) {
  return `server:
  ip-address: ${host}@${port}
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "${dir}"
  database: ""
  pidfile: "${dir}/nsd.pid"
  xfrdfile: "${dir}/xfrd.state"
  zonelistfile: "${dir}/zone.list"
  logfile: "${dir}/nsd.log"
  verbosity: 0
  hide-version: yes
  # Response rate limiting (on by default in Debian's NSD: 200 answers/s per /24) would drop
  # most of the answers to a single client on loopback.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: ${zone}
  zonefile: ${zone}.zone
`;
}
