import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { errnoCode } from '../../lib/errors.js';
import { withFileMutex } from '../../lib/file-mutex.js';
import { sha256File } from '../../lib/fs.js';
import type { Reporter } from '../../lib/reporter.js';
import type { IpxeTarget } from './ipxe-targets.js';

/**
 * Bump when what a key stands for changes (the goals of a target, the make variables, how media
 * are made): older entries then simply stop matching.
 */
export const IPXE_RECIPE = 1;

/** --cache-dir > AIM_CACHE_DIR > $XDG_CACHE_HOME/aim > ~/.cache/aim. iPXE's part is its ipxe/ directory. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.AIM_CACHE_DIR) return resolve(env.AIM_CACHE_DIR);
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'aim');
}

/** The places of the iPXE cache under aim's cache directory. */
export function ipxeCacheLayout(cacheDir: string) {
  const root = join(resolve(cacheDir), 'ipxe');
  return {
    root,
    /** Built binaries, one directory per key. */
    bin: join(root, 'bin'),
    /** Unpacked or copied sources, by source hash: the trees make builds in (their objects make the next build incremental). */
    src: join(root, 'src'),
    /** Embedded scripts by their sha256, at a stable path so make rebuilds only when the script changes. */
    scripts: join(root, 'scripts'),
    locks: join(root, 'locks'),
    tmp: join(root, 'tmp'),
  };
}
export type IpxeCacheLayout = ReturnType<typeof ipxeCacheLayout>;

/** What makes a binary: the source, the embedded script, the target (and the recipe). */
export interface IpxeKeyParts {
  sourceSha256: string;
  gitCommit?: string;
  scriptSha256: string;
  target: IpxeTarget;
}

export function ipxeCacheKey(p: IpxeKeyParts): string {
  const canonical = JSON.stringify({ recipe: IPXE_RECIPE, source: p.sourceSha256, git: p.gitCommit ?? null, script: p.scriptSha256, target: p.target });
  return createHash('sha256').update(canonical).digest('hex');
}

/** One file of a cache entry. */
export interface IpxeCachedFile {
  name: string;
  bytes: number;
  sha256: string;
  use: string;
}

/** entry.json of a cache entry. */
export interface IpxeCacheEntry {
  key: string;
  target: IpxeTarget;
  sourceSha256: string;
  gitCommit?: string;
  scriptSha256: string;
  files: IpxeCachedFile[];
  /** Seconds the build that made it took (all targets of that build). */
  buildSeconds: number;
  builtAt: string;
}

const ENTRY = 'entry.json';

/**
 * The entry for `key`, its files checked against their recorded sha256; undefined when there is
 * none. A damaged entry (a file missing or changed) is removed, so it is built again.
 */
export async function lookupIpxeCache(layout: IpxeCacheLayout, key: string): Promise<IpxeCacheEntry | undefined> {
  const dir = join(layout.bin, key);
  let entry: IpxeCacheEntry;
  try {
    entry = JSON.parse(await readFile(join(dir, ENTRY), 'utf8')) as IpxeCacheEntry;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
  for (const f of entry.files ?? []) {
    const path = join(dir, f.name);
    const ok = existsSync(path) && (await stat(path)).size === f.bytes && (await sha256File(path)) === f.sha256;
    if (!ok) {
      await rm(dir, { recursive: true, force: true });
      return undefined;
    }
  }
  return entry.key === key && Array.isArray(entry.files) ? entry : undefined;
}

export function cachedFilePath(layout: IpxeCacheLayout, key: string, name: string): string {
  return join(layout.bin, key, name);
}

/**
 * Stores built files as the entry for `key`: written into a private directory, then renamed into
 * place, so a reader sees a whole entry or none. When another build stored the same key first,
 * its entry stays (same inputs, same binaries).
 */
export async function storeIpxeCache(
  layout: IpxeCacheLayout,
  entry: Omit<IpxeCacheEntry, 'files' | 'builtAt'>,
  files: { name: string; from: string; use: string }[],
): Promise<IpxeCacheEntry> {
  await mkdir(layout.tmp, { recursive: true });
  await mkdir(layout.bin, { recursive: true });
  const tmp = join(layout.tmp, `entry-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp);
  try {
    const stored: IpxeCachedFile[] = [];
    for (const f of files) {
      const dest = join(tmp, f.name);
      await copyFile(f.from, dest);
      stored.push({ name: f.name, bytes: (await stat(dest)).size, sha256: await sha256File(dest), use: f.use });
    }
    const full: IpxeCacheEntry = { ...entry, files: stored, builtAt: new Date().toISOString() };
    await writeFile(join(tmp, ENTRY), `${JSON.stringify(full, null, 2)}\n`);
    try {
      await rename(tmp, join(layout.bin, entry.key));
    } catch (e) {
      if (errnoCode(e) !== 'ENOTEMPTY' && errnoCode(e) !== 'EEXIST') throw e;
      const theirs = await lookupIpxeCache(layout, entry.key);
      if (theirs) return theirs;
      throw e;
    }
    return full;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The embedded script at its content-addressed path (written once), named aim.ipxe: iPXE names an embedded image after its file. */
export async function storeScript(layout: IpxeCacheLayout, script: string, sha256: string): Promise<string> {
  const dir = join(layout.scripts, sha256);
  const path = join(dir, 'aim.ipxe');
  if (existsSync(path) && (await sha256File(path)) === sha256) return path;
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.${randomBytes(6).toString('hex')}`;
  await writeFile(tmp, script);
  await rename(tmp, path);
  return path;
}

/**
 * Holds `<locks>/<name>.lock` while `work` runs: builds in one source tree take turns (make in a
 * tree is not safe to run twice at once). A lock whose process is gone is taken over. Waiting
 * says so once and ends when `signal` aborts.
 */
export async function withIpxeLock<T>(layout: IpxeCacheLayout, name: string, reporter: Reporter, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
  await mkdir(layout.locks, { recursive: true });
  const file = join(layout.locks, `${name}.lock`);
  const onWait = (pid: number | undefined) => reporter.emit({ type: 'info', message: `waiting for another iPXE build in the same source (pid ${pid ?? '?'}, ${file})` });
  return withFileMutex(file, work, { signal, onWait });
}
