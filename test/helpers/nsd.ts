// NSD, a real authoritative DNS server, on 127.0.0.1 for the DNS discovery tests: one zone whose
// records a test rewrites (NSD reads a zone file again on SIGHUP when its mtime changed), and
// that it can stop and start again to show a server failure. Debian package `nsd`.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nsdConfig } from './nsd-config.mjs';
import { until } from './sockets.js';

export const nsdInstalled = spawnSync('nsd', ['-v']).status === 0;

export interface Nsd {
  /** `127.0.0.1:PORT`, as lb4's dnsServers takes it. */
  readonly server: string;
  readonly port: number;
  /** Serves `records` (zone file lines, names relative to the zone) from now on; resolves once NSD answers with the new serial. */
  setRecords(records: readonly string[]): Promise<void>;
  /** Stops the server (queries then go unanswered); resolves when it has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** A port free for both UDP and TCP on 127.0.0.1 (NSD binds both). */
async function freeDnsPort(): Promise<number> {
  for (;;) {
    const udp = dgram.createSocket('udp4');
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');
    const port = udp.address().port;
    const tcp = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) await new Promise<void>((r) => tcp.close(() => r()));
    await new Promise<void>((r) => udp.close(() => r()));
    if (ok) return port;
  }
}

/** Starts NSD serving `zone` with `records`; resolves once it answers. */
export async function startNsd(zone: string, records: readonly string[]): Promise<Nsd> {
  const dir = mkdtempSync(join(tmpdir(), 'lb4-dnsdisc-nsd-'));
  const port = await freeDnsPort();
  const zoneFile = join(dir, `${zone}.zone`);
  let serial = 0;
  let child: ChildProcess | null = null;
  // NSD compares whole seconds of mtime: each version gets its own second, later than the last.
  let mtime = Math.floor(Date.now() / 1000);
  const writeZone = (lines: readonly string[]) => {
    serial++;
    writeFileSync(zoneFile, [`$ORIGIN ${zone}.`, '$TTL 1', `@ IN SOA ns.${zone}. admin.${zone}. ${serial} 3600 600 86400 1`, '@ IN NS ns', 'ns IN A 127.0.0.1', ...lines, ''].join('\n'));
    mtime += 2;
    utimesSync(zoneFile, mtime, mtime);
  };
  writeFileSync(join(dir, 'nsd.conf'), nsdConfig({ host: '127.0.0.1', port, dir, zone }));
  const resolver = new Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  const servesSerial = async (wanted: number) => {
    try {
      return (await resolver.resolveSoa(zone)).serial === wanted;
    } catch {
      return false;
    }
  };
  const nsd: Nsd = {
    server: `127.0.0.1:${port}`,
    port,
    async setRecords(lines) {
      writeZone(lines);
      child?.kill('SIGHUP');
      await until(() => servesSerial(serial), 10_000, `NSD to serve serial ${serial}`);
    },
    async start() {
      // -d: in the foreground, a child of the test that its teardown stops.
      const c = spawn('nsd', ['-d', '-c', join(dir, 'nsd.conf')], { stdio: 'ignore' });
      child = c;
      await until(() => c.exitCode !== null || servesSerial(serial), 10_000, 'NSD to answer');
      if (c.exitCode !== null) throw new Error(`nsd exited with ${c.exitCode}`);
    },
    async stop() {
      const c = child;
      child = null;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      c.kill('SIGTERM');
      await once(c, 'exit');
    },
    async close() {
      await nsd.stop();
      resolver.cancel();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  writeZone(records);
  try {
    await nsd.start();
  } catch (err) {
    await nsd.close();
    throw err;
  }
  return nsd;
}
