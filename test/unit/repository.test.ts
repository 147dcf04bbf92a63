import { chmod, readFile, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { fsckRepository, gcRepository, repoStats } from '../../src/core/repository/maintenance.js';
import { manifestId, serializeManifest } from '../../src/core/model/manifest.js';
import type { Entry } from '../../src/core/model/entry.js';
import { BusyError, NotFoundError } from '../../src/lib/errors.js';
import { silentReporter } from '../../src/lib/reporter.js';
import { tempDir } from '../helpers/tmp.js';
import { join } from 'node:path';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: Repository;
beforeEach(async () => {
  tmp = await tempDir();
  await initRepository(tmp.dir);
  repo = await openRepository(tmp.dir);
});
afterEach(async () => {
  await repo.close();
  await tmp.cleanup();
});

async function addImage(files: Record<string, string>, tag: string): Promise<string> {
  const entries: Entry[] = [{ path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 }];
  for (const [name, text] of Object.entries(files)) {
    const b = await repo.blobs.putBuffer(Buffer.from(text));
    entries.push({ path: `/${name}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: b.size, blob: b.hash });
  }
  const bytes = serializeManifest({ schemaVersion: 1, entries });
  const id = manifestId(bytes);
  await repo.blobs.putBuffer(bytes);
  const total = entries.reduce((n, e) => n + (e.size ?? 0), 0);
  await repo.catalog.addImage(
    { id, createdAt: new Date().toISOString(), source: 'test', sourceKind: 'test', entryCount: entries.length, fileCount: entries.length - 1, totalSize: total },
    entries,
    undefined,
    [tag],
  );
  return id;
}

describe('repository', () => {
  it('refuses to open a directory that is not a repository, with a hint', async () => {
    const other = await tempDir();
    await expect(openRepository(other.dir)).rejects.toBeInstanceOf(NotFoundError);
    await other.cleanup();
  });

  it('stores blobs by sha256 in fan-out directories', async () => {
    const big = Buffer.alloc((1 << 20) + 17, 3);
    const stored = await repo.blobs.put(Readable.from([big.subarray(0, 1000), big.subarray(1000)]));
    expect(stored.hash).toBe(createHash('sha256').update(big).digest('hex'));
    expect(repo.blobs.localPath!(stored.hash)).toBe(join(tmp.dir, 'objects', 'sha256', stored.hash.slice(0, 2), stored.hash.slice(2)));
    expect((await readFile(repo.blobs.localPath!(stored.hash))).equals(big)).toBe(true);
    expect(await repo.blobs.readRange(stored.hash, 1000, 4)).toEqual(Buffer.from([3, 3, 3, 3]));
  });

  it('resolves tags, ids and id prefixes', async () => {
    const id = await addImage({ a: 'x' }, 'app/one:1');
    expect(await repo.catalog.resolve('app/one:1')).toBe(id);
    expect(await repo.catalog.resolve(id)).toBe(id);
    expect(await repo.catalog.resolve(id.slice(0, 10))).toBe(id);
    expect(await repo.catalog.resolve('app/one:2')).toBeUndefined();
  });

  it('counts deduplicated bytes across images', async () => {
    await addImage({ a: 'shared-content', b: 'one' }, 'x:1');
    await addImage({ a: 'shared-content', c: 'three' }, 'y:1');
    const s = await repoStats(repo);
    expect(s.images).toBe(2);
    expect(s.logicalBytes).toBe(14 + 3 + 14 + 5);
    expect(s.uniqueBytes).toBe(14 + 3 + 5);
    expect(s.dedupRatio).toBeCloseTo(36 / 22, 2);
  });

  it('fsck finds a corrupt blob, gc keeps referenced blobs and removes the rest', async () => {
    const id = await addImage({ a: 'keep me' }, 'k:1');
    const orphan = await repo.blobs.putBuffer(Buffer.from('orphan'));
    let report = await fsckRepository(repo, silentReporter);
    expect(report.ok).toBe(true);
    expect(report.unreferencedBlobs).toBe(1);

    const entries = await repo.catalog.entries(id);
    const blob = entries.find((e) => e.path === '/a')!.blob!;
    await chmod(repo.blobs.localPath!(blob), 0o644);
    await writeFile(repo.blobs.localPath!(blob), 'tampered');
    report = await fsckRepository(repo, silentReporter);
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.kind)).toContain('corrupt-blob');

    const gc = await gcRepository(repo, silentReporter);
    expect(gc.removedBlobs).toBe(1);
    expect(await repo.blobs.has(orphan.hash)).toBe(false);
    expect(await repo.blobs.has(blob)).toBe(true);
    expect(await repo.blobs.has(id)).toBe(true);
  });

  it('gc refuses to run while an import holds the write lock', async () => {
    const lock = await repo.lockForWrite();
    await expect(gcRepository(repo, silentReporter)).rejects.toBeInstanceOf(BusyError);
    await lock.release();
    await expect(gcRepository(repo, silentReporter)).resolves.toMatchObject({ removedBlobs: 0 });
  });

  it('removing an image keeps its blobs until gc', async () => {
    const id = await addImage({ a: 'gone soon' }, 'g:1');
    await repo.catalog.removeImage(id);
    expect(await repo.catalog.getImage(id)).toBeUndefined();
    expect(await repo.catalog.resolve('g:1')).toBeUndefined();
    const gc = await gcRepository(repo, silentReporter);
    expect(gc.removedBlobs).toBe(2);
  });
});
