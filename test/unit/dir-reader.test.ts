import { readdirSync, readSync, statSync } from 'node:fs';
import { link, mkdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dirSource } from '../../src/core/import/dir-reader.js';
import { INSPECT_ELF, ingestSource } from '../../src/core/import/ingest.js';
import type { ListedFileStore, Source, SourceEntry } from '../../src/core/import/source.js';
import { FsBlobStore } from '../../src/core/repository/fs-blob-store.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let root: string;
let blobs: FsBlobStore;

/** Levels of the deep chain: more than the reader's look-ahead may hold open (256). */
const DEPTH = 300;
const FILES = 600;

beforeEach(async () => {
  tmp = await tempDir('aim-dir-reader-');
  root = join(tmp.dir, 'tree');
  await mkdir(join(root, 'many'), { recursive: true });
  for (let i = 0; i < FILES; i++) await writeFile(join(root, 'many', `f${i}`), `file ${i % 100}\n`);
  await link(join(root, 'many', 'f1'), join(root, 'many', 'zz-link'));
  await symlink('many/f1', join(root, 'sym'));
  await writeFile(join(root, 'holes'), 'start');
  await truncate(join(root, 'holes'), 8 << 20);
  let deep = root;
  for (let i = 0; i < DEPTH; i++) deep = join(deep, 'd');
  await mkdir(deep, { recursive: true });
  await writeFile(join(deep, 'bottom'), 'deep\n');
  await FsBlobStore.create(join(tmp.dir, 'objects'), join(tmp.dir, 'scratch'));
  blobs = new FsBlobStore(join(tmp.dir, 'objects'), join(tmp.dir, 'scratch'));
});
afterEach(async () => {
  await blobs.disposeScratch();
  await tmp.cleanup();
});

const openDescriptors = () => readdirSync('/proc/self/fd').length;
/** The count of open descriptors once it has not changed for 100 ms (at most 3 s). */
async function steadyDescriptors(): Promise<number> {
  let last = openDescriptors();
  let same = 0;
  for (let i = 0; i < 150 && same < 5; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const now = openDescriptors();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}
const names = (entries: SourceEntry[]) => entries.map((e) => e.name.toString());
const deepBottom = Array.from({ length: DEPTH }, () => 'd').join('/') + '/bottom';

async function drainHoles(e: SourceEntry): Promise<number> {
  let n = 0;
  for await (const c of e.content as AsyncIterable<Buffer | { hole: number }>) n += Buffer.isBuffer(c) ? c.length : c.hole;
  return n;
}

describe('the directory reader', () => {
  it('without a blob store hands files over as open descriptors, walks a path deeper than its look-ahead, and releases everything', async () => {
    const walk = async () => {
      const seen: SourceEntry[] = [];
      const source: Source = dirSource.read(root, {});
      for await (const e of source) {
        seen.push(e);
        if (e.local) {
          const buf = Buffer.alloc(64);
          const n = readSync(e.local.fd!, buf, 0, buf.length, 0);
          expect(n).toBe(e.size);
          e.local.release!();
        }
        if (e.name.toString() === 'holes') expect(await drainHoles(e)).toBe(8 << 20);
      }
      return seen;
    };
    // The first walk starts the process's first tool (getfattr): Node then opens what it keeps for
    // good (its event loop's signal pipe). A tool's stdio sockets close a moment after it exits, so
    // the count is read once it is steady. What a walk leaves open shows after the second walk.
    await walk();
    const baseline = await steadyDescriptors();
    const seen = await walk();
    const list = names(seen);
    expect(list).toContain(deepBottom);
    expect(list.filter((n) => n.startsWith('many/f'))).toHaveLength(FILES);
    expect(seen.find((e) => e.name.toString() === 'many/zz-link')).toMatchObject({ type: 'hardlink', linkName: Buffer.from('many/f1') });
    expect(seen.find((e) => e.name.toString() === 'sym')).toMatchObject({ type: 'symlink', linkName: Buffer.from('many/f1') });
    // Nothing of the walk is left open.
    expect(await steadyDescriptors()).toBe(baseline);
  });

  it('with storeListed gives stored files in walk order, hardlinks decided by that order, holes read around', async () => {
    const storeListed: ListedFileStore = (dirFd, name, label) => blobs.putListed(dirFd, name, label, INSPECT_ELF);
    const r = await ingestSource(dirSource.read(root, { storeListed }), { blobs, reporter: new RecordingReporter(), label: root });
    const by = new Map(r.entries.map((e) => [e.path, e]));
    expect(by.get('/' + deepBottom)?.size).toBe(5);
    expect(r.entries.filter((e) => e.path.startsWith('/many/f'))).toHaveLength(FILES);
    expect(by.get('/many/zz-link')).toMatchObject({ type: 'hardlink', target: '/many/f1' });
    expect(by.get('/many/f1')?.blob).toBe(by.get('/many/f101')?.blob);
    expect(by.get('/holes')?.sparse).toBeDefined();
    expect(by.get('/holes')?.size).toBe(8 << 20);
    expect((await blobs.read(by.get('/many/f7')!.blob!)).toString()).toBe('file 7\n');
  });

  it('a file that changed between listing and storing is E_SOURCE_CHANGED', async () => {
    const storeListed: ListedFileStore = async (dirFd, name, label) => {
      // Between the reader's listing (readdir) and the store's: the file is replaced by a directory.
      if (name.toString() === 'f5') {
        await rm(join(root, 'many', 'f5'));
        await mkdir(join(root, 'many', 'f5'));
      }
      return blobs.putListed(dirFd, name, label);
    };
    await expect(ingestSource(dirSource.read(root, { storeListed }), { blobs, reporter: new RecordingReporter(), label: root })).rejects.toMatchObject({
      code: 'E_SOURCE_CHANGED',
    });
    expect(statSync(join(root, 'many', 'f5')).isDirectory()).toBe(true);
  });
});
