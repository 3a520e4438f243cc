// `lb4 check-config FILE`: validates a config file the way `lb4 start --config` would (host
// names resolved included) without opening anything, and says what it holds.

import { checkVipInterfaces, NativeVipDriver } from '../../lib/cluster/vip-driver.js';
import { describeCluster } from '../../lib/config/cluster-options.js';
import { loadConfigFile } from '../../lib/config/config-file.js';
import { formatDuration } from '../../lib/config/duration.js';
import { describePolicy } from '../../lib/config/listener-policy.js';
import { optionTable, type OptionSpec } from '../../lib/config/options.js';
import type { BalancerConfig } from '../../lib/index.js';

/**
 * Every setting of the option table the config holds, as the file would write it
 * (`workers 2, connectTimeout 5s, ...`): one line for those a reload applies, one for those only a
 * restart does. The UDP settings (`udp...`) show when a listener is UDP.
 */
function settingsLines(config: BalancerConfig): string[] {
  const values = config as unknown as Readonly<Record<string, number | string>>;
  const udp = config.listeners.some((l) => l.protocol === 'udp');
  const specs = (Object.values(optionTable) as OptionSpec[]).filter((spec) => spec.config !== undefined && spec.field !== null && (udp || !spec.field.startsWith('udp')));
  const show = (spec: OptionSpec) => {
    const value = values[spec.config!];
    return `${spec.field} ${spec.kind === 'duration' ? formatDuration(value as number) : value}`;
  };
  return (['live', 'restart'] as const).flatMap((reload) => {
    const shown = specs.filter((spec) => spec.reload === reload).map(show);
    return shown.length === 0 ? [] : [`  settings a ${reload === 'live' ? 'reload' : 'restart'} applies: ${shown.join(', ')}`];
  });
}

export async function checkConfig(file: string): Promise<void> {
  const { config } = await loadConfigFile(file);
  // start refuses a virtual IP on an interface this host lacks; so does check-config (a read-only
  // rtnetlink query), so the two give one verdict.
  if (config.cluster) checkVipInterfaces(new NativeVipDriver(), config.cluster.vips);
  const backends = config.listeners.reduce((n, l) => n + l.backends.length, 0);
  const udpListeners = config.listeners.filter((l) => l.protocol === 'udp').length;
  // DNS entries are counted apart: how many backends they give is known only once lb4 runs.
  const entries = config.listeners.reduce((n, l) => n + l.discover.length, 0);
  const found = entries > 0 ? `, ${entries} DNS entr${entries === 1 ? 'y' : 'ies'} (resolved at start, not now)` : '';
  const lines = [`${file}: ok: ${config.listeners.length} listener(s)${udpListeners > 0 ? ` (${udpListeners} UDP)` : ''}, ${backends} backend(s)${found}`];
  for (const l of config.listeners) {
    const health = l.health ? `${l.health.type} checks every ${l.health.interval}ms` : 'no health checks';
    // PROXY protocol settings are shown only where set: most listeners have none.
    const proxy = [
      ...(l.proxyProtocol !== 'none' ? [`sends PROXY ${l.proxyProtocol}`] : []),
      ...(l.acceptProxy.length > 0 ? [`takes PROXY headers from ${l.acceptProxy.join(', ')}`] : []),
      ...describePolicy(l.policy),
      ...(l.sni ? [`routes by SNI: ${l.sni.map((r) => `${r.names.join(' ')} -> ${r.pool}`).join(', ')}; default pool ${l.defaultPool ?? 'none (close)'}`] : []),
    ].map((p) => `; ${p}`).join('');
    const backends = [...l.backends, ...l.discover].map((b) => `${b.id}${'pool' in b && b.pool !== null ? ` [${b.pool}]` : ''}${b.weight !== 1 ? ` (weight ${b.weight})` : ''}${'maxConnections' in b && b.maxConnections > 0 ? ` (maxconn ${b.maxConnections})` : ''}`);
    lines.push(`  ${l.name} on ${l.listen}: ${l.algorithm}, ${backends.join(', ')}; ${health}${proxy}`);
  }
  if (config.admin) lines.push(`  admin API on ${config.admin.kind === 'unix' ? config.admin.path : `${config.admin.host}:${config.admin.port}`}`);
  if (config.cluster) lines.push(`  ${describeCluster(config.cluster)}`);
  lines.push(...settingsLines(config));
  process.stdout.write(`${lines.join('\n')}\n`);
}
