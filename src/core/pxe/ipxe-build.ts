import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ConfigError, InputError, throwIfCancelled } from '../../lib/errors.js';
import { requireTool, runTool } from '../../lib/exec.js';
import type { Reporter } from '../../lib/reporter.js';
import { cachedFilePath, ipxeCacheKey, ipxeCacheLayout, lookupIpxeCache, storeIpxeCache, storeScript, withIpxeLock, type IpxeCacheEntry, type IpxeCacheLayout } from './ipxe-cache.js';
import { runLogged } from './ipxe-make.js';
import { checkIpxeSource, copyIpxeTree, hashIpxeTree, identifyIpxeSource, isBuildOutput, type IpxeSource } from './ipxe-source.js';
import { IPXE_TARGET_SPECS, IPXE_TARGETS, makeGoals, type IpxeTarget } from './ipxe-targets.js';
import { checkIpxeToolchain } from './ipxe-toolchain.js';

/** make's parallel jobs: bounded, so a build leaves the machine usable (and a server responsive). */
export const DEFAULT_IPXE_JOBS = 2;

export interface IpxeBuildRequest {
  /** An iPXE source tree (the directory holding src/) or a tarball of one (--ipxe-src, AIM_IPXE_SRC). */
  source: string | undefined;
  /** The iPXE script to embed (text starting with #!ipxe). */
  script: string;
  /** Where the script came from, for the result. */
  scriptOrigin?: { chain?: string; embed?: string };
  targets: readonly IpxeTarget[];
  /** aim's cache directory (defaultCacheDir()); the binaries are under its ipxe/. */
  cacheDir: string;
  /** Also copy the binaries here (created if absent; files of the same name are replaced). */
  outDir?: string;
  /** make -j (default 2). */
  jobs?: number;
  /** Cancels the build: make and its compilers are stopped, nothing half-built is cached. */
  signal?: AbortSignal;
}

export interface IpxeBuiltFile {
  name: string;
  /** In the cache. */
  path: string;
  /** The copy in --out. */
  outPath?: string;
  bytes: number;
  sha256: string;
  use: string;
}

export interface IpxeTargetResult {
  target: IpxeTarget;
  /** The cache key: sha256 over (source hash, script hash, target, recipe). */
  key: string;
  /** True when the binaries came from the cache. */
  cached: boolean;
  files: IpxeBuiltFile[];
}

