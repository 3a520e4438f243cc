// `lb4 check-config FILE`: validates a config file the way `lb4 start --config` would (host
// names resolved included) without opening anything, and says what it holds.

import { loadConfigFile } from '../../lib/config/config-file.js';

export async function checkConfig(file: string): Promise<void> {
  const { config } = await loadConfigFile(file);
  const backends = config.listeners.reduce((n, l) => n + l.backends.length, 0);
  const lines = [`${file}: ok: ${config.listeners.length} listener(s), ${backends} backend(s)`];
  for (const l of config.listeners) {
    const health = l.health ? `${l.health.type} checks every ${l.health.interval}ms` : 'no health checks';
    lines.push(`  ${l.name} on ${l.listen}: ${l.algorithm}, ${l.backends.map((b) => `${b.id}${b.weight !== 1 ? ` (weight ${b.weight})` : ''}`).join(', ')}; ${health}`);
  }
  if (config.admin) lines.push(`  admin API on ${config.admin.kind === 'unix' ? config.admin.path : `${config.admin.host}:${config.admin.port}`}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
