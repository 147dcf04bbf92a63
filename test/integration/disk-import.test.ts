import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { chown, mkdir, open, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportImage } from '../../src/core/export/export-image.js';
import { openBlockDevice } from '../../src/core/import/disk/block-device.js';
import { importImage } from '../../src/core/import/import-image.js';
import { initRepository, openRepository } from '../../src/core/repository/repository.js';
import { describeDisk, diskSource, isDiskImage } from '../../src/core/import/disk/disk-reader.js';
import type { SourceEntry } from '../../src/core/import/source.js';
import { InputError } from '../../src/lib/errors.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { isHole, type ContentChunk } from '../../src/core/model/sparse.js';
import { tempDir } from '../helpers/tmp.js';
import { buildEveryTypeTree, compareSnapshots, snapshotTree, type NodeInfo } from '../helpers/tree.js';

/**
 * Real disks made with the real tools (mke2fs -d, sfdisk, dd, qemu-img, mkfs.vfat), read back
 * with the in-process reader and compared attribute by attribute and byte by byte with the tree
 * they were made from.
 */

let tmp: Awaited<ReturnType<typeof tempDir>>;
let src: string;
/** The source tree as mke2fs -d stores it: mtimes in whole seconds (it drops nanoseconds). */
let expected: Map<string, NodeInfo>;
/** The same after patchTimes() set nanoseconds and an epoch bit with debugfs. */
let expectedPatched: Map<string, NodeInfo>;
const img = (name: string) => join(tmp.dir, name);

const MiB = 1024 * 1024;

async function mkfs(out: string, size: string, args: string[]): Promise<void> {
  await execa('mke2fs', ['-q', '-F', ...args, '-d', src, '-E', 'root_owner=0:0', out, size]);
}

const debugfs = async (image: string, request: string, write = false) =>
  (await execa('debugfs', [...(write ? ['-w'] : []), '-R', request, image])).stdout;

async function blockSize(image: string): Promise<number> {
  const { stdout } = await execa('dumpe2fs', ['-h', image]);
  return Number(/^Block size:\s+(\d+)/m.exec(stdout)![1]);
}

/** Overwrites bytes of an image in place, as damage would. */
async function poke(image: string, offset: number, bytes: Buffer): Promise<void> {
  const fh = await open(image, 'r+');
  await fh.write(bytes, 0, bytes.length, offset);
  await fh.close();
}

const NS_FILE = 'etc/config';
const EPOCH_FILE = 'etc/empty-file';

/**
 * mke2fs -d keeps whole seconds only, so nanoseconds (and an epoch bit, for times after 2038)
 * are written into the inodes' extra fields with debugfs: (ns << 2) | epoch.
 */
async function patchTimes(image: string): Promise<void> {
  for (const [path, extra] of [[NS_FILE, 123456789 * 4], [EPOCH_FILE, 7 * 4 + 1]] as const) {
    const r = await execa('debugfs', ['-w', '-R', `set_inode_field /${path} mtime_extra ${extra}`, image]);
    expect(r.stderr).not.toMatch(/error|invalid/i);
  }
}

/** A disk of `diskMiB` with an sfdisk script; filesystem images dd'ed into partitions by start sector. */
async function makeDisk(out: string, diskMiB: number, script: string, fill: { start: number; image: string }[]): Promise<void> {
  await execa('truncate', ['-s', `${diskMiB}M`, out]);
  await execa('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', out], { input: script });
  for (const f of fill) await execa('dd', [`if=${f.image}`, `of=${out}`, 'bs=512', `seek=${f.start}`, 'conv=notrunc,sparse', 'status=none']);
}

const ROOT_GUID = '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709';
const ESP_GUID = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX_GUID = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

