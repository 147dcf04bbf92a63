#!/usr/bin/env node
// The end-to-end demo: build real gold images from Debian packages, import them into an embedded
// repository and show what aim knows about them. Grows with each capability of aim.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = join(root, '.cache', 'demo');
const repo = process.env.AIM_REPO ?? join(work, 'repo');
// Every demo starts from an empty repository (its own; an AIM_REPO given by the user is left as is).
if (!process.env.AIM_REPO) rmSync(repo, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

function aim(...args) {
  const json = args[args.length - 1] === '--json';
  console.log(`\n$ aim ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [join(root, 'bin', 'run.js'), ...args], {
    stdio: ['inherit', json ? 'pipe' : 'inherit', 'inherit'],
    env: { ...process.env, AIM_REPO: repo },
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) {
    console.error(`demo: "aim ${args.join(' ')}" failed with exit code ${r.status}`);
    process.exit(r.status ?? 1);
  }
  return json ? JSON.parse(r.stdout) : undefined;
}

console.log(`demo: repository ${repo}`);
aim('repo', 'init');
aim('image', 'gold', 'debian', '--suite', 'bookworm', '--variant', 'minbase', '--include', 'nginx', '--tag', 'gold/nginx:1');
aim('image', 'gold', 'debian', '--suite', 'bookworm', '--variant', 'minbase', '--include', 'redis-server', '--tag', 'gold/redis:1');
aim('image', 'list');
aim('image', 'inspect', 'gold/nginx:1', '--packages', '8');
aim('image', 'diff', 'gold/nginx:1', 'gold/redis:1', '--limit', '5');
const tar = join(work, 'nginx-export.tar');
rmSync(tar, { force: true });
aim('image', 'export', 'gold/nginx:1', '--format', 'tar', '--out', tar);
const original = aim('image', 'inspect', 'gold/nginx:1', '--json');
const again = aim('image', 'import', tar, '--tag', 'gold/nginx:roundtrip', '--json');
if (again.id !== original.id) {
  console.error(`demo: the exported tar re-imported as ${again.id}, not ${original.id}: the round trip is not exact`);
  process.exit(1);
}
console.log(`exported and re-imported: same image id ${again.id.slice(0, 12)}, so every byte and attribute survived`);

// Slim: trace nginx serving its page, keep only what it needs, and check the slim image serves the same page.
const nginx = ['--run', "nginx -g 'daemon off;'", '--ready-port', '80', '--probe', 'http://127.0.0.1:80/', '--duration', '3s'];
const goldRun = aim('profile', 'run', 'gold/nginx:1', ...nginx, '--name', 'web', '--json');
aim('slim', 'gold/nginx:1', '--profile', 'web', '--tag', 'slim/nginx:1', '--explain', '/lib64/ld-linux-x86-64.so.2', '--explain', '/usr/bin/perl');
const slimRun = aim('profile', 'run', 'slim/nginx:1', ...nginx, '--name', 'web-slim', '--json');
const [g, t] = [goldRun.run.probes[0], slimRun.run.probes[0]];
console.log(`gold: HTTP ${g.status} sha256 ${g.sha256.slice(0, 16)}…   slim: HTTP ${t.status} sha256 ${t.sha256.slice(0, 16)}…`);
if (g.status !== t.status || g.sha256 !== t.sha256) {
  console.error('demo: the slim image does not serve what the gold image serves');
  process.exit(1);
}
aim('verify', 'slim/nginx:1', '--against', 'gold/nginx:1', '--profile', 'web');

// The redis example, driven by its template (examples/redis/template.yaml names gold/redis:1,
// the workload, the redis-cli PING/SET/GET probes and the slim tag).
const redisTemplate = join(root, 'examples', 'redis', 'template.yaml');
aim('profile', 'run', '--template', redisTemplate);
aim('slim', '--template', redisTemplate, '--explain', '/usr/bin/redis-cli');
aim('verify', '--template', redisTemplate);

const mib = (b) => `${(b / 1048576).toFixed(1)} MiB`;
const rows = [
  ['nginx', aim('image', 'inspect', 'slim/nginx:1', '--json').slimReport],
  ['redis', aim('image', 'inspect', 'slim/redis:1', '--json').slimReport],
].map(([name, r]) => [
  name,
  `${r.gold.files} files, ${mib(r.gold.bytes)}`,
  `${r.slim.files} files, ${mib(r.slim.bytes)}`,
  mib(r.limit.bytes),
  `${(r.slim.bytes / r.limit.bytes).toFixed(2)}x`,
  `${(r.gold.bytes / r.slim.bytes).toFixed(1)}x`,
]);
const header = ['example', 'before (gold)', 'after (slim)', 'traced limit', 'slim/limit', 'smaller'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
console.log('\nbefore and after:');
for (const row of [header, ...rows]) console.log(row.map((c, i) => c.padEnd(widths[i])).join('  '));
// Build: the kernel core once (Debian's kernel package, imported as an image), then a bootable
// UEFI raw disk of the gold and of the slim nginx image, each booted in QEMU until nginx answers.
aim('core', 'kernel', '--deb-dir', join(process.env.AIM_DEV_CACHE ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'aim-dev'), 'kernel'));
const booted = [];
for (const [name, ref, extra] of [
  ['gold', 'gold/nginx:1', ['--entrypoint', "nginx -g 'daemon off;'"]],
  ['slim', 'slim/nginx:1', []],
]) {
  const out = join(work, `raw-${name}`);
  rmSync(out, { recursive: true, force: true });
  const built = aim('build', ref, '--format', 'raw', '--kernel', 'core/kernel:bookworm', '--out', out, ...extra, '--json');
  const disk = built.artifacts[0];
  console.log(`${name}: ${disk.path} ${mib(disk.bytes)} (${built.seconds.toFixed(1)} s)`);
  const boot = aim('boot', out, '--forward', '0:80', '--probe', '/', '--timeout', '180s', '--json');
  console.log(`${name}: HTTP ${boot.probe.status} "${boot.probe.title ?? ''}" ${boot.probe.seconds.toFixed(1)} s after QEMU started`);
  booted.push([name, disk.bytes, built.seconds, boot.probe]);
}
const [gb, sb] = booted;
if (gb[3].sha256 !== sb[3].sha256) {
  console.error('demo: the booted slim disk does not serve what the booted gold disk serves');
  process.exit(1);
}
const bootRows = booted.map(([name, bytes, secs, probe]) => [name, mib(bytes), `${secs.toFixed(1)} s`, `${probe.seconds.toFixed(1)} s`, `HTTP ${probe.status} ${probe.sha256.slice(0, 12)}`]);
const bootHeader = ['nginx disk', 'raw disk', 'build', 'QEMU start → page', 'page'];
const bw = bootHeader.map((h, i) => Math.max(h.length, ...bootRows.map((r) => r[i].length)));
console.log('\nbooted in QEMU (UEFI, software emulation):');
for (const row of [bootHeader, ...bootRows]) console.log(row.map((c, i) => c.padEnd(bw[i])).join('  '));

aim('repo', 'stats');
aim('repo', 'fsck');
console.log('\ndemo: done. Not yet in the demo: PXE and VMDK/OVA artifacts, shipping (see npm test and the README).');
