// The install script's fallback, run only when no prebuilt addon fits this machine (another CPU,
// musl without a musl prebuild, or `npm_config_build_from_source`): compiles the addon with
// cmake-js, which needs cmake, make and a C++17 compiler. In a checkout cmake-js and
// node-addon-api are devDependencies and already installed. In an installed package they are not
// (so that a machine a prebuild fits never downloads them), and are fetched for this one build
// with `npm exec`; cmake-js and CMakeLists.txt then find node-addon-api through NODE_PATH.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const compile = ['compile', '--log-level', 'error'];

function run(command, args, env = process.env) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.error) {
    console.error(`lb4: could not run ${command}: ${result.error.message}`);
    process.exit(1);
  }
  if (result.status !== 0) {
    console.error('lb4: no prebuilt addon fits this machine and building one failed; it needs cmake, make and g++ (C++17) on the PATH');
    process.exit(result.status ?? 1);
  }
}

function localCmakeJs() {
  try {
    const require = createRequire(join(root, 'package.json'));
    require.resolve('node-addon-api');
    return join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  } catch {
    return null;
  }
}

if (process.argv[2] === '--fetched') {
  // Inside `npm exec`: its packages' .bin folder is on the PATH, its node_modules beside it.
  const bin = process.env.PATH.split(delimiter).find((dir) => dir.endsWith(join('node_modules', '.bin')) && existsSync(join(dir, 'cmake-js')));
  if (!bin) {
    console.error('lb4: npm exec did not put cmake-js on the PATH');
    process.exit(1);
  }
  const modules = dirname(bin);
  const nodePath = [modules, process.env.NODE_PATH].filter(Boolean).join(delimiter);
  run(process.execPath, [join(modules, 'cmake-js', 'bin', 'cmake-js'), ...compile], { ...process.env, NODE_PATH: nodePath });
} else {
  const local = localCmakeJs();
  if (local) {
    console.error('lb4: building the addon with cmake-js');
    run(process.execPath, [local, ...compile]);
  } else {
    console.error('lb4: no prebuilt addon fits this machine; building it from source with cmake-js (fetched with npm exec)');
    run('npm', ['exec', '--yes', '--package=cmake-js@^8', '--package=node-addon-api@^8', '--', 'node', fileURLToPath(import.meta.url), '--fetched']);
  }
}
