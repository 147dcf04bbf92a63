import { chmod, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { fsckRepository, gcRepository, repoStats } from '../../src/core/repository/maintenance.js';
import { repairRepository } from '../../src/core/repository/repair.js';
import { manifestId, serializeManifest } from '../../src/core/model/manifest.js';
import type { Entry } from '../../src/core/model/entry.js';
import { BusyError, NotFoundError } from '../../src/lib/errors.js';
import { silentReporter } from '../../src/lib/reporter.js';
import { tempDir } from '../helpers/tmp.js';
import { commitImage } from '../../src/core/import/commit.js';
import { ingestSource } from '../../src/core/import/ingest.js';
import type { SourceEntry } from '../../src/core/import/source.js';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteCatalog } from '../../src/core/repository/sqlite-catalog.js';

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

  it('names a repository path that is a file, for init and open alike (no raw EEXIST/ENOTDIR)', async () => {
    const file = join(tmp.dir, 'not-a-dir');
    await writeFile(file, 'x');
    for (const attempt of [initRepository(file), openRepository(file)]) {
      await expect(attempt).rejects.toMatchObject({ code: 'E_CONFIG', message: expect.stringContaining(`${file} is a file, not a repository directory`) });
    }
    expect(await readFile(file, 'utf8')).toBe('x');
  });

  it('stores blobs by sha256 in fan-out directories', async () => {
    const big = Buffer.alloc((1 << 20) + 17, 3);
    const stored = await repo.blobs.put(Readable.from([big.subarray(0, 1000), big.subarray(1000)]));
    expect(stored.hash).toBe(createHash('sha256').update(big).digest('hex'));
    expect(repo.blobs.localPath!(stored.hash)).toBe(join(tmp.dir, 'objects', 'sha256', stored.hash.slice(0, 2), stored.hash.slice(2)));
    expect((await readFile(repo.blobs.localPath!(stored.hash))).equals(big)).toBe(true);
    expect(await repo.blobs.readRange(stored.hash, 1000, 4)).toEqual(Buffer.from([3, 3, 3, 3]));
  });

  it('stores local files and byte ranges of them in one pass (putLocal)', async () => {
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const small = Buffer.from('small file\n');
    // around the 1 MiB read buffer: below, exactly, and spanning several buffers
    const sizes = [(1 << 20) - 1, 1 << 20, (3 << 20) + 5];
    const bigs = sizes.map((n, i) => Buffer.alloc(n, i + 1).fill(9, n - 3));
    await writeFile(join(tmp.dir, 'small'), small);
    for (const [i, b] of bigs.entries()) await writeFile(join(tmp.dir, `big${i}`), b);

    const s = await repo.blobs.putLocal({ path: join(tmp.dir, 'small') });
    expect(s).toEqual({ hash: sha(small), size: small.length, head: small });
    expect((await readFile(repo.blobs.localPath!(s.hash))).equals(small)).toBe(true);
    for (const [i, b] of bigs.entries()) {
      const r = await repo.blobs.putLocal({ path: Buffer.from(join(tmp.dir, `big${i}`)) });
      expect(r.hash).toBe(sha(b));
      expect(r.size).toBe(b.length);
      expect(r.head.equals(b.subarray(0, 64))).toBe(true);
      expect((await readFile(repo.blobs.localPath!(r.hash))).equals(b)).toBe(true);
    }

    // a range: the middle of the biggest file, across buffer boundaries
    const big = bigs[2]!;
    const range = await repo.blobs.putLocal({ path: join(tmp.dir, 'big2'), offset: 1000, length: (2 << 20) + 3 });
    expect(range.hash).toBe(sha(big.subarray(1000, 1000 + (2 << 20) + 3)));
    // a range that fits the buffer, shown to `inspect` before putLocal resolves
    const seen = await repo.blobs.putLocal({ path: join(tmp.dir, 'big2'), offset: big.length - 10, length: 10 }, { inspect: async (c) => c.toString('hex') });
    expect(seen.inspected).toBe(big.subarray(big.length - 10).toString('hex'));
    expect(seen.hash).toBe(sha(big.subarray(big.length - 10)));
    // contents larger than the read buffer are not inspected
    const unseen = await repo.blobs.putLocal({ path: join(tmp.dir, 'big2') }, { inspect: () => 'called' });
    expect(unseen.inspected).toBeUndefined();
    // two at once: the second must not read into the buffer the first one lent to `inspect`
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = repo.blobs.putLocal({ path: join(tmp.dir, 'small') }, { inspect: async (c) => (await gate, c.toString()) });
    const other = await repo.blobs.putLocal({ path: join(tmp.dir, 'big0') }, { inspect: (c) => c.length });
    release();
    expect((await slow).inspected).toBe(small.toString());
    expect(other.inspected).toBe(bigs[0]!.length);
    // a range past the end of the file yields what is there (the caller compares sizes)
    expect((await repo.blobs.putLocal({ path: join(tmp.dir, 'small'), offset: 6, length: 100 })).size).toBe(small.length - 6);
    expect(await readdir(await repo.blobs.scratchDir())).toEqual([]);
  });

  it('putLocal stores long zero runs as holes: the blob holds the data, the result maps it (in and beyond the read buffer)', async () => {
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    for (const size of [512 << 10, (3 << 20) + 100]) {
      const content = Buffer.alloc(size);
      content.fill(7, 0, 4096);
      content.fill(8, size - 100);
      const path = join(tmp.dir, `holes-${size}`);
      await writeFile(path, content);
      const fd = openSync(path, 'r');
      const r = await repo.blobs.putLocal({ fd, length: size }, { inspect: () => 'called' });
      closeSync(fd);
      const tailBlock = Math.floor((size - 100) / 4096) * 4096;
      expect(r.sparse).toEqual([[0, 4096], [tailBlock, size - tailBlock]]);
      expect(r.size).toBe(size);
      expect(r.inspected).toBeUndefined();
      const data = Buffer.concat([content.subarray(0, 4096), content.subarray(tailBlock)]);
      expect(r.hash).toBe(sha(data));
      expect((await readFile(repo.blobs.localPath!(r.hash))).equals(data)).toBe(true);
    }
  });

  it('keeps sparse maps in the catalog, and adds their column to a version 1 catalog', async () => {
    const file = join(tmp.dir, 'v1.db');
    const old = new SqliteCatalog(file);
    old.migrate();
    await old.close();
    const raw = new Database(file);
    raw.exec("ALTER TABLE entries DROP COLUMN sparse; UPDATE meta SET value = '1' WHERE key = 'schema_version'");
    raw.close();
    const catalog = new SqliteCatalog(file);
    catalog.migrate();
    expect(catalog.schemaVersion()).toBe(2);
    const entries: Entry[] = [
      { path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 },
      { path: '/lastlog', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 2 ** 40, blob: 'a'.repeat(64), sparse: [[4096, 4096]] },
    ];
    await catalog.addImage({ id: 'b'.repeat(64), createdAt: '', source: 't', sourceKind: 'tar', entryCount: 2, fileCount: 1, totalSize: 2 ** 40 }, entries, undefined, []);
    expect((await catalog.entries('b'.repeat(64)))[1]).toEqual(entries[1]);
    await catalog.close();
  });

  it('putLocal does not rewrite a blob that is already stored', async () => {
    const content = Buffer.alloc((2 << 20) + 1, 5);
    await writeFile(join(tmp.dir, 'a'), content);
    await writeFile(join(tmp.dir, 'b'), 'tiny');
    const first = await repo.blobs.putLocal({ path: join(tmp.dir, 'a') });
    const tiny = await repo.blobs.putLocal({ path: join(tmp.dir, 'b') });
    expect(repo.blobs.created).toEqual(new Set([first.hash, tiny.hash]));
    const before = await Promise.all([first, tiny].map((b) => stat(repo.blobs.localPath!(b.hash))));
    repo.blobs.created.clear();
    expect((await repo.blobs.putLocal({ path: join(tmp.dir, 'a') })).hash).toBe(first.hash);
    expect((await repo.blobs.putLocal({ path: join(tmp.dir, 'b') })).hash).toBe(tiny.hash);
    const after = await Promise.all([first, tiny].map((b) => stat(repo.blobs.localPath!(b.hash))));
    expect(after.map((s) => [s.ino, s.mtimeMs])).toEqual(before.map((s) => [s.ino, s.mtimeMs]));
    expect(repo.blobs.created.size).toBe(0);
    expect(await readdir(await repo.blobs.scratchDir())).toEqual([]);
  });

  it('commits an image to the catalog only after its blobs are durable (flush resolved)', async () => {
    const events: string[] = [];
    const flush = repo.blobs.flush.bind(repo.blobs);
    let failFlush = false;
    repo.blobs.flush = async () => {
      events.push('flush started');
      await new Promise((r) => setTimeout(r, 50));
      await flush();
      if (failFlush) throw new Error('disk gone');
      events.push('flushed');
    };
    const addImage = repo.catalog.addImage.bind(repo.catalog);
    repo.catalog.addImage = async (...args) => {
      events.push('catalog');
      return addImage(...args);
    };
    const meta = { mode: 0o644, uid: 0, gid: 0, mtime: 1 };
    const ingest = async (text: string) => {
      await writeFile(join(tmp.dir, 'f'), text);
      const entries: SourceEntry[] = [{ name: Buffer.from('etc/f'), type: 'file', ...meta, size: text.length, local: { path: join(tmp.dir, 'f') } }];
      return ingestSource((async function* () { yield* entries; })(), { blobs: repo.blobs, reporter: silentReporter, label: 't' });
    };
    const done = await commitImage(repo, await ingest('one'), { source: 't', sourceKind: 'test', tags: ['d/one:1'] }, silentReporter);
    expect(events).toEqual(['flush started', 'flushed', 'catalog']);
    expect(await repo.catalog.resolve('d/one:1')).toBe(done.id);

    events.length = 0;
    failFlush = true;
    await expect(commitImage(repo, await ingest('two'), { source: 't', sourceKind: 'test', tags: ['d/two:1'] }, silentReporter)).rejects.toThrow('disk gone');
    expect(events).toEqual(['flush started']);
    expect(await repo.catalog.resolve('d/two:1')).toBeUndefined();
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

  it('a rollback removes only blobs no committed image references, and only when no other writer is live', async () => {
    const lock = await repo.lockForWrite();
    const mine = await repo.blobs.putBuffer(Buffer.from('only mine'));
    const reused = await repo.blobs.putBuffer(Buffer.from('reused by another import'));
    // another process's import: sees the blob stored, commits an image using it
    const other = await openRepository(tmp.dir);
    const otherLock = await other.lockForWrite();
    const entries: Entry[] = [
      { path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 },
      { path: '/r', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: reused.size, blob: reused.hash },
    ];
    const bytes = serializeManifest({ schemaVersion: 1, entries });
    await other.blobs.putBuffer(bytes);
    await other.catalog.addImage(
      { id: manifestId(bytes), createdAt: new Date().toISOString(), source: 't', sourceKind: 't', entryCount: 2, fileCount: 1, totalSize: reused.size },
      entries,
      undefined,
      [],
    );
    expect(other.blobs.created.has(reused.hash)).toBe(false);
    // while the other writer still holds its lease, nothing is removed
    expect(await repo.rollbackBlobs(lock)).toBe(0);
    expect(await repo.blobs.has(mine.hash)).toBe(true);
    await otherLock.release();
    await other.close();

    repo.blobs.created.add(mine.hash).add(reused.hash);
    expect(await repo.rollbackBlobs(lock)).toBe(1);
    expect(await repo.blobs.has(mine.hash)).toBe(false);
    expect(await repo.blobs.has(reused.hash)).toBe(true);
    expect((await fsckRepository(repo, silentReporter)).ok).toBe(true);
    await lock.release();
  });

  it('an exclusive lease keeps new writers and gc out until released', async () => {
    const lock = await repo.lockForWrite();
    const alone = await lock.exclusive();
    expect(alone).toBeDefined();
    await expect(repo.lockForWrite(300)).rejects.toBeInstanceOf(BusyError);
    await expect(gcRepository(repo, silentReporter)).rejects.toBeInstanceOf(BusyError);
    await alone!.release();
    const second = await repo.lockForWrite(0);
    expect(await lock.exclusive()).toBeUndefined();
    await second.release();
    await lock.release();
  });

  it('repair refuses to run while an import is writing, and leaves the damage for a later run', async () => {
    const id = await addImage({ a: 'to be damaged' }, 'r:1');
    const blob = (await repo.catalog.entries(id)).find((e) => e.path === '/a')!.blob!;
    await chmod(repo.blobs.localPath!(blob), 0o644);
    await writeFile(repo.blobs.localPath!(blob), 'tampered!!!!!');
    const found = await fsckRepository(repo, silentReporter);
    expect(found.ok).toBe(false);
    const importing = await repo.lockForWrite();
    await expect(repairRepository(repo, found, silentReporter)).rejects.toBeInstanceOf(BusyError);
    expect(await repo.blobs.has(blob)).toBe(true);
    await importing.release();
    const repaired = await repairRepository(repo, found, silentReporter);
    expect(repaired).toMatchObject({ ok: false, removedCorrupt: [blob], unrepaired: [blob], affectedImages: [{ id, tags: ['r:1'], paths: ['/a'] }] });
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