beforeAll(async () => {
  tmp = await tempDir('aim-disk-');
  src = join(tmp.dir, 'src');
  await buildEveryTypeTree(src);
  // What the brief of the disk reader asks for beyond the shared tree.
  await writeFile(join(src, 'bin', 'capped'), 'cap\n', { mode: 0o755 });
  await execa('setfattr', ['-n', 'security.capability', '-v', '0x0100000200200000000000000000000000000000', join(src, 'bin', 'capped')]);
  await execa('setfattr', ['-n', 'trusted.note', '-v', 'kept', join(src, 'etc', 'config')]);
  await writeFile(join(src, 'etc', 'acl'), 'acl\n');
  // user::rw- user:1000:r-- group::r-- mask::r-- other::r--
  await execa('setfattr', ['-n', 'system.posix_acl_access', '-v', '0x0200000001000600ffffffff02000400e803000004000400ffffffff10000400ffffffff20000400ffffffff', join(src, 'etc', 'acl')]);
  await symlink(`/usr/lib/${'very-long-directory-name/'.repeat(4)}target-file`, join(src, 'long-link'));
  const sparse = await open(join(src, 'sparse.bin'), 'w');
  await sparse.write(Buffer.from('start'), 0, 5, 0);
  await sparse.write(Buffer.from('middle'), 0, 6, 2 * MiB + 123);
  await sparse.close();
  await truncate(join(src, 'sparse.bin'), 5 * MiB + 7);
  const frag = await open(join(src, 'fragmented.bin'), 'w');
  for (let i = 0; i < 30; i++) await frag.write(Buffer.from(`island ${i}`), 0, undefined, i * 8192 + i);
  await frag.close();
  await mkdir(join(src, 'many'));
  for (let i = 0; i < 2000; i++) await writeFile(join(src, 'many', `entry-with-a-longer-name-${String(i).padStart(5, '0')}`), i % 100 === 0 ? `n${i}\n` : '');
  await execa('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(join(src, 'sock'))})`]);
  await chown(join(src, 'etc', 'config'), 100_000, 200_000);
  expected = await snapshot(src);
  for (const n of expected.values()) n.mtimeNs = ((BigInt(n.mtimeNs) / 1_000_000_000n) * 1_000_000_000n).toString();
  expectedPatched = new Map([...expected].map(([k, v]) => [k, { ...v }]));
  const ns = expectedPatched.get(NS_FILE)!;
  ns.mtimeNs = (BigInt(ns.mtimeNs) + 123456789n).toString();
  const epoch = expectedPatched.get(EPOCH_FILE)!;
  epoch.mtimeNs = (BigInt(epoch.mtimeNs) + 2n ** 32n * 1_000_000_000n + 7n).toString();

  await mkfs(img('ext4.img'), '24M', ['-t', 'ext4']);
  await mkfs(img('inline.img'), '24M', ['-t', 'ext4', '-O', 'inline_data']);
  await mkfs(img('ext2.img'), '24M', ['-t', 'ext2', '-b', '1024', '-I', '128']);
  await mkfs(img('ext3.img'), '24M', ['-t', 'ext3', '-b', '4096', '-I', '256']);
  for (const i of ['ext4.img', 'inline.img', 'ext3.img']) {
    // mke2fs -d links entries one by one; e2fsck -D rebuilds large directories as htrees.
    const fsck = await execa('e2fsck', ['-fyD', img(i)], { reject: false });
    expect(fsck.exitCode).toBeLessThanOrEqual(1);
    await patchTimes(img(i));
  }
  // Unwritten (uninitialized) extents read as zeros whatever their blocks hold: allocate some in
  // a hole of sparse.bin and fill their blocks with garbage.
  await debugfs(img('ext4.img'), 'fallocate /sparse.bin 100 199', true);
  const uninit = /(\d+) - +(\d+) +(\d+) Uninit/.exec(await debugfs(img('ext4.img'), 'ex /sparse.bin'));
  expect(uninit).not.toBeNull();
  const bs = await blockSize(img('ext4.img'));
  await poke(img('ext4.img'), Number(uninit![1]) * bs, Buffer.alloc(Number(uninit![3]) * bs, 0xab));
  // mke2fs 1.47.0 -O inline_data sets a file's size to its last data byte, losing a trailing hole.
  await execa('debugfs', ['-w', '-R', `set_inode_field /sparse.bin size ${5 * MiB + 7}`, img('inline.img')]);
  await execa('mkfs.vfat', ['-C', img('esp.img'), String(4 * 1024)]);

  // GPT: ESP (1 MiB at sector 2048... 4 MiB), root (typed x86-64 root) at 10240.
  await makeDisk(img('gpt.raw'), 34, `label: gpt\nstart=2048, size=8192, type=${ESP_GUID}\nstart=10240, size=49152, type=${ROOT_GUID}, name="root"\n`, [
    { start: 2048, image: img('esp.img') },
    { start: 10240, image: img('ext4.img') },
  ]);
  // MBR: ESP primary, extended with two logical ext partitions (both hold /etc: the first wins).
  const d = img('mbr.raw');
  await makeDisk(d, 64, `label: dos\n${d}1 : start=2048, size=8192, type=ef\n${d}2 : start=10240, size=110592, type=5\n${d}5 : start=12288, size=49152, type=83\n${d}6 : start=63488, size=49152, type=83\n`, [
    { start: 2048, image: img('esp.img') },
    { start: 12288, image: img('ext2.img') },
    { start: 63488, image: img('inline.img') },
  ]);
  await makeDisk(img('gpt-linux.raw'), 34, `label: gpt\nstart=2048, size=8192, type=${ESP_GUID}\nstart=10240, size=49152, type=${LINUX_GUID}\n`, [
    { start: 2048, image: img('esp.img') },
    { start: 10240, image: img('ext3.img') },
  ]);
  await makeDisk(img('esp-only.raw'), 8, `label: gpt\nstart=2048, size=8192, type=${ESP_GUID}\n`, [{ start: 2048, image: img('esp.img') }]);
  await execa('qemu-img', ['convert', '-O', 'qcow2', img('gpt.raw'), img('gpt.qcow2')]);
  await execa('qemu-img', ['convert', '-c', '-O', 'qcow2', img('gpt.raw'), img('gpt-compressed.qcow2')]);
  await execa('qemu-img', ['convert', '-O', 'qcow2', '-o', 'compat=0.10,cluster_size=4096', img('mbr.raw'), img('mbr-v2.qcow2')]);
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', img('gpt.qcow2'), img('overlay.qcow2')]);
}, 120_000);

afterAll(async () => tmp?.cleanup());

/** snapshotTree, with symlinks' own xattrs (its getfattr run follows symlinks; -h does not). */
async function snapshot(root: string): Promise<Map<string, NodeInfo>> {
  const snap = await snapshotTree(root);
  for (const [rel, n] of snap) {
    if (n.type !== 'symlink') continue;
    const { stdout } = await execa('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', join(root, rel)], { encoding: 'latin1' });
    n.xattrs = Object.fromEntries(stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  }
  return snap;
}

/** Reads an image with the disk source into the snapshot shape of test/helpers/tree.ts. */
async function readBack(path: string, partition?: number, reporter = new RecordingReporter()): Promise<{ snap: Map<string, NodeInfo>; types: Map<string, string> }> {
  const snap = new Map<string, NodeInfo>();
  const types = new Map<string, string>();
  const groups = new Map<string, string[]>();
  for await (const e of diskSource.read(path, { partition, reporter })) {
    const rel = e.name.toString('latin1');
    types.set(rel, e.type);
    if (rel === 'lost+found' || rel.startsWith('lost+found/')) {
      if (e.content) for await (const _ of e.content as AsyncIterable<Buffer>) void _;
      continue;
    }
    if (e.type === 'hardlink') {
      const first = e.linkName!.toString('latin1');
      const group = groups.get(first) ?? [first];
      group.push(rel);
      groups.set(first, group);
      snap.set(rel, { ...snap.get(first)! });
      continue;
    }
    snap.set(rel, await info(e));
  }
  for (const group of groups.values()) for (const p of group) snap.get(p)!.links = [...group].sort();
  return { snap, types };
}

async function info(e: SourceEntry): Promise<NodeInfo> {
  const type = e.type === 'socket' ? 'other' : e.type;
  const n: NodeInfo = {
    type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    mtimeNs: (BigInt(e.mtime) * 1_000_000_000n + BigInt(e.mtimeNsec ?? 0)).toString(),
    xattrs: Object.fromEntries(Object.entries(e.xattrs ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, `0x${v.toString('hex')}`])),
  };
  if (e.type === 'file') {
    const h = createHash('sha256');
    let size = 0;
    let biggest = 0;
    for await (const c of e.content as AsyncIterable<ContentChunk>) {
      // holes come as holes (never materialised by the reader); they hash as their zeros
      for (let left = isHole(c) ? c.hole : 0; left > 0; left -= Math.min(left, MiB)) h.update(Buffer.alloc(Math.min(left, MiB)));
      if (isHole(c)) {
        size += c.hole;
        continue;
      }
      h.update(c);
      size += c.length;
      biggest = Math.max(biggest, c.length);
    }
    expect(biggest).toBeLessThanOrEqual(MiB);
    expect(size).toBe(e.size);
    n.size = e.size;
    n.sha256 = h.digest('hex');
  }
  if (e.type === 'char' || e.type === 'block') {
    const ma = BigInt(e.devMajor!);
    const mi = BigInt(e.devMinor!);
    n.rdev = (((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn)).toString();
  }
  if (e.type === 'symlink') n.target = e.linkName!.toString('latin1');
  return n;
}

async function expectSameTree(path: string, partition?: number, want = expectedPatched): Promise<Map<string, string>> {
  const { snap, types } = await readBack(path, partition);
  expect(compareSnapshots(want, snap, { ignoreRootMtime: true }).slice(0, 10)).toEqual([]);
  return types;
}

describe('disk images read without mounting', () => {
  it('reads a whole-disk ext4 filesystem with every entry type, attribute and byte', async () => {
    const types = await expectSameTree(img('ext4.img'));
    expect(types.get('sock')).toBe('socket');
    expect(types.get('fifo')).toBe('fifo');
    expect([types.get('bin/tool'), types.get('bin/tool-alias'), types.get('hardlink-top')]).toEqual(['file', 'hardlink', 'hardlink']);
    expect(expectedPatched.get(NS_FILE)!.mtimeNs).toMatch(/123456789$/);
    expect(expected.get('etc/config')).toMatchObject({ uid: 100_000, gid: 200_000 });
    expect(types.get('many/entry-with-a-longer-name-01999')).toBe('file');
    // the structures this read went through: an htree directory, an extent tree with index nodes
    expect(Number(/Flags: (0x[0-9a-f]+)/.exec(await debugfs(img('ext4.img'), 'stat /many'))![1]) & 0x1000).toBe(0x1000);
    expect(await debugfs(img('ext4.img'), 'ex /fragmented.bin')).toMatch(/^ *1\/ *1 /m);
  });

  it('reads triple indirect blocks of ext2', async () => {
    const small = join(tmp.dir, 'far-src');
    await mkdir(small);
    const fh = await open(join(small, 'far.bin'), 'w');
    await fh.write(Buffer.from('beyond the double indirect blocks'), 0, 33, 67 * MiB);
    await fh.close();
    await execa('mke2fs', ['-q', '-F', '-t', 'ext2', '-b', '1024', '-d', small, img('far.img'), '4M']);
    expect(await debugfs(img('far.img'), 'stat /far.bin')).toMatch(/\(TIND\)/);
    const { snap } = await readBack(img('far.img'));
    const want = await snapshotTree(small);
    expect(snap.get('far.bin')).toMatchObject({ size: want.get('far.bin')!.size, sha256: want.get('far.bin')!.sha256 });
  });

  it('reads other layouts: meta_bg, bigalloc, 64 KiB blocks, xattr values in their own inodes', async () => {
    const small = join(tmp.dir, 'layout-src');
    await mkdir(join(small, 'dir'), { recursive: true });
    await writeFile(join(small, 'dir', 'file'), Buffer.alloc(300_000, 0x31));
    await execa('setfattr', ['-n', 'user.block', '-v', `0x${'cd'.repeat(600)}`, join(small, 'dir', 'file')]);
    for (let i = 0; i < 400; i++) await writeFile(join(small, 'dir', `f${i}`), `${i}`);
    // a value too big for a 1 KiB xattr block: only ea_inode can hold it
    const withEa = join(tmp.dir, 'layout-ea-src');
    await execa('cp', ['-a', small, withEa]);
    await writeFile(join(withEa, 'big-xattr'), 'x');
    await execa('setfattr', ['-n', 'user.big', '-v', `0x${'ab'.repeat(3000)}`, join(withEa, 'big-xattr')]);
    const layouts: [string, string[]][] = [
      // small groups with few inodes: most files' inodes are in groups whose descriptors meta_bg moves
      [small, ['-b', '1024', '-g', '512', '-N', '512', '-O', 'meta_bg,^resize_inode']],
      [small, ['-b', '4096', '-O', 'bigalloc', '-C', '16384']],
      [small, ['-b', '65536', '-N', '1024', '-O', '^has_journal']],
      [withEa, ['-b', '1024', '-O', 'ea_inode']],
    ];
    for (const [i, [tree, args]] of layouts.entries()) {
      const want = await snapshot(tree);
      for (const n of want.values()) n.mtimeNs = ((BigInt(n.mtimeNs) / 1_000_000_000n) * 1_000_000_000n).toString();
      const image = img(`layout-${i}.img`);
      await execa('mke2fs', ['-q', '-F', '-t', 'ext4', ...args, '-d', tree, '-E', 'root_owner=0:0', image, '48M']);
      const { snap } = await readBack(image);
      expect(compareSnapshots(want, snap, { ignoreRootMtime: true }), args.join(' ')).toEqual([]);
    }
    const metaBg = (await execa('dumpe2fs', [img('layout-0.img')])).stdout;
    expect(metaBg).toMatch(/Group 16: .*\n.*Group descriptor at 8193/);
    const perGroup = Number(/Inodes per group:\s+(\d+)/.exec(metaBg)![1]);
    const inodes = [...(await debugfs(img('layout-0.img'), 'ls /dir')).matchAll(/(\d+) +\(\d+\)/g)].map((m) => Number(m[1]));
    expect(Math.max(...inodes)).toBeGreaterThan(16 * perGroup);
    // the value of user.big lives in its own inode (EA_INODE_FL)
    const eaInode = /user\.big/.test(await debugfs(img('layout-3.img'), 'stat /big-xattr')) ? await debugfs(img('layout-3.img'), 'stat <13>') : '';
    expect(Number(/Flags: (0x[0-9a-f]+)/.exec(eaInode)?.[1]) & 0x200000).toBe(0x200000);
  });

  it('reads inline_data, ext2 with 1 KiB blocks (indirect blocks) and ext3', async () => {
    await expectSameTree(img('inline.img'));
    await expectSameTree(img('ext2.img'), undefined, expected);
    await expectSameTree(img('ext3.img'));
  });

  it('finds the x86-64 root partition on a GPT disk, raw and qcow2 (plain and compressed)', async () => {
    await expectSameTree(img('gpt.raw'));
    await expectSameTree(img('gpt.qcow2'));
    await expectSameTree(img('gpt-compressed.qcow2'));
    const dev = await openBlockDevice(img('gpt-compressed.qcow2'));
    try {
      const layout = await describeDisk(dev);
      expect(dev.format).toBe('qcow2');
      expect(layout.volumes.map((v) => [v.index, v.description, v.filesystem, v.name ?? ''])).toEqual([
        [1, 'EFI system', 'vfat', ''],
        [2, 'Linux root (x86-64)', 'ext4', 'root'],
      ]);
      // the qcow2 device returns the same bytes as the raw disk
      const raw = await openBlockDevice(img('gpt.raw'));
      try {
        for (const [off, len] of [[0, 4096], [10240 * 512 + 1000, 300_000], [33 * MiB, MiB]] as const) {
          expect((await dev.read(off, len)).equals(await raw.read(off, len))).toBe(true);
        }
      } finally {
        await raw.close();
      }
    } finally {
      await dev.close();
    }
  });

  it('reads logical partitions of an MBR disk, picks the one with /etc, honours --partition (also from qcow2 v2)', async () => {
    const dev = await openBlockDevice(img('mbr.raw'));
    const layout = await describeDisk(dev).finally(() => dev.close());
    expect(layout.table).toBe('mbr');
    expect(layout.volumes.map((v) => [v.index, v.mbrType, v.filesystem, v.start])).toEqual([
      [1, 0xef, 'vfat', 2048 * 512],
      [2, 0x05, 'logical partitions', 10240 * 512],
      [5, 0x83, 'ext2', 12288 * 512],
      [6, 0x83, 'ext4', 63488 * 512],
    ]);
    await expectSameTree(img('mbr.raw'), undefined, expected);
    await expectSameTree(img('mbr.raw'), 6);
    await expectSameTree(img('mbr-v2.qcow2'), 6);
  });

  it('reads a GPT root typed "Linux filesystem" (found by /etc)', async () => {
    await expectSameTree(img('gpt-linux.raw'));
  });

  it('imports a compressed qcow2 into a repository and exports the same tree', async () => {
    const repoDir = join(tmp.dir, 'repo');
    await initRepository(repoDir);
    const repo = await openRepository(repoDir);
    const reporter = new RecordingReporter();
    try {
      const r = await importImage(repo, { source: img('gpt-compressed.qcow2') }, reporter);
      expect(r.sourceKind).toBe('disk');
      expect(r.skipped).toEqual([{ path: '/sock', reason: 'socket' }]);
      const out = join(tmp.dir, 'exported');
      await exportImage(repo, r.id, { format: 'dir', out }, reporter);
      const back = await snapshot(out);
      expect(back.get('lost+found')?.type).toBe('dir');
      for (const k of [...back.keys()]) if (k.startsWith('lost+found')) back.delete(k);
      const want = new Map(expectedPatched);
      want.delete('sock');
      expect(compareSnapshots(want, back, { ignoreRootMtime: true }).slice(0, 10)).toEqual([]);
    } finally {
      await repo.close();
    }
  });

  it('detects disk images by content', async () => {
    for (const f of ['ext4.img', 'gpt.raw', 'mbr.raw', 'gpt.qcow2', 'esp-only.raw']) expect(await isDiskImage(img(f))).toBe(true);
    await writeFile(img('garbage'), Buffer.alloc(64 * 1024, 0x41));
    expect(await isDiskImage(img('garbage'))).toBe(false);
    expect(await isDiskImage(img('esp.img'))).toBe(false);
    expect(await isDiskImage(join(src, 'etc', 'config'))).toBe(false);
  });
});

async function failure(path: string, partition?: number): Promise<InputError> {
  try {
    for await (const e of diskSource.read(path, { partition })) if (e.content) for await (const _ of e.content as AsyncIterable<Buffer>) void _;
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error(`${path} was read without error`);
}

describe('disk images aim cannot import', () => {
  it('says what it found on a disk with only an EFI system partition', async () => {
    const e = await failure(img('esp-only.raw'));
    expect(e.code).toBe('E_UNSUPPORTED_DISK');
    expect(e.message).toContain('partition 1: EFI system (vfat); no ext4 root filesystem found');
  });

  it('rejects garbage, a truncated disk and a qcow2 overlay', async () => {
    await writeFile(img('garbage2'), Buffer.alloc(MiB, 0x41));
    expect((await failure(img('garbage2'))).code).toBe('E_UNSUPPORTED_DISK');
    await execa('cp', ['--sparse=always', img('gpt.raw'), img('truncated.raw')]);
    await truncate(img('truncated.raw'), 12 * MiB);
    const t = await failure(img('truncated.raw'));
    expect(t.code).toBe('E_CORRUPT_DISK');
    expect(t.message).toMatch(/beyond the end/);
    await execa('cp', [img('gpt.qcow2'), img('truncated.qcow2')]);
    await truncate(img('truncated.qcow2'), 200 * 1024);
    expect((await failure(img('truncated.qcow2'))).code).toBe('E_CORRUPT_DISK');
    const o = await failure(img('overlay.qcow2'));
    expect(o.code).toBe('E_UNSUPPORTED_DISK');
    expect(o.message).toContain('backing file');
    expect(o.hint).toContain('qemu-img convert');
  });

  it('rejects a partition that does not exist or holds no ext filesystem', async () => {
    expect((await failure(img('gpt.raw'), 3)).code).toBe('E_PARTITION_NOT_FOUND');
    const e = await failure(img('gpt.raw'), 1);
    expect(e.code).toBe('E_UNSUPPORTED_DISK');
    expect(e.message).toContain('partition 1 is EFI system (vfat)');
  });

  it('reports damaged filesystems as E_CORRUPT_FILESYSTEM, never hanging', async () => {
    const bs = await blockSize(img('ext4.img'));
    const damaged = async (name: string, damage: (image: string) => Promise<unknown>) => {
      const image = img(name);
      await execa('cp', ['--sparse=always', img('ext4.img'), image]);
      await damage(image);
      const e = await failure(image);
      expect(e.code).toBe('E_CORRUPT_FILESYSTEM');
      return e.message;
    };
    const etcBlock = Number((await debugfs(img('ext4.img'), 'blocks /etc')).trim().split(/\s+/)[0]);
    expect(await damaged('reclen.img', (i) => poke(i, etcBlock * bs + 4, Buffer.alloc(2)))).toMatch(/record length 0/);
    const where = /located at block (\d+), offset (0x[0-9a-f]+)/.exec(await debugfs(img('ext4.img'), 'imap /big.bin'))!;
    const inodeAt = Number(where[1]) * bs + Number(where[2]);
    expect(await damaged('magic.img', (i) => poke(i, inodeAt + 0x28, Buffer.from([0x0a, 0x0b])))).toMatch(/extent header magic/);
    expect(await damaged('beyond.img', (i) => debugfs(i, 'set_inode_field /big.bin block[5] 0x7fffffff', true))).toMatch(/beyond/);
    expect(await damaged('loop.img', (i) => debugfs(i, 'link /etc /etc/loop', true))).toMatch(/loop/);
    expect(await damaged('short.img', (i) => truncate(i, 10 * MiB))).toMatch(/truncated/);
  });

  it('rejects encrypted ext4 clearly', async () => {
    await execa('mke2fs', ['-q', '-F', '-t', 'ext4', '-O', 'encrypt', img('enc.img'), '8M']);
    const e = await failure(img('enc.img'));
    expect(e.code).toBe('E_UNSUPPORTED_FILESYSTEM');
    expect(e.message).toContain('encrypt');
  });
});
