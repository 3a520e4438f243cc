#!/usr/bin/env node
// Builds lb4 as of one git revision in a directory of its own, so that a bench can measure it
// with --lb4-root while the working tree is being edited, or beside another build with
// --compare-root (before/after a change, in the same run):
//   node bench/snapshot.mjs [REV=HEAD] [DIR=/tmp/lb4-REV]
//   npm run bench -- --lb4-root DIR   or   npm run bench -- --lb4-root AFTER --compare-root BEFORE
// The snapshot shares this checkout's node_modules (a symlink) and records its commit in
// DIR/.lb4-commit, which the report shows.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const rev = process.argv[2] ?? 'HEAD';
const commit = execFileSync('git', ['rev-parse', '--short', `${rev}^{commit}`], { cwd: repo, encoding: 'utf8' }).trim();
const dir = resolve(process.argv[3] ?? `/tmp/lb4-${commit}`);

if (existsSync(dir)) rmSync(dir, { recursive: true });
mkdirSync(dir, { recursive: true });
// git archive writes nothing into .git, unlike a worktree.
execFileSync('sh', ['-c', `git archive ${commit} | tar -x -C "${dir}"`], { cwd: repo, stdio: 'inherit' });
symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
const run = (cmd, args) => execFileSync(cmd, args, { cwd: dir, stdio: 'inherit' });
run('npx', ['cmake-js', 'compile', '--log-level', 'error']);
run('npx', ['tsc', '-p', 'tsconfig.build.json']);
writeFileSync(join(dir, '.lb4-commit'), `${commit}\n`);
process.stdout.write(`lb4 ${commit} built in ${dir}\nmeasure it with: npm run bench -- --lb4-root ${dir}  (or --compare-root ${dir} beside another build)\n`);
