import { execa } from 'execa';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { mkdir, open, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { inClass, type HostileCase } from './harness.js';

/** An ext2/ext4 image made by mke2fs -d from files (name → content, or a sparse size). */
async function extImage(d: string, type: 'ext2' | 'ext4', files: Record<string, string | { sparse: number; at?: number }>, blockSize = 1024, size = '8M'): Promise<string> {
  const src = join(d, 'src');
  await mkdir(src, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const p = join(src, name);
    await mkdir(join(p, '..'), { recursive: true });
    if (typeof content === 'string') await writeFile(p, content);
    else {
      await writeFile(p, '');
      await truncate(p, content.sparse);
      const fh = await open(p, 'r+');
      await fh.write(Buffer.from('data'), 0, 4, content.at ?? 0);
      await fh.close();
    }
  }
  const img = join(d, `${type}.img`);
  await execa('mke2fs', ['-q', '-F', '-t', type, '-b', String(blockSize), '-d', src, img, size]);
  return img;
}

/** Runs debugfs commands on an image (writable); fails the case's set-up if one fails. */
const debugfs = async (img: string, ...commands: string[]) => {
  const r = await execa('debugfs', ['-w', '-f', '-', img], { input: commands.join('\n') + '\n' });
  if (/^\S.*: .*(not found|Invalid|error|Usage)/im.test(String(r.stderr))) throw new Error(`debugfs: ${String(r.stderr)}`);
  return String(r.stdout);
};

/** Block numbers debugfs lists for a file (its data blocks, then (IND)/(DIND)/(TIND) maps). */
const blocksOf = async (img: string, path: string) => {
  const r = await execa('debugfs', ['-R', `stat ${path}`, img]);
  return String(r.stdout);
};

/** Overwrites 4-byte little-endian block pointers of block `block` (block size `bs`). */
function writePointers(img: string, block: number, bs: number, value: number, count = bs / 4): void {
  const fd = openSync(img, 'r+');
  const b = Buffer.alloc(count * 4);
  for (let i = 0; i < count; i++) b.writeUInt32LE(value, i * 4);
  writeSync(fd, b, 0, b.length, block * bs);
  closeSync(fd);
}

export const EXT_CASES: HostileCase[] = inClass('ext2/3/4 images', [
  {
    name: 'an ext4 file claiming 1 TiB',
    make: async ({ dir: d }) => {
      const img = await extImage(d, 'ext4', { 'etc/hostname': 'ext\n', big: 'four\n' }, 4096, '16M');
      await debugfs(img, `set_inode_field /big size ${2 ** 40}`);
      return img;
    },
    exitCode: 0,
    maxStoredBytes: 1 << 20,
    maxSeconds: 60,
    check: (_json, { entries }) => {
      expect(entries.get('/big')).toMatchObject({ size: 2 ** 40, sparse: '[[0,4096]]' });
    },
  },
  {
    name: 'an ext2 file whose triple-indirect block points at itself',
    make: async ({ dir: d }) => {
      const img = await extImage(d, 'ext2', { 'etc/hostname': 'ext\n', far: { sparse: 68 << 20, at: 67 << 20 } }, 1024, '4M');
      const tind = Number(/\(TIND\):(\d+)/.exec(await blocksOf(img, '/far'))?.[1]);
      expect(tind).toBeGreaterThan(0);
      writePointers(img, tind, 1024, tind);
      return img;
    },
    exitCode: 4,
    code: 'E_CORRUPT_FILESYSTEM',
    message: /already used/,
    maxSeconds: 60,
  },
  {
    name: 'an ext2 indirect pointer beyond the filesystem',
    make: async ({ dir: d }) => {
      const img = await extImage(d, 'ext2', { 'etc/hostname': 'ext\n', f: 'x'.repeat(20 * 1024) }, 1024, '4M');
      const ind = Number(/\(IND\):(\d+)/.exec(await blocksOf(img, '/f'))?.[1]);
      writePointers(img, ind, 1024, 0x7fffffff, 4);
      return img;
    },
    exitCode: 4,
    code: 'E_CORRUPT_FILESYSTEM',
    message: /beyond/,
  },
  {
    name: 'two ext2 files sharing a data block',
    make: async ({ dir: d }) => {
      const img = await extImage(d, 'ext2', { 'etc/hostname': 'ext\n', a: 'secret of a\n', b: 'b\n' }, 1024, '4M');
      const first = Number(/BLOCKS:\n\(0\):(\d+)/.exec(await blocksOf(img, '/a'))?.[1]);
      await debugfs(img, `set_inode_field /b block[0] ${first}`);
      return img;
    },
    exitCode: 4,
    code: 'E_CORRUPT_FILESYSTEM',
    message: /already used/,
  },
  {
    name: 'an ext2 directory entry looping back to the root',
    make: async ({ dir: d }) => {
      const img = await extImage(d, 'ext2', { 'etc/hostname': 'ext\n', 'sub/f': 'f\n' }, 1024, '4M');
      await debugfs(img, 'link <2> /sub/loop');
      return img;
    },
    exitCode: 4,
    code: 'E_CORRUPT_FILESYSTEM',
  },
  {
    name: 'a symlink inode claiming 1 GiB',
    make: async ({ dir: d }) => {
      const img = await extImage(d, 'ext4', { 'etc/hostname': 'ext\n' }, 4096, '16M');
      await debugfs(img, 'symlink /l /etc/hostname', `set_inode_field /l size ${2 ** 30}`);
      return img;
    },
    exitCode: 4,
    code: 'E_CORRUPT_FILESYSTEM',
  },
  {
    name: 'a superblock with an impossible inode count',
    make: async ({ dir: d }) => {
      const img = await extImage(d, 'ext2', { 'etc/hostname': 'ext\n' }, 1024, '4M');
      const fd = openSync(img, 'r+');
      const b = Buffer.alloc(4);
      b.writeUInt32LE(0xffffffff);
      writeSync(fd, b, 0, 4, 1024);
      closeSync(fd);
      return img;
    },
    exitCode: 4,
    code: ['E_CORRUPT_FILESYSTEM', 'E_UNSUPPORTED_DISK'],
  },
  {
    name: 'a superblock claiming more blocks than the image holds',
    make: async ({ dir: d }) => {
      const img = await extImage(d, 'ext2', { 'etc/hostname': 'ext\n' }, 1024, '4M');
      const fd = openSync(img, 'r+');
      const b = Buffer.alloc(4);
      readSync(fd, b, 0, 4, 1024 + 4);
      b.writeUInt32LE(b.readUInt32LE() * 64);
      writeSync(fd, b, 0, 4, 1024 + 4);
      closeSync(fd);
      return img;
    },
    exitCode: 4,
    code: ['E_CORRUPT_FILESYSTEM', 'E_UNSUPPORTED_DISK'],
  },
  {
    name: 'an ext4 image holding a 4 GiB sparse file',
    make: ({ dir: d }) => extImage(d, 'ext4', { 'etc/hostname': 'ext\n', 'var/log/lastlog': { sparse: 4 * 2 ** 30, at: 2 ** 31 } }, 4096, '16M'),
    exitCode: 0,
    maxStoredBytes: 1 << 20,
    maxSeconds: 60,
    check: (_json, { entries }) => {
      expect(entries.get('/var/log/lastlog')).toMatchObject({ size: 4 * 2 ** 30, sparse: `[[${2 ** 31},4096]]` });
    },
  },
  {
    name: 'an ext4 directory claiming 1 TiB',
    make: async ({ dir: d }) => {
      const img = await extImage(d, 'ext4', { 'etc/hostname': 'ext\n' }, 4096, '16M');
      await debugfs(img, `set_inode_field /etc size ${2 ** 40}`);
      return img;
    },
    exitCode: 0,
    maxSeconds: 60,
  },
]);
