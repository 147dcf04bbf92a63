/**
 * The repository's cache of image trees (cache/trees/<image id>/tree): an image's files written
 * out whole once, for workloads to run on as the lower layer of an overlay (profile/image-tree.ts).
 * A tree appears by rename, so one in the cache is always whole; the least recently used go when
 * more than AIM_TREE_CACHE are kept, and gc removes those of images the catalog no longer holds.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../../lib/errors.js';
import { isDeadOtherProcess } from '../../lib/file-mutex.js';
import { overlayUsesLower } from '../../lib/mounts.js';
import type { Reporter } from '../../lib/reporter.js';
import { exportImage } from '../export/export-image.js';
import type { Repository } from './repository.js';

/** Trees kept in the cache unless AIM_TREE_CACHE says otherwise; the least recently run go first. */
export const DEFAULT_TREES_KEPT = 3;

/** How many image trees the cache keeps (AIM_TREE_CACHE; 0 turns the cache and overlays off). */
export function treesKept(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.AIM_TREE_CACHE;
  if (raw === undefined || raw === '') return DEFAULT_TREES_KEPT;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 0 ? n : DEFAULT_TREES_KEPT;
}

export const treeCacheDir = (repo: Repository) => join(repo.root, 'cache', 'trees');

/**
 * The image's tree in the cache, written out when it is not there yet (into a private directory,
 * then renamed into place: a tree in the cache is always whole). Marks it used and trims the cache
 * to `kept` trees, sparing trees an overlay still uses.
 */
export async function cachedTree(repo: Repository, imageId: string, kept: number, reporter: Reporter, signal?: AbortSignal): Promise<string> {
  const dir = treeCacheDir(repo);
  const holder = join(dir, imageId);
  const tree = join(holder, 'tree');
  const present = await stat(tree).then((s) => s.isDirectory(), () => false);
  if (present) {
    const now = new Date();
    await utimes(holder, now, now);
    reporter.emit({ type: 'info', message: `image ${imageId.slice(0, 12)}: its tree is in the cache` });
  } else {
    const draft = join(dir, `.${imageId}.${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(draft, { recursive: true, mode: 0o700 });
    try {
      await exportImage(repo, imageId, { format: 'dir', out: join(draft, 'tree'), ...(signal ? { signal } : {}) }, reporter);
      await rename(draft, holder).catch(async (e: unknown) => {
        // another process put the same tree there first: theirs is as good
        if (errnoCode(e) !== 'ENOTEMPTY' && errnoCode(e) !== 'EEXIST') throw e;
      });
    } finally {
      await rm(draft, { recursive: true, force: true });
    }
  }
  await trimTrees(dir, kept, imageId);
  return tree;
}

/** Removes all but the `kept` most recently used trees (always sparing `keep`), and drafts of dead processes. */
async function trimTrees(dir: string, kept: number, keep: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const trees: { name: string; used: number }[] = [];
  for (const name of names) {
    if (name.startsWith('.')) {
      const pid = Number(/^\.[0-9a-f]+\.(\d+)-/.exec(name)?.[1]);
      if (isDeadOtherProcess(pid)) await rm(join(dir, name), { recursive: true, force: true });
      continue;
    }
    if (name === keep) continue;
    const s = await stat(join(dir, name)).catch(() => undefined);
    if (s) trees.push({ name, used: s.mtimeMs });
  }
  trees.sort((a, b) => b.used - a.used);
  for (const t of trees.slice(Math.max(0, kept - 1))) await removeTree(dir, t.name);
}

/** Removes one cached tree unless an overlay still runs on it. */
export async function removeTree(dir: string, name: string): Promise<boolean> {
  const holder = join(dir, name);
  if (await overlayUsesLower(holder)) return false;
  await rm(holder, { recursive: true, force: true });
  return true;
}

/** Cached trees of images the catalog no longer holds (gc removes them). */
export async function orphanTrees(repo: Repository, has: (imageId: string) => Promise<boolean>): Promise<string[]> {
  const names = await readdir(treeCacheDir(repo)).catch((e: unknown) => (errnoCode(e) === 'ENOENT' ? [] : Promise.reject(e)));
  const out: string[] = [];
  for (const n of names) if (!n.startsWith('.') && !(await has(n))) out.push(n);
  return out;
}
