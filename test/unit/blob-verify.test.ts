import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Entry } from '../../src/core/model/entry.js';
import { manifestId, serializeManifest } from '../../src/core/model/manifest.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { CorruptBlobError, MissingBlobError } from '../../src/core/repository/verify.js';
import { projectRoot } from '../helpers/cli.js';
import { damageBlob, type BlobDamage } from '../helpers/bad-inputs-repo.js';
import { tempDir } from '../helpers/tmp.js';

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

/** Stores `content` as /data/file in a committed image; returns its blob and the image id. */
async function committed(content: Buffer): Promise<{ hash: string; id: string }> {
  const { hash, size } = await repo.blobs.putBuffer(content);
  const entries: Entry[] = [
    { path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 },
    { path: '/data', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 },
    { path: '/data/file', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size, blob: hash },
  ];
  const bytes = serializeManifest({ schemaVersion: 1, entries });
  const id = manifestId(bytes);
  await repo.blobs.putBuffer(bytes);
  await repo.catalog.addImage({ id, createdAt: '', source: 't', sourceKind: 't', entryCount: 3, fileCount: 1, totalSize: size }, entries, undefined, []);
  return { hash, id };
}

/** Reads a stream to its end or error; what arrived before either. */
async function drain(hash: string, expectedSize?: number): Promise<{ got: number; error?: unknown; bytes: Buffer }> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of repo.blobs.createReadStream(hash, expectedSize)) chunks.push(c as Buffer);
    return { got: chunks.reduce((n, c) => n + c.length, 0), bytes: Buffer.concat(chunks) };
  } catch (error) {
    return { got: chunks.reduce((n, c) => n + c.length, 0), error, bytes: Buffer.concat(chunks) };
  }
}

describe('blob reads are verified', () => {
  for (const size of [1, 5000, (1 << 20) + 1, (3 << 20) + 7]) {
    it(`streams an intact blob of ${size} bytes unchanged`, async () => {
      const content = randomBytes(size);
      const { hash } = await committed(content);
      const r = await drain(hash, size);
      expect(r.error).toBeUndefined();
      expect(r.bytes.equals(content)).toBe(true);
      expect((await repo.blobs.read(hash)).equals(content)).toBe(true);
    });
  }

  const damages: BlobDamage[] = ['flip-first', 'flip-middle', 'flip-last', 'truncate', 'extend', 'empty'];
  for (const how of damages) {
    for (const size of [3000, (2 << 20) + 100]) {
      it(`refuses a blob of ${size} bytes damaged by ${how}, before its consumer has all of it`, async () => {
        const content = randomBytes(size);
        const { hash, id } = await committed(content);
        await damageBlob(tmp.dir, content, how);
        for (const expected of [undefined, size]) {
          const r = await drain(hash, expected);
          expect(r.error).toBeInstanceOf(CorruptBlobError);
          const e = r.error as CorruptBlobError;
          expect(e.code).toBe('E_CORRUPT_BLOB');
          expect(e.exitCode).toBe(8);
          expect(e.message).toContain(hash);
          expect(e.message).toContain(`/data/file in image ${id.slice(0, 12)}`);
          expect(e.users).toEqual([{ imageId: id, path: '/data/file' }]);
          expect(r.got).toBeLessThan(size);
        }
        await expect(repo.blobs.read(hash)).rejects.toBeInstanceOf(CorruptBlobError);
      });
    }
  }

  it('names a missing blob and its users, for streams and whole reads', async () => {
    const content = randomBytes(100);
    const { hash, id } = await committed(content);
    await damageBlob(tmp.dir, content, 'remove');
    const r = await drain(hash);
    expect(r.error).toBeInstanceOf(MissingBlobError);
    expect((r.error as MissingBlobError).toJSON()).toMatchObject({ code: 'E_MISSING_BLOB', exitCode: 8, blob: hash, users: [{ imageId: id, path: '/data/file' }] });
    await expect(repo.blobs.read(hash)).rejects.toMatchObject({ code: 'E_MISSING_BLOB' });
  });

  it('opens nothing until the stream is read, so an unread stream of a missing blob never fails', async () => {
    const s = repo.blobs.createReadStream('0'.repeat(64));
    const errors: unknown[] = [];
    s.on('error', (e) => errors.push(e));
    await new Promise((r) => setTimeout(r, 50));
    expect(errors).toEqual([]);
    s.destroy();
  });
});

describe('the one verifying read path', () => {
  it('is the only way code outside the repository reaches stored blobs', async () => {
    // Readers must go through createReadStream/read; a direct path would bypass verification.
    const offenders: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const d of await readdir(dir, { withFileTypes: true })) {
        const p = join(dir, d.name);
        if (d.isDirectory()) {
          if (p !== join(projectRoot, 'src', 'core', 'repository')) await walk(p);
        } else if (p.endsWith('.ts') && /\blocalPath\b|objects\/sha256/.test(await readFile(p, 'utf8'))) offenders.push(p);
      }
    };
    await walk(join(projectRoot, 'src'));
    await walk(join(projectRoot, 'providers'));
    expect(offenders).toEqual([]);
  });
});
