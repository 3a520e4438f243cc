// The packed package installs and runs on a machine without a compiler: `npm pack` (with the
// prebuilt addon that `npm run build:prebuild` makes), then `npm install` of the tarball into a
// fresh project whose PATH has node, npm and sh and no g++, c++, cc, make or cmake. The install
// script must find the prebuild and build nothing; then `lb4 start` from that install and the
// library imported by a program of that project each forward bytes to a loopback backend. The
// same project then type-checks the README's library example against the published types, under
// the config `tsc --init` writes, as an ES module and as CommonJS.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { buildDist, root } from '../helpers/cli.js';
import { echoBackend, within } from '../helpers/sockets.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'lb4-package-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// Only what installing and running a Node package needs: no compiler, make or cmake.
const bin = join(dir, 'bin');
const app = join(dir, 'app');
const tools = ['node', 'npm', 'npx', 'sh'];

/** The test's environment less tap's hooks and the npm settings `npm test` passed down, on the bare PATH. */
function bareEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('npm_') && k !== 'NODE_OPTIONS' && !k.startsWith('TAP')) env[k] = v;
  return { ...env, PATH: bin };
}

async function which(tool: string): Promise<string> {
  return (await run('sh', ['-c', `command -v ${tool}`])).stdout.trim();
}

/** Sends `payload` through `port` and returns what came back once the far side ended. */
async function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await once(socket, 'connect');
  socket.end(payload);
  await within(once(socket, 'close'), 10_000, 'the echo through lb4');
  return Buffer.concat(chunks);
}

t.before(async () => {
  await buildDist();
  await run(process.execPath, ['scripts/prebuild.mjs', '--no-compile'], { cwd: root });
  // Scripts off: dist/ and prebuilds/ are current, and prepack would compile again.
  const packed = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: root, env: { ...bareEnv(), PATH: process.env.PATH } });
  const tarball = join(dir, packed.stdout.trim().split('\n').pop()!);
  mkdirSync(bin);
  mkdirSync(app);
  for (const tool of tools) symlinkSync(await which(tool), join(bin, tool));
  // npm 11 runs a dependency's install script only when the project allows it: allowed here, so
  // the script runs and must find the prebuild.
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'lb4-package-test', private: true, type: 'module', allowScripts: { lb4: true } }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--foreground-scripts', tarball], { cwd: app, env: bareEnv() });
});

t.test('the bare PATH has no compiler, make or cmake', async (t) => {
  const found = await run('sh', ['-c', 'for c in g++ c++ cc gcc make cmake; do command -v $c; done; true'], { env: bareEnv() });
  t.equal(found.stdout, '');
});

t.test('the install used the prebuilt addon and built nothing', async (t) => {
  const lb4 = join(app, 'node_modules', 'lb4');
  t.ok(existsSync(join(lb4, 'prebuilds', `lb4-linux-${process.arch}`, 'node-napi-v8.node')), 'the prebuild is in the package');
  t.notOk(existsSync(join(lb4, 'build')), 'no local build');
  t.notOk(existsSync(join(app, 'node_modules', 'cmake-js')), 'cmake-js is not installed');
});

t.test('lb4 start from the install forwards bytes', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const child = spawn(join(app, 'node_modules', '.bin', 'lb4'), ['start', '--listen', '127.0.0.1:0', '--backend', backend.address, '--workers', '1'], { cwd: app, env: bareEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const started = new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      const m = /"msg":"lb4 started".*?"address":"127\.0\.0\.1:(\d+)"/.exec(stderr) ?? /"address":"127\.0\.0\.1:(\d+)".*"msg":"lb4 started"/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', () => reject(new Error(`lb4 exited before it started: ${stderr}`)));
  });
  const port = await within(started, 20_000, 'lb4 started');
  const payload = randomBytes(256 * 1024);
  t.ok((await roundTrip(port, payload)).equals(payload), '256 KiB came back unchanged');
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  t.same(await within(exited, 20_000, 'lb4 to stop'), [0, null]);
});

