// `npm run build:prebuild` (and `npm pack`, through prepack): compiles the addon and copies it,
// stripped, to prebuilds/ under the name pkg-prebuilds looks for on this machine's platform, arch
// and libc (binding-options.cjs), so the packed package installs here without a compiler. Run it
// on each kind of machine a prebuild should exist for (x64 and arm64, glibc and musl) and pack
// once with every prebuilds/ folder in place. `--no-compile` copies what `npm run build` built.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(join(root, 'package.json'));
const options = require('./binding-options.cjs');
const binDir = (name) => join(dirname(require.resolve(`${name}/package.json`)), 'bin');

if (!process.argv.includes('--no-compile')) {
  execFileSync(process.execPath, [join(binDir('cmake-js'), 'cmake-js'), 'compile', '--log-level', 'error'], { cwd: root, stdio: 'inherit' });
}
const built = join(root, 'build', 'Release', `${options.name}.node`);
if (!existsSync(built)) {
  console.error(`lb4: ${built} is missing: run "npm run build" first`);
  process.exit(1);
}
// pkg-prebuilds names a musl build by the same test its loader makes (/etc/alpine-release).
const libc = existsSync('/etc/alpine-release') ? ['--libc', 'musl'] : [];
for (const version of options.napi_versions) {
  execFileSync(process.execPath, [join(binDir('pkg-prebuilds'), 'copy.mjs'), '--baseDir', 'build/Release', '--source', `${options.name}.node`, '--name', options.name, '--napi_version', String(version), '--strip', ...libc], { cwd: root, stdio: 'inherit' });
}
