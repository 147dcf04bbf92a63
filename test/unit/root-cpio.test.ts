import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferContent } from '../../src/core/bootable/content.js';
import { layOutRootCpio, type RootCpio } from '../../src/core/bootable/root-cpio.js';
import { zstdFrame } from '../../src/core/bootable/zstd.js';
import type { RootAddition } from '../../src/core/bootable/root-tree.js';
import type { Entry } from '../../src/core/model/entry.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { encodePath } from '../../src/lib/path-codec.js';
import { readNewcArchives, type NewcEntry } from '../helpers/newc.js';
import { alive, childProcesses } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: Repository;
beforeAll(async () => {
  tmp = await tempDir('aim-root-cpio-');
  await initRepository(join(tmp.dir, 'repo'));
  repo = await openRepository(join(tmp.dir, 'repo'));
});
afterAll(async () => {
  await repo.close();
  await tmp.cleanup();
});

const T = 1_600_000_000;
const dir = (path: string, extra: Partial<Entry> = {}): Entry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: T, ...extra });
async function file(path: string, content: string | Buffer, extra: Partial<Entry> = {}): Promise<Entry> {
  const { hash, size } = await repo.blobs.putBuffer(Buffer.from(content));
  return { path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: T, size, blob: hash, ...extra };
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

const layOut = (entries: Entry[], additions: RootAddition[] = []) => layOutRootCpio({ entries, additions, blobs: repo.blobs, prefix: 'newroot', mtime: 1_700_000_000 });
const byName = (archive: NewcEntry[]) => new Map(archive.map((m) => [m.name, m]));

describe('the PXE root cpio, straight from the manifest', () => {
  let entries: Entry[];
  const odd = encodePath(Buffer.from([0x6f, 0x64, 0x64, 0xff, 0x2e, 0x74, 0x78, 0x74])); // "odd\xff.txt": not UTF-8
  beforeAll(async () => {
    entries = [
      dir('/', { mtime: T + 1 }),
      { path: '/bin', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: T, target: 'usr/bin' },
      dir('/dev'),
      { path: '/dev/console', type: 'char', mode: 0o600, uid: 0, gid: 5, mtime: T, devMajor: 5, devMinor: 1 },
      { path: '/dev/sda1', type: 'block', mode: 0o660, uid: 0, gid: 6, mtime: T, devMajor: 8, devMinor: 1 },
      { path: '/dev/big', type: 'char', mode: 0o600, uid: 0, gid: 0, mtime: T, devMajor: 4095, devMinor: 1_048_575 },
      { path: '/pipe', type: 'fifo', mode: 0o644, uid: 0, gid: 0, mtime: -5 },
      dir('/usr'),
      dir('/usr/bin'),
      await file('/usr/bin/app', 'binary', { mode: 0o4755, uid: 1000, gid: 1001, mtime: T + 2 }),
      await file(`/${odd}`, 'name bytes kept', { xattrs: { 'user.k': 'dg==' } }),
      await file('/empty', ''),
      dir('/tmp', { mode: 0o1777 }),
    ];
  });

  it('carries owners, modes, devices, fifos, symlinks and times as the manifest says, with no tree and no privileges', async () => {
    const additions: RootAddition[] = [
      { path: '/proc', type: 'dir', mode: 0o555 },
      { path: '/.aim', type: 'dir', mode: 0o755 },
      { path: '/.aim/init', type: 'file', mode: 0o755, content: bufferContent(Buffer.from('#!/init\n')) },
    ];
    const root = layOut(entries, additions);
    const bytes = await collect(root.chunks());
    expect(bytes.length).toBe(root.length);
    const [archive, ...rest] = readNewcArchives(bytes);
    expect(rest).toEqual([]);
    // names sorted as bytes (each directory before what it holds), the completeness marker last
    expect(archive!.map((m) => m.name)).toEqual([
      'newroot', 'newroot/.aim', 'newroot/.aim/init', 'newroot/bin', 'newroot/dev', 'newroot/dev/big', 'newroot/dev/console', 'newroot/dev/sda1',
      'newroot/empty', expect.stringMatching(/^newroot\/odd/) as unknown as string, 'newroot/pipe', 'newroot/proc', 'newroot/tmp', 'newroot/usr', 'newroot/usr/bin', 'newroot/usr/bin/app',
      'etc/aim/root-complete',
    ]);
    expect(root.records).toBe(archive!.length);
    const m = byName(archive!);
    expect(m.get('newroot')).toMatchObject({ mode: 0o040755, mtime: T + 1, nlink: 2 });
    expect(m.get('newroot/usr/bin/app')).toMatchObject({ mode: 0o104755, uid: 1000, gid: 1001, mtime: T + 2 });
    expect(m.get('newroot/usr/bin/app')!.data.toString()).toBe('binary');
    expect(m.get('newroot/bin')).toMatchObject({ mode: 0o120777 });
    expect(m.get('newroot/bin')!.data.toString()).toBe('usr/bin');
    expect(m.get('newroot/dev/console')).toMatchObject({ mode: 0o020600, gid: 5, rdevMajor: 5, rdevMinor: 1 });
    expect(m.get('newroot/dev/sda1')).toMatchObject({ mode: 0o060660, gid: 6, rdevMajor: 8, rdevMinor: 1 });
    expect(m.get('newroot/dev/big')).toMatchObject({ rdevMajor: 4095, rdevMinor: 1_048_575 });
    // a time before 1970 cannot be written: it becomes 0
    expect(m.get('newroot/pipe')).toMatchObject({ mode: 0o010644, mtime: 0 });
    expect(m.get('newroot/tmp')).toMatchObject({ mode: 0o041777 });
    expect(m.get('newroot/empty')!.data.length).toBe(0);
    // aim's additions: root's, with the archive's time
    expect(m.get('newroot/proc')).toMatchObject({ mode: 0o040555, uid: 0, gid: 0, mtime: 1_700_000_000 });
    expect(m.get('newroot/.aim/init')).toMatchObject({ mode: 0o100755, mtime: 1_700_000_000 });
    expect(m.get('newroot/.aim/init')!.data.toString()).toBe('#!/init\n');
    expect(m.get('etc/aim/root-complete')!.data.toString()).toBe('newroot\n');
    // a name that is not UTF-8 keeps its bytes
    const oddMember = archive!.find((x) => x.name.startsWith('newroot/odd'))!;
    expect(oddMember.nameBytes).toEqual(Buffer.from('newroot/odd\xff.txt', 'latin1'));
    expect(oddMember.data.toString()).toBe('name bytes kept');
    // every member has its own inode number
    expect(new Set(archive!.map((x) => x.ino)).size).toBe(archive!.length);

    // GNU cpio reads it: device numbers and owners as written
    const path = join(tmp.dir, 'root.cpio');
    await writeFile(path, bytes);
    const listing = (await execa('cpio', ['-i', '-t', '-v', '--numeric-uid-gid', '--quiet', '-F', path])).stdout;
    expect(listing).toMatch(/^crw------- +1 0 +5 +5, +1 .* newroot\/dev\/console$/m);
    expect(listing).toMatch(/^brw-rw---- +1 0 +6 +8, +1 .* newroot\/dev\/sda1$/m);
    expect(listing).toMatch(/^-rwsr-xr-x +1 1000 +1001 +6 .* newroot\/usr\/bin\/app$/m);
  });

  it('is deterministic: the same manifest in any order gives the same bytes and key; any change gives others', async () => {
    const a = layOut(entries);
    const b = layOut([...entries].reverse());
    const bytesA = await collect(a.chunks());
    expect((await collect(b.chunks())).equals(bytesA)).toBe(true);
    expect(b.key).toBe(a.key);
    expect(b.length).toBe(a.length);
    const changes: Entry[][] = [
      entries.map((e) => (e.path === '/usr/bin/app' ? { ...e, mode: 0o755 } : e)),
      entries.map((e) => (e.path === '/dev/console' ? { ...e, devMinor: 2 } : e)),
      entries.map((e) => (e.path === '/usr' ? { ...e, mtime: T + 9 } : e)),
      await Promise.all(entries.map(async (e) => (e.path === '/usr/bin/app' ? file(e.path, 'binarz', { mode: e.mode, uid: 1000, gid: 1001, mtime: T + 2 }) : e))),
    ];
    for (const changed of changes) {
      const c = layOut(changed);
      expect(c.key).not.toBe(a.key);
      expect((await collect(c.chunks())).equals(bytesA)).toBe(false);
    }
  });

  it('keeps hard links as links: one inode number, the file\'s metadata, the content once on the last name', async () => {
    const perl = await file('/usr/bin/perl', 'interpreter', { mode: 0o755, uid: 2, gid: 3 });
    const link = (path: string): Entry => ({ path, type: 'hardlink', mode: 0o600, uid: 9, gid: 9, mtime: 0, target: '/usr/bin/perl' });
    // (a manifest links every name to the group's first, which is the file entry)
    const root = layOut([dir('/'), dir('/usr'), dir('/usr/bin'), perl, link('/usr/bin/perl5.36.0'), link('/usr/bin/perl5'), await file('/usr/bin/other', 'single')]);
    const bytes = await collect(root.chunks());
    expect(bytes.length).toBe(root.length);
    const [archive] = readNewcArchives(bytes);
    const m = byName(archive!);
    const names = ['newroot/usr/bin/perl', 'newroot/usr/bin/perl5', 'newroot/usr/bin/perl5.36.0'].map((n) => m.get(n)!);
    expect(names.map((x) => x.nlink)).toEqual([3, 3, 3]);
    expect(new Set(names.map((x) => x.ino)).size).toBe(1);
    expect(names.map((x) => x.data.toString())).toEqual(['', '', 'interpreter']);
    expect(names.map((x) => [x.mode, x.uid, x.gid])).toEqual(Array(3).fill([0o100755, 2, 3]));
    expect(m.get('newroot/usr/bin/other')).toMatchObject({ nlink: 1 });
    // GNU cpio unpacks them as one file with three names
    const path = join(tmp.dir, 'linked.cpio');
    await writeFile(path, bytes);
    const back = join(tmp.dir, 'linked-back');
    await mkdir(back);
    await execa('cpio', ['-i', '-d', '--quiet', '-F', path], { cwd: back });
    const inodes = await Promise.all(['newroot/usr/bin/perl', 'newroot/usr/bin/perl5', 'newroot/usr/bin/perl5.36.0'].map(async (n) => (await stat(join(back, n))).ino));
    expect(new Set(inodes).size).toBe(1);
    expect(await readFile(join(back, 'newroot/usr/bin/perl'), 'utf8')).toBe('interpreter');
    expect((await stat(join(back, 'newroot/usr/bin/perl'))).nlink).toBe(3);
  });

  it('writes a sparse file whole: its data where the map says, zeros in the holes', async () => {
    const data = Buffer.concat([Buffer.alloc(4096, 'a'), Buffer.alloc(8192, 'b')]);
    const size = 3 * 1024 * 1024 + 5;
    const sparse = await file('/var.img', data, { size, sparse: [[0, 4096], [2 * 1024 * 1024, 8192]] });
    const root = layOut([dir('/'), sparse]);
    const bytes = await collect(root.chunks());
    expect(bytes.length).toBe(root.length);
    const content = byName(readNewcArchives(bytes)[0]!).get('newroot/var.img')!.data;
    const expected = Buffer.alloc(size);
    data.copy(expected, 0, 0, 4096);
    data.copy(expected, 2 * 1024 * 1024, 4096);
    expect(content.length).toBe(size);
    expect(content.equals(expected)).toBe(true);
  });

  it('refuses what newc cannot hold before writing anything, and a manifest no extractor could follow', async () => {
    const huge: Entry = { path: '/huge', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: T, size: 2 ** 32, blob: 'f'.repeat(64), sparse: [[2 ** 32 - 1, 1]] };
    expect(() => layOut([dir('/'), huge])).toThrow(expect.objectContaining({ code: 'E_CPIO_LIMIT', message: expect.stringMatching(/newroot\/huge: its size \(4294967296\)/) as unknown }));
    expect(() => layOut([dir('/'), { ...dir('/x'), uid: 2 ** 32 }])).toThrow(expect.objectContaining({ code: 'E_CPIO_LIMIT' }));
    const orphan = await file('/a/b', 'orphan');
    expect(() => layOut([dir('/'), orphan])).toThrow(expect.objectContaining({ code: 'E_UNSAFE_MANIFEST' }));
  });

  it('fails, not truncates, when a blob does not hold what the manifest says', async () => {
    const entry = await file('/f', 'short');
    const root: RootCpio = layOut([dir('/'), { ...entry, size: 50 }]);
    await expect(collect(root.chunks())).rejects.toMatchObject({ code: 'E_CORRUPT_BLOB' });
  });

  it('streams a 512 MiB file of zeros through zstd in flat memory (8x the bound), and the frame unpacks to exactly the announced length', async () => {
    const size = 512 * 2 ** 20;
    const big = await file('/big.img', Buffer.alloc(4096, 'z'), { size, sparse: [[size - 4096, 4096]] });
    const root = layOut([dir('/'), big]);
    expect(root.length).toBeGreaterThan(size);
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
    // zeros compress to almost nothing: the frame is kept, the archive never is
    const frame: Buffer[] = [];
    for await (const chunk of zstdFrame(root.chunks(), root.length, 10)) frame.push(chunk);
    clearInterval(sample);
    peak = Math.max(peak, process.memoryUsage().rss);
    console.log(`512 MiB sparse file through the root cpio and zstd: RSS ${(before / 2 ** 20).toFixed(0)} → peak ${(peak / 2 ** 20).toFixed(0)} MiB, frame ${Buffer.concat(frame).length} bytes`);
    // loose: a slurp of the file (or of the archive) would be 8 times the bound
    expect(peak - before).toBeLessThan(64 * 2 ** 20);
    const unpacked = await execa('zstd', ['-dc'], { input: Buffer.concat(frame), buffer: false }).pipe('wc', ['-c']);
    expect(Number(unpacked.stdout.trim())).toBe(root.length);
  }, 300_000);

  it('a reader that stops early stops the zstd behind it, and an abort stops it with E_CANCELLED', async () => {
    // random bytes do not compress: zstd blocks on its full pipe until it is read, so it surely still runs
    const root = layOut([dir('/'), await file('/random', randomBytes(16 * 2 ** 20))]);
    const early = zstdFrame(root.chunks(), root.length, 10);
    expect((await early.next()).done).toBe(false);
    const zstd = childProcesses(process.pid).filter((p) => p.comm === 'zstd');
    expect(zstd.length).toBe(1);
    await early.return(undefined);
    expect(alive(zstd[0]!.pid)).toBe(false);

    const stop = new AbortController();
    const aborted = zstdFrame(root.chunks(stop.signal), root.length, 10, stop.signal);
    expect((await aborted.next()).done).toBe(false);
    const running = childProcesses(process.pid).filter((p) => p.comm === 'zstd');
    expect(running.length).toBe(1);
    stop.abort();
    await expect((async () => { for await (const _ of aborted); })()).rejects.toMatchObject({ code: 'E_CANCELLED' });
    expect(alive(running[0]!.pid)).toBe(false);
  });
});
