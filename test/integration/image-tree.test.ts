/**
 * The roots workloads run in: an overlay of the image's tree in the repository's cache (written
 * out once), each run with its own upper layer; a copy without overlays. Needs root (mount).
 */
import { execa } from 'execa';
import { mkdir, readFile, readdir, realpath, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { manifestId, serializeManifest } from '../../src/core/model/manifest.js';
import type { Entry } from '../../src/core/model/entry.js';
import { runRoot } from '../../src/core/profile/image-tree.js';
import { gcRepository } from '../../src/core/repository/maintenance.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { treeCacheDir } from '../../src/core/repository/tree-cache.js';
import { mountsUnder } from '../../src/lib/mounts.js';
import { silentReporter } from '../../src/lib/reporter.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: Repository;
const saved = process.env.AIM_TREE_CACHE;
beforeEach(async () => {
  tmp = await tempDir('aim-tree-');
  await initRepository(join(tmp.dir, 'repo'));
  repo = await openRepository(join(tmp.dir, 'repo'));
});
afterEach(async () => {
  if (saved === undefined) delete process.env.AIM_TREE_CACHE;
  else process.env.AIM_TREE_CACHE = saved;
  await repo.close();
  for (const m of await mountsUnder(await realpath(tmp.dir))) await execa('umount', ['--lazy', m]);
  await tmp.cleanup();
});

async function addImage(files: Record<string, string>, tag: string): Promise<string> {
  const entries: Entry[] = [{ path: '/', type: 'dir', mode: 0o751, uid: 0, gid: 0, mtime: 0 }, { path: '/etc', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 }];
  for (const [name, text] of Object.entries(files)) {
    const b = await repo.blobs.putBuffer(Buffer.from(text));
    entries.push({ path: `/etc/${name}`, type: 'file', mode: 0o640, uid: 0, gid: 33, mtime: 86_400, size: b.size, blob: b.hash });
  }
  const bytes = serializeManifest({ schemaVersion: 1, entries });
  const id = manifestId(bytes);
  await repo.blobs.putBuffer(bytes);
  const total = entries.reduce((n, e) => n + (e.size ?? 0), 0);
  await repo.catalog.addImage({ id, createdAt: new Date().toISOString(), source: 'test', sourceKind: 'test', entryCount: entries.length, fileCount: entries.length - 2, totalSize: total }, entries, undefined, [tag]);
  return id;
}

const scratch = async (name: string) => join(await repo.blobs.scratchDir(), name);

describe('the root a workload runs in', () => {
  it('is an overlay of the cached tree: the image as written, writes stay in the run, the second run reuses the tree', async () => {
    const id = await addImage({ 'app.conf': 'listen 80\n' }, 't/a:1');
    const work = await scratch('run-1');
    const first = await runRoot(repo, id, work, silentReporter);
    expect(first.how).toBe('overlay');
    expect((await mountsUnder(await realpath(work))).length).toBe(1);
    // the overlay's / is the image's, not the upper directory's 0700 (a daemon's workers must get through it)
    const top = await stat(first.root);
    expect([top.mode & 0o7777, top.uid, top.gid, top.mtimeMs]).toEqual([0o751, 0, 0, 0]);
    const conf = join(first.root, 'etc', 'app.conf');
    expect(await readFile(conf, 'utf8')).toBe('listen 80\n');
    const st = await stat(conf);
    expect([st.mode & 0o7777, st.uid, st.gid, st.mtimeMs]).toEqual([0o640, 0, 33, 86_400_000]);
    // the workload writes over the image's file and adds one
    await writeFile(conf, 'listen 8080\n');
    await writeFile(join(first.root, 'etc', 'new'), 'x');
    await first.release();
    expect(await mountsUnder(await realpath(work))).toEqual([]);

    const tree = join(treeCacheDir(repo), id, 'tree');
    expect(await readFile(join(tree, 'etc', 'app.conf'), 'utf8')).toBe('listen 80\n');
    expect(await readdir(join(tree, 'etc'))).toEqual(['app.conf']);
    const inode = (await stat(join(tree, 'etc', 'app.conf'))).ino;

    const second = await runRoot(repo, id, await scratch('run-2'), silentReporter);
    expect(await readFile(join(second.root, 'etc', 'app.conf'), 'utf8')).toBe('listen 80\n');
    expect(await readdir(join(second.root, 'etc'))).toEqual(['app.conf']);
    await second.release();
    // the same tree, not written again
    expect((await stat(join(tree, 'etc', 'app.conf'))).ino).toBe(inode);
  });

  it('AIM_TREE_CACHE=0: a copy, no mount, nothing cached', async () => {
    process.env.AIM_TREE_CACHE = '0';
    const id = await addImage({ 'app.conf': 'a\n' }, 't/a:1');
    const work = await scratch('run-copy');
    const r = await runRoot(repo, id, work, silentReporter);
    expect(r.how).toBe('copy');
    expect(await readFile(join(r.root, 'etc', 'app.conf'), 'utf8')).toBe('a\n');
    expect(await mountsUnder(await realpath(work))).toEqual([]);
    await r.release();
    expect(await readdir(treeCacheDir(repo)).catch(() => [])).toEqual([]);
  });

  it('keeps the AIM_TREE_CACHE most recently run trees, never one an overlay runs on', async () => {
    process.env.AIM_TREE_CACHE = '2';
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await addImage({ n: `${i}\n` }, `t/n:${i}`));
    const busy = await runRoot(repo, ids[0]!, await scratch('busy'), silentReporter);
    for (const id of ids.slice(1)) await (await runRoot(repo, id, await scratch(`run-${id.slice(0, 6)}`), silentReporter)).release();
    // ids[0] still has an overlay on it; of the others, only the last one run (limit 2 counts the newest and one more)
    expect((await readdir(treeCacheDir(repo))).sort()).toEqual([ids[0]!, ids[2]!, ids[3]!].sort());
    await busy.release();
    await (await runRoot(repo, ids[3]!, await scratch('again'), silentReporter)).release();
    expect((await readdir(treeCacheDir(repo))).sort()).toEqual([ids[2]!, ids[3]!].sort());
  });

  it('gc unmounts the overlay a killed process left and removes trees of images the catalog lost', async () => {
    const keep = await addImage({ k: 'k\n' }, 't/k:1');
    const gone = await addImage({ g: 'g\n' }, 't/g:1');
    await (await runRoot(repo, keep, await scratch('k'), silentReporter)).release();
    await (await runRoot(repo, gone, await scratch('g'), silentReporter)).release();
    await repo.catalog.removeImage(gone);
    // a scratch directory of a process that no longer exists, its run's overlay still mounted
    const dead = join(repo.tmpRoot, '999999999-deadbeef');
    await mkdir(dead, { recursive: true });
    const left = await runRoot(repo, keep, join(dead, 'trace-x'), silentReporter);
    expect(left.how).toBe('overlay');
    const report = await gcRepository(repo, silentReporter);
    expect(report).toMatchObject({ removedScratchDirs: 1, removedTrees: 1 });
    expect(await mountsUnder(await realpath(tmp.dir))).toEqual([]);
    expect(await readdir(treeCacheDir(repo))).toEqual([keep]);
    expect(await readdir(repo.tmpRoot).then((n) => n.includes('999999999-deadbeef'))).toBe(false);
  });
});
