import { execa } from 'execa';
import { createWriteStream } from 'node:fs';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { encodeHeaders, writeTar, type TarWriteEntry } from '../../src/core/export/tar-writer.js';
import { DIR_CASES } from './hostile/dir-cases.js';
import { EXT_CASES } from './hostile/ext-cases.js';
import type { HostileCase } from './hostile/harness.js';
import { OCI_CASES } from './hostile/oci-cases.js';
import { SPARSE_CASES } from './hostile/sparse-cases.js';
import { TAR_CASES } from './hostile/tar-cases.js';
import { TREE_CASES } from './hostile/tree-cases.js';

const meta = { mode: 0o644, uid: 0, gid: 0, mtime: 1700000000 };
const f = (name: string, text: string): TarWriteEntry => ({ name: Buffer.from(name), type: 'file', ...meta, size: Buffer.byteLength(text), content: [Buffer.from(text)] as unknown as AsyncIterable<Buffer> });
const d = (name: string): TarWriteEntry => ({ name: Buffer.from(name), type: 'dir', ...meta, mode: 0o755 });

async function tar(path: string, entries: TarWriteEntry[]): Promise<string> {
  const out = createWriteStream(path);
  await writeTar(entries, out);
  out.end();
  await finished(out);
  return path;
}

/**
 * The hostile-input corpus. The harness (hostile/harness.ts) runs every case as a CLI process and
 * checks exit code, message, that nothing outside the repository was written or read, the
 * repository, fsck, time and memory. Classes of cases live in hostile/<class>-cases.ts, each run
 * by a test/e2e/bad-*.test.ts file; this file holds the first, basic cases and lists them all.
 */
interface BadInput {
  name: string;
  /** Builds the input in dir and returns the path to import. */
  make: (dir: string) => Promise<string>;
  /** Expected AimError code and exit code. */
  code: string;
  exitCode: number;
  /** Paths that must not exist afterwards (writes through the input must not happen). */
  mustNotExist?: (dir: string) => string[];
}