export interface IpxeBuildResult {
  source: IpxeSource;
  script: { sha256: string; bytes: number; chain?: string; embed?: string };
  cacheDir: string;
  targets: IpxeTargetResult[];
  outDir?: string;
  /** When something was built: how (the trees make ran in, its log, the goals) and how long it took. */
  build?: { seconds: number; jobs: number; goals: string[]; trees: string[]; log: string };
  seconds: number;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Builds iPXE binaries with `script` embedded, by iPXE's own build (make in src/, EMBED=) in a
 * private copy of the source kept in the cache, or takes them from the cache when the same source,
 * script and target were built before. Tools are checked before any work; builds in one source
 * take turns.
 */
export async function buildIpxe(request: IpxeBuildRequest, reporter: Reporter): Promise<IpxeBuildResult> {
  const started = performance.now();
  const { signal } = request;
  const targets = IPXE_TARGETS.filter((t) => request.targets.includes(t));
  if (targets.length === 0) throw new ConfigError('no iPXE target given', { hint: `give --target ${IPXE_TARGETS.join('|')}` });
  const jobs = request.jobs ?? DEFAULT_IPXE_JOBS;
  if (!Number.isInteger(jobs) || jobs < 1) throw new ConfigError(`--jobs ${jobs}: give a whole number of parallel jobs, 1 or more`);
  if (!request.source) {
    throw new ConfigError('no iPXE source: give --ipxe-src or set AIM_IPXE_SRC', { hint: 'git clone https://github.com/ipxe/ipxe and give the clone (or a tarball of it) with --ipxe-src' });
  }
  const layout = ipxeCacheLayout(request.cacheDir);
  reporter.emit({ type: 'stage', stage: 'ipxe-source', status: 'start', detail: request.source });
  const source = await identifyIpxeSource(request.source);
  throwIfCancelled(signal);
  reporter.emit({ type: 'stage', stage: 'ipxe-source', status: 'done', detail: `${source.kind} ${source.sha256.slice(0, 12)}` });
  const scriptSha256 = sha256(request.script);
  const keyOf = (target: IpxeTarget) => ipxeCacheKey({ sourceSha256: source.sha256, gitCommit: source.gitCommit, scriptSha256, target });

  const entries = new Map<IpxeTarget, { entry: IpxeCacheEntry; cached: boolean }>();
  const lookup = async () => {
    for (const t of targets) {
      if (entries.has(t)) continue;
      const hit = await lookupIpxeCache(layout, keyOf(t));
      if (hit) entries.set(t, { entry: hit, cached: true });
    }
    return targets.filter((t) => !entries.has(t));
  };
  let build: IpxeBuildResult['build'];
  if ((await lookup()).length > 0) {
    checkIpxeToolchain(targets.filter((t) => !entries.has(t)));
    await withIpxeLock(layout, source.sha256, reporter, signal, async () => {
      // another process may have built them while this one waited
      const missing = await lookup();
      if (missing.length === 0) return;
      const scriptPath = await storeScript(layout, request.script, scriptSha256);
      const made = await makeTargets(layout, source, scriptPath, missing, jobs, reporter, signal);
      build = { seconds: made.seconds, jobs: made.jobs, goals: made.goals, trees: Object.values(made.trees), log: made.log };
      try {
        for (const t of missing) {
          const key = keyOf(t);
          const entry = await storeIpxeCache(layout, { key, target: t, sourceSha256: source.sha256, ...(source.gitCommit ? { gitCommit: source.gitCommit } : {}), scriptSha256, buildSeconds: made.seconds }, builtFiles(t, made));
          entries.set(t, { entry, cached: false });
        }
      } finally {
        await rm(made.media, { recursive: true, force: true });
      }
    });
  } else reporter.emit({ type: 'info', message: `iPXE ${targets.join(', ')}: from the cache` });

  const results: IpxeTargetResult[] = targets.map((t) => {
    const { entry, cached } = entries.get(t)!;
    return { target: t, key: entry.key, cached, files: entry.files.map((f) => ({ ...f, path: cachedFilePath(layout, entry.key, f.name) })) };
  });
  if (request.outDir !== undefined) await copyOut(results, request.outDir);
  return {
    source,
    script: { sha256: scriptSha256, bytes: Buffer.byteLength(request.script), ...request.scriptOrigin },
    cacheDir: request.cacheDir,
    targets: results,
    ...(request.outDir !== undefined ? { outDir: request.outDir } : {}),
    ...(build ? { build } : {}),
    seconds: (performance.now() - started) / 1000,
  };
}

/** Where a build left a target's files. */
function builtFiles(target: IpxeTarget, made: MakeResult): { name: string; from: string; use: string }[] {
  const spec = IPXE_TARGET_SPECS[target];
  return [
    ...spec.outputs.map((o) => ({ name: o.name, from: builtPath(made.trees, o.goal), use: o.use })),
    ...(spec.media ? [{ name: spec.media.name, from: join(made.media, spec.media.name), use: spec.media.use }] : []),
  ];
}

/** Copies every file into `outDir`, each through a temporary name, so a reader never sees half a binary. */
async function copyOut(results: IpxeTargetResult[], outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true });
  for (const f of results.flatMap((r) => r.files)) {
    const dest = join(outDir, f.name);
    const tmp = join(outDir, `.${f.name}.${randomBytes(4).toString('hex')}`);
    try {
      await copyFile(f.path, tmp);
      await rename(tmp, dest);
    } finally {
      await rm(tmp, { force: true });
    }
    f.outPath = dest;
  }
}

