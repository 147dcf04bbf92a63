// Shared helpers for benchmarks: gold trees, timing with peak RSS, result files.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const cache = join(root, '.cache');
/** test/helpers/cli.ts devCache: gold trees and the kernel package, shared by every clone on the machine. */
export const devCache = process.env.AIM_DEV_CACHE ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'aim-dev');
export const resultsDir = join(root, 'bench', 'results');

/**
 * A cached mmdebstrap minbase tar with the given packages (built once; never committed), through
 * aim's own gold cache (dist must be built): named by the recipe, apt sources scrubbed, the same
 * tree the tests get for those packages.
 */
export async function goldTar(name, packages) {
  const { cachedGoldTar, goldTarPath } = await import(join(root, 'dist', 'src', 'core', 'import', 'gold-cache.js'));
  const recipe = { packages };
  if (!existsSync(await goldTarPath(join(devCache, 'gold'), recipe))) console.error(`bench: building gold tree ${name} (${packages.join(',')}) with mmdebstrap…`);
  return cachedGoldTar(join(devCache, 'gold'), recipe);
}

/** Extracts a tar exactly (as root) into dir once. */
export function extracted(tar, dir) {
  if (existsSync(join(dir, '.complete'))) return dir;
  execFileSync('rm', ['-rf', dir]);
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-xpf', tar, '-C', dir, '--xattrs', '--xattrs-include=*', '--numeric-owner']);
  writeFileSync(join(dir, '.complete'), '');
  return dir;
}

/**
 * Runs a command under GNU time: wall seconds, CPU seconds (user + system, children included) and
 * peak RSS (MB) of the process tree's largest member.
 */
export function timed(cmd, args, options = {}) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M %U %S', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, ...options });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const last = r.stderr.trim().split('\n').pop();
  const [secs, kb, user, sys] = last.split(' ').map(Number);
  return { seconds: secs, cpuSeconds: Math.round((user + sys) * 100) / 100, peakRssMB: Math.round(kb / 1024), stdout: r.stdout };
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function duBytes(path, apparent = true) {
  const out = execFileSync('du', ['-s', apparent ? '--bytes' : '--block-size=1', path], { encoding: 'utf8' });
  return Number(out.split('\t')[0]);
}

export function writeResults(name, data, markdown) {
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${name}.json`), JSON.stringify(data, null, 2) + '\n');
  writeFileSync(join(resultsDir, `${name}.md`), markdown);
  console.log(markdown);
}

export function machine() {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown';
  return { cpu, cores: Number(execFileSync('nproc', { encoding: 'utf8' }).trim()), node: process.version, date: new Date().toISOString() };
}