const BASICS: BadInput[] = [
  {
    name: '../ path',
    make: (dir) => tar(join(dir, 'dotdot.tar'), [d('./'), f('../escaped', 'x')]),
    code: 'E_PATH_TRAVERSAL',
    exitCode: 4,
    mustNotExist: (dir) => [join(dir, '..', 'escaped'), join(dir, 'escaped')],
  },
  {
    name: 'deep ../ path',
    make: (dir) => tar(join(dir, 'deep-dotdot.tar'), [d('./'), d('./a/'), f('./a/../../../../tmp/aim-escaped', 'x')]),
    code: 'E_PATH_TRAVERSAL',
    exitCode: 4,
    mustNotExist: () => ['/tmp/aim-escaped'],
  },
  {
    name: 'absolute path',
    make: (dir) => tar(join(dir, 'absolute.tar'), [f('/tmp/aim-absolute', 'x')]),
    code: 'E_ABSOLUTE_PATH',
    exitCode: 4,
    mustNotExist: () => ['/tmp/aim-absolute'],
  },
  {
    name: 'file written through a symlink',
    make: (dir) =>
      tar(join(dir, 'through-symlink.tar'), [
        d('./'),
        { name: Buffer.from('./etc'), type: 'symlink', ...meta, mode: 0o777, linkName: Buffer.from('/tmp') },
        f('./etc/aim-through-symlink', 'x'),
      ]),
    code: 'E_PATH_THROUGH_SYMLINK',
    exitCode: 4,
    mustNotExist: () => ['/tmp/aim-through-symlink'],
  },
  {
    name: 'hardlink to outside',
    make: (dir) => tar(join(dir, 'hardlink-outside.tar'), [d('./'), { name: Buffer.from('./shadow'), type: 'hardlink', ...meta, linkName: Buffer.from('../../../etc/shadow') }]),
    code: 'E_PATH_TRAVERSAL',
    exitCode: 4,
  },
  {
    name: 'hardlink to a member that is not in the archive',
    make: (dir) => tar(join(dir, 'hardlink-missing.tar'), [d('./'), { name: Buffer.from('./shadow'), type: 'hardlink', ...meta, linkName: Buffer.from('./etc/shadow') }]),
    code: 'E_HARDLINK_OUTSIDE',
    exitCode: 4,
  },
  {
    name: 'truncated gzip',
    make: async (dir) => {
      const t = await tar(join(dir, 'plain.tar'), [d('./'), f('./a', 'a'.repeat(100_000)), f('./b', 'b')]);
      const gz = gzipSync(await readFile(t));
      const p = join(dir, 'truncated.tar.gz');
      await writeFile(p, gz.subarray(0, Math.floor(gz.length / 2)));
      return p;
    },
    code: 'E_CORRUPT_ARCHIVE',
    exitCode: 4,
  },
  {
    name: 'truncated tar',
    make: async (dir) => {
      const p = await tar(join(dir, 'truncated.tar'), [d('./'), f('./a', 'a'.repeat(100_000))]);
      await truncate(p, 50_000);
      return p;
    },
    code: 'E_TRUNCATED',
    exitCode: 4,
  },
  {
    name: 'garbage bytes',
    make: async (dir) => {
      const p = join(dir, 'garbage.bin');
      await writeFile(p, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251)));
      return p;
    },
    code: 'E_UNKNOWN_FORMAT',
    exitCode: 4,
  },
  {
    name: 'empty file',
    make: async (dir) => {
      const p = join(dir, 'empty.tar');
      await writeFile(p, '');
      return p;
    },
    code: 'E_EMPTY_INPUT',
    exitCode: 4,
  },
  {
    name: 'huge declared size',
    make: async (dir) => {
      const header = encodeHeaders({ name: Buffer.from('./huge'), type: 'file', ...meta, size: 2 ** 40 });
      const p = join(dir, 'huge.tar');
      await writeFile(p, Buffer.concat([header, Buffer.alloc(4096, 1)]));
      return p;
    },
    code: 'E_TRUNCATED',
    exitCode: 4,
  },
  {
    name: 'bad header checksum',
    make: async (dir) => {
      const p = await tar(join(dir, 'checksum.tar'), [d('./'), f('./a', 'hello')]);
      const b = await readFile(p);
      b[512 + 10] = b[512 + 10]! ^ 0x01; // a byte of the second header's name
      await writeFile(p, b);
      return p;
    },
    code: 'E_CORRUPT_ARCHIVE',
    exitCode: 4,
  },
  {
    name: 'corrupt xz',
    make: async (dir) => {
      const t = await tar(join(dir, 'forxz.tar'), [d('./'), f('./a', 'a'.repeat(50_000))]);
      await execa('xz', ['-k', '-f', t]);
      const b = await readFile(`${t}.xz`);
      for (let i = 64; i < b.length - 64; i += 97) b[i] = b[i]! ^ 0xff;
      const p = join(dir, 'corrupt.tar.xz');
      await writeFile(p, b);
      return p;
    },
    code: 'E_CORRUPT_ARCHIVE',
    exitCode: 4,
  },
  {
    name: 'missing source',
    make: async (dir) => join(dir, 'does-not-exist.tar'),
    code: 'E_NOT_FOUND',
    exitCode: 3,
  },
  {
    name: 'unsupported disk layout (GPT with only a FAT ESP)',
    make: async (dir) => {
      const disk = join(dir, 'esp-only.raw');
      const fat = join(dir, 'esp.fat');
      await execa('truncate', ['-s', '40M', disk]);
      await execa('sfdisk', ['-q', disk], { input: 'label: gpt\nstart=2048, size=61440, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n' });
      await execa('mkfs.vfat', ['-C', fat, String(61440 / 2)]);
      await execa('dd', [`if=${fat}`, `of=${disk}`, 'bs=512', 'seek=2048', 'conv=notrunc', 'status=none']);
      return disk;
    },
    code: 'E_UNSUPPORTED_DISK',
    exitCode: 4,
  },
  {
    name: 'disk with a partition table and garbage instead of a filesystem',
    make: async (dir) => {
      const disk = join(dir, 'garbage-part.raw');
      await execa('truncate', ['-s', '8M', disk]);
      await execa('sfdisk', ['-q', disk], { input: 'label: dos\nstart=2048, type=83\n' });
      return disk;
    },
    code: 'E_UNSUPPORTED_DISK',
    exitCode: 4,
  },
];

/** The basic cases as hostile cases (disk layouts are their own class). */
export const BAD_INPUTS: HostileCase[] = BASICS.map((b) => ({
  name: b.name,
  class: b.name.includes('disk') ? 'disk layouts' : 'basics',
  make: ({ dir }) => b.make(dir),
  exitCode: b.exitCode,
  code: b.code,
  mustNotExist: b.mustNotExist && (({ dir }) => b.mustNotExist!(dir)),
}));

/** Every case of every class, for the count and the README's table. */
export const ALL_HOSTILE: HostileCase[] = [...BAD_INPUTS, ...TAR_CASES, ...TREE_CASES, ...SPARSE_CASES, ...OCI_CASES, ...EXT_CASES, ...DIR_CASES];