t.test('the library imported from the install forwards bytes', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  // Plain JavaScript, as a program of the fresh project: Node 20 has no `await using`, so it
  // calls the method that statement calls.
  writeFileSync(
    join(app, 'main.js'),
    `import net from 'node:net';
import { startBalancer } from 'lb4';
const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [process.argv[2]], workers: 1 });
try {
  const socket = net.connect(lb.address().port, '127.0.0.1');
  const chunks = [];
  socket.on('data', (c) => chunks.push(c));
  socket.end(process.argv[3]);
  await new Promise((resolve) => socket.on('close', resolve));
  process.stdout.write(Buffer.concat(chunks).toString());
} finally {
  await lb[Symbol.asyncDispose]();
}
`,
  );
  const payload = randomBytes(4096).toString('hex');
  const { stdout } = await run('node', ['main.js', backend.address, payload], { cwd: app, env: bareEnv(), timeout: 30_000 });
  t.equal(stdout, payload);
});

t.test('CommonJS can require lb4; the internal entry is not exported', async (t) => {
  const script = `const lb4 = require('lb4'); console.log(typeof lb4.startBalancer, lb4.counters.length > 0);
import('lb4/dist/lib/internal.js').then(() => console.log('imported'), (e) => console.log(e.code));`;
  const { stdout } = await run('node', ['-e', script], { cwd: app, env: bareEnv() });
  t.equal(stdout, 'function true\nERR_PACKAGE_PATH_NOT_EXPORTED\n');
  const published = readFileSync(join(app, 'node_modules', 'lb4', 'dist', 'lib', 'balancer.d.ts'), 'utf8');
  t.notMatch(published, /static|InternalDeps|createEngine/, 'the published Balancer shows no test hooks');
});

/** `import { a, type B } from 'm';` as CommonJS TypeScript writes it under verbatimModuleSyntax. */
function requireForm(line: string): string {
  const m = /^import \{ (.*) \} from '(.*)';$/.exec(line);
  if (!m) throw new Error(`the README example's import is not of the form the test converts: ${line}`);
  const names = m[1]!.split(',').map((n) => n.trim());
  const alias = `m_${m[2]!.replace(/\W/g, '_')}`;
  const values = names.filter((n) => !n.startsWith('type '));
  const types = names.filter((n) => n.startsWith('type ')).map((n) => n.slice(5));
  return [`import ${alias} = require('${m[2]}');`, `const { ${values.join(', ')} } = ${alias};`, ...types.map((n) => `type ${n} = ${alias}.${n};`)].join(' ');
}

t.test("the README's library example type-checks under tsc --init, as ESM and as CommonJS", async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const example = /```ts\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('\n## The library\n')))?.[1];
  if (example === undefined) throw new Error('README.md has no ts block under "## The library"');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  await run(process.execPath, [tsc, '--init'], { cwd: app, env: bareEnv() });
  // What the README says to change: tsc --init writes `"types": []`, and the example uses Node's.
  const config = readFileSync(join(app, 'tsconfig.json'), 'utf8');
  t.match(config, /"noUncheckedIndexedAccess": true/, 'the strict settings of tsc --init');
  writeFileSync(join(app, 'tsconfig.json'), config.replace('"types": []', '"types": ["node"]'));
  mkdirSync(join(app, 'node_modules', '@types'), { recursive: true });
  symlinkSync(join(root, 'node_modules', '@types', 'node'), join(app, 'node_modules', '@types', 'node'));
  writeFileSync(join(app, 'example.ts'), example);
  // CommonJS as the README says: `import x = require(...)` (tsc --init sets verbatimModuleSyntax),
  // and the body in an async function, for CommonJS has no top-level await.
  const lines = example.split('\n');
  const imports = lines.filter((l) => l.startsWith('import ')).map(requireForm);
  const body = lines.filter((l) => !l.startsWith('import '));
  writeFileSync(join(app, 'example-commonjs.cts'), `${imports.join('\n')}\nasync function main(): Promise<void> {\n${body.join('\n')}\n}\nvoid main();\n`);
  const checked = await run(process.execPath, [tsc, '--noEmit', '-p', '.'], { cwd: app, env: bareEnv() }).then(
    () => '',
    (err: { stdout: string }) => err.stdout,
  );
  t.equal(checked, '', 'tsc reports nothing');
});
