import { execa } from 'execa';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, cp, mkdir, readdir, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { basename, join, posix } from 'node:path';
import { cachedFile, cachedGoldTar as cached, goldRecipeKey } from '../../src/core/import/gold-cache.js';
import { resolveCopyIns, type CopyIn } from '../../src/core/import/gold-debian.js';
import { walkTarFile } from '../../src/core/import/tar-reader.js';
import { devCache, projectRoot } from './cli.js';
import { tempDir } from './tmp.js';

/** Gold trees the tests share, built once per machine with mmdebstrap and cached (never committed). */
export const GOLD = {
  nginx: ['nginx'],
  redis: ['redis-server'],
  systemd: ['systemd-sysv'],
} as const;

export const goldCacheDir = join(devCache, 'gold');

/**
 * Path of a cached mmdebstrap minbase tar with the given packages, building it when absent. It is
 * the tree of that recipe whoever asks (named by the recipe, apt sources scrubbed as `aim image
 * gold debian` does), so an example with the same packages and the benchmarks reuse it: every
 * mmdebstrap run is a minute of a test worker.
 */
export async function goldTar(name: keyof typeof GOLD): Promise<string> {
  return cachedGoldTar(GOLD[name]);
}

/**
 * A cached minbase tar with `packages`, named by that recipe so tests, the demo and the benchmarks
 * share it. Apt sources are scrubbed, as `aim image gold debian` does. Copy-ins go on top of it
 * (layeredGoldTar), never into the mmdebstrap run.
 */
export async function cachedGoldTar(packages: readonly string[]): Promise<string> {
  return cached(goldCacheDir, { packages });
}

/**
 * A minbase tar with `packages`, then the copy-ins laid over it, as mmdebstrap's copy-in would
 * have put them (owned by root, modes as on the host, DEST created). The package tree is cached
 * by its packages alone and the layered tar by both: editing an example's files costs a copy of
 * the tar, not a new mmdebstrap run of a large tree, and recipes with the same packages share one
 * mmdebstrap run. Without copy-ins it is the package tree itself.
 */
export async function layeredGoldTar(packages: readonly string[], copyIns: readonly string[]): Promise<string> {
  const base = await cachedGoldTar(packages);
  if (copyIns.length === 0) return base;
  const resolved = await resolveCopyIns(copyIns, projectRoot);
  const key = (await goldRecipeKey({ packages, copyIns: resolved })).slice(0, 16);
  return cachedFile(join(goldCacheDir, `layered-${key}.tar`), (tmp) => layerOnto(base, resolved, tmp));
}

/**
 * Writes `out`: the tar `base` with the copy-ins replacing or adding members. Replaced members are
 * left out while copying the base byte for byte (aim's own tar walker gives each member's span,
 * its extension headers included; GNU tar --delete loses members of large pax archives), then
 * GNU tar --append adds the copy-ins.
 */
export async function layerOnto(base: string, copyIns: readonly CopyIn[], out: string): Promise<void> {
  const listing = (await execa('tar', ['-tf', base], { maxBuffer: 1 << 28 })).stdout.split('\n');
  const inBase = new Set(listing.map((m) => m.replace(/\/$/, '')));
  const stage = await tempDir('aim-layer-');
  try {
    // The tree the copy-ins make, staged under one directory; members are "./path" as in mmdebstrap's tars.
    const added: string[] = [];
    const replaced: string[] = [];
    const note = (member: string, isDir: boolean) => {
      if (!inBase.has(member)) added.push(member);
      else if (!isDir) replaced.push(member);
    };
    for (const c of copyIns) {
      const parts = c.dest.split('/').filter(Boolean);
      for (let i = 1; i <= parts.length; i++) note(`./${parts.slice(0, i).join('/')}`, true);
      const into = join(stage.dir, c.dest);
      await mkdir(into, { recursive: true, mode: 0o755 });
      if (c.dir) {
        await cp(c.src, into, { recursive: true, preserveTimestamps: true });
        for (const rel of await walk(c.src)) note(`.${posix.join(c.dest, rel.path)}`, rel.dir);
      } else {
        await copyFile(c.src, join(into, basename(c.src)));
        note(`.${posix.join(c.dest, basename(c.src))}`, false);
      }
    }
    await copyWithout(base, new Set(replaced), out);
    const members = [...new Set(added)].sort();
    await execa('tar', ['--append', '-f', out, '-C', stage.dir, '--no-recursion', '--owner=0', '--group=0', '--numeric-owner', '--format=pax', ...members, ...replaced]);
  } finally {
    await stage.cleanup();
  }
}

/** Copies a tar file leaving out the members with the given names ("./path", directories without their "/"). */
async function copyWithout(tar: string, names: ReadonlySet<string>, out: string): Promise<void> {
  const drop: [number, number][] = [];
  for (const m of walkTarFile(tar)) {
    if (!names.has(m.name.toString('utf8').replace(/\/$/, ''))) continue;
    drop.push([m.headerOffset, m.dataOffset + m.dataSize + ((512 - (m.dataSize % 512)) % 512)]);
  }
  if (drop.length !== names.size) throw new Error(`${tar}: expected ${names.size} members to replace, found ${drop.length}`);
  const size = (await stat(tar)).size;
  const keep: [number, number][] = [];
  let at = 0;
  for (const [start, end] of drop) {
    if (start > at) keep.push([at, start]);
    at = end;
  }
  keep.push([at, size]);
  const sink = createWriteStream(out);
  for (const [start, end] of keep) await pipeline(createReadStream(tar, { start, end: end - 1 }), sink, { end: false });
  await new Promise<void>((resolve, reject) => sink.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

/** Paths under `dir` (relative, "/"-separated), parents before children. */
async function walk(dir: string, rel = ''): Promise<{ path: string; dir: boolean }[]> {
  const out: { path: string; dir: boolean }[] = [];
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const path = rel === '' ? name : `${rel}/${name}`;
    const isDir = (await stat(join(dir, path))).isDirectory();
    out.push({ path, dir: isDir });
    if (isDir) out.push(...(await walk(dir, path)));
  }
  return out;
}