/**
 * The newest modification time of the tree's sources (build outputs left out), in seconds: the
 * SOURCE_DATE_EPOCH of its builds. A tarball's come from its members; a copied tree keeps its own.
 */
async function newestMtime(top: string, rel = ''): Promise<number> {
  let newest = 0;
  for (const name of await readdir(join(top, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    if (isBuildOutput(r)) continue;
    const st = await lstat(join(top, r));
    newest = Math.max(newest, st.isDirectory() ? await newestMtime(top, r) : Math.floor(st.mtimeMs / 1000));
  }
  return newest;
}

/**
 * A private copy of the source at `dest`, unpacked from the tarball or copied from the tree
 * (sources only, times kept), made once and then reused, so the next build with another script
 * compiles only what changed. A tree that changes while it is copied is refused.
 */
async function materializeSource(layout: IpxeCacheLayout, source: IpxeSource, dest: string, reporter: Reporter, signal: AbortSignal | undefined): Promise<void> {
  if (existsSync(join(dest, 'src', 'Makefile'))) return;
  await mkdir(layout.tmp, { recursive: true });
  await mkdir(dirname(dest), { recursive: true });
  const tmp = join(layout.tmp, `src-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp);
  try {
    let top: string;
    reporter.emit({ type: 'stage', stage: 'ipxe-tree', status: 'start', detail: `${source.kind === 'tarball' ? 'unpacking' : 'copying'} ${source.path} to ${dest}` });
    if (source.kind === 'tarball') {
      // GNU tar refuses members that climb out with `..`, strips leading `/` and delays links that
      // point out until the end; owners are not taken from the archive
      await runTool('tar', ['-x', '-f', source.path, '-C', tmp, '--no-same-owner', '--no-same-permissions'], { cancelSignal: signal });
      top = await tarballTop(tmp, source.path);
      await hashIpxeTree(top); // refuses links out of the tree and special files
    } else {
      top = join(tmp, 'tree');
      await copyIpxeTree(source.path, top);
      if ((await hashIpxeTree(top)) !== source.sha256) {
        throw new InputError('E_SOURCE_CHANGED', `iPXE source ${source.path} changed while it was being copied`, { hint: 'run the command again once nothing writes to the tree' });
      }
    }
    await rename(top, dest);
    reporter.emit({ type: 'stage', stage: 'ipxe-tree', status: 'done' });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Where a tarball's tree has its top: the archive's root, or its one directory (GitHub's `ipxe-<commit>/`). */
async function tarballTop(dir: string, tarball: string): Promise<string> {
  if (existsSync(join(dir, 'src', 'Makefile'))) return checkIpxeSource(dir);
  const names = await readdir(dir);
  if (names.length === 1 && existsSync(join(dir, names[0]!, 'src', 'Makefile'))) return checkIpxeSource(join(dir, names[0]!));
  throw new ConfigError(`--ipxe-src ${tarball} is not a tarball of an iPXE source tree (no src/Makefile at its top or in its one directory)`, {
    hint: 'give a tarball of an iPXE checkout (git archive, or GitHub\'s source archive) or the checkout itself',
  });
}

interface MakeResult {
  seconds: number;
  jobs: number;
  goals: string[];
  /** Build directory (bin, bin-x86_64-efi) → the work tree that builds it. */
  trees: Record<string, string>;
  log: string;
  /** Directory holding the media (ipxe.iso, ipxe.usb) made by genfsimg; the caller removes it. */
  media: string;
}

/** make's objects and links: a line `  [BUILD] bin/foo.o` per step. */
const MAKE_STEP = /^\s+\[([A-Z0-9_]+)\]\s+\S/;

/** The build directory of a goal: bin (BIOS), bin-x86_64-efi (UEFI). */
const buildDir = (goal: string) => goal.slice(0, goal.indexOf('/'));

function builtPath(trees: Record<string, string>, goal: string): string {
  return join(trees[buildDir(goal)]!, 'src', goal);
}

/**
 * Runs iPXE's build for the targets' goals: make -j<jobs> <goals> EMBED=<script> in src/ of one
 * work tree per build directory, `<cache>/ipxe/src/<source sha256>/<bin dir>/`. One tree per build
 * directory because iPXE's Makefile touches shared headers (config/named.h, include/compiler.h, …)
 * the first time it builds a directory, which makes every object of another directory in the same
 * tree stale: building BIOS after UEFI would compile UEFI again next time. Then genfsimg makes the
 * media from the binaries. Everything is logged to `<cache>/ipxe/src/<source sha256>/aim-build.log`.
 */
async function makeTargets(
  layout: IpxeCacheLayout,
  source: IpxeSource,
  scriptPath: string,
  targets: IpxeTarget[],
  jobs: number,
  reporter: Reporter,
  signal: AbortSignal | undefined,
): Promise<MakeResult> {
  const started = performance.now();
  const goals = makeGoals(targets);
  const base = join(layout.src, source.sha256);
  await mkdir(base, { recursive: true });
  const log = join(base, 'aim-build.log');
  await writeFile(log, '');
  const trees: Record<string, string> = {};
  const hint = 'iPXE\'s build needs gcc, binutils, make, perl and liblzma-dev (apt-get install gcc binutils make perl liblzma-dev)';
  let env: Record<string, string> = {};
  let steps = 0;
  for (const dir of [...new Set(goals.map(buildDir))]) {
    const tree = (trees[dir] = join(base, dir));
    await materializeSource(layout, source, tree, reporter, signal);
    const src = join(checkIpxeSource(tree), 'src');
    // C, and a fixed time (the sources'): the same source and script give the same binaries
    env = { ...process.env, LC_ALL: 'C', SOURCE_DATE_EPOCH: String(await newestMtime(tree)) } as Record<string, string>;
    const mine = goals.filter((g) => buildDir(g) === dir);
    const args = [`-j${jobs}`, ...mine, `EMBED=${scriptPath}`, ...(source.gitCommit ? [`GITVERSION=${source.gitCommit}`] : [])];
    reporter.emit({ type: 'stage', stage: 'ipxe', status: 'start', detail: `make ${args.join(' ')} (in ${src})` });
    await runLogged(requireTool('make'), args, {
      cwd: src,
      env,
      log,
      signal,
      hint,
      onLine: (line) => {
        if (MAKE_STEP.test(line)) reporter.emit({ type: 'progress', stage: 'ipxe', done: ++steps, unit: 'files' });
      },
    });
    for (const goal of mine) {
      if (!existsSync(join(src, goal))) throw new InputError('E_IPXE_BUILD', `iPXE's build succeeded but wrote no ${goal} in ${src}`, { hint: `check the source is a complete iPXE tree; the build log is ${log}` });
    }
  }
  const media = join(layout.tmp, `media-${randomBytes(6).toString('hex')}`);
  await mkdir(media, { recursive: true });
  try {
    for (const t of targets) {
      const m = IPXE_TARGET_SPECS[t].media;
      if (!m) continue;
      const inputs = m.inputs.map((g) => builtPath(trees, g));
      const src = join(trees[buildDir(m.inputs[0]!)]!, 'src');
      reporter.emit({ type: 'info', message: `util/genfsimg -o ${m.name} ${inputs.join(' ')}` });
      await runLogged(join(src, 'util', 'genfsimg'), ['-o', join(media, m.genfsimgName), ...inputs], {
        cwd: src,
        env,
        log,
        signal,
        hint: 'iPXE\'s util/genfsimg needs mtools, syslinux, isolinux and xorriso (apt-get install mtools syslinux syslinux-common isolinux xorriso)',
      });
      if (m.genfsimgName !== m.name) await rename(join(media, m.genfsimgName), join(media, m.name));
    }
  } catch (e) {
    await rm(media, { recursive: true, force: true });
    throw e;
  }
  const seconds = (performance.now() - started) / 1000;
  reporter.emit({ type: 'stage', stage: 'ipxe', status: 'done', detail: `${steps} steps in ${seconds.toFixed(0)} s` });
  return { seconds, jobs, goals, trees, log, media };
}
