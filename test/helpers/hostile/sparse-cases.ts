import { execa } from 'execa';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { inClass, type HostileCase } from './harness.js';
import { archive, data, dir, header, pax, paxRecords, writeTar, zeroBomb } from './tar-bytes.js';

/** An old GNU sparse header ('S') with the given regions [offset, length] and real size. */
function oldGnuSparse(name: string, regions: [number, number][], realSize: number, stored: number, extended = false): Buffer {
  return header({
    name,
    typeflag: 'S',
    magic: 'gnu',
    size: stored,
    edit: (h) => {
      regions.slice(0, 4).forEach(([off, len], i) => {
        h.write(off.toString(8).padStart(11, '0') + '\0', 386 + i * 24, 12, 'latin1');
        h.write(len.toString(8).padStart(11, '0') + '\0', 386 + i * 24 + 12, 12, 'latin1');
      });
      h[482] = extended ? 1 : 0;
      h.write(realSize.toString(8).padStart(11, '0') + '\0', 483, 12, 'latin1');
    },
  });
}

/** A pax 1.0 sparse member: the map text starts its data. */
function pax10(name: string, realSize: number, mapText: string, payload: Buffer, declared?: number): Buffer {
  const map = data(mapText);
  const body = Buffer.concat([map, payload]);
  return Buffer.concat([
    pax([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', name], ['GNU.sparse.realsize', String(realSize)]]),
    header({ name: `GNUSparseFile.0/${name}`, size: declared ?? body.length }),
    data(body),
  ]);
}

/** Malformed GNU sparse maps, and sparse files that are fine however large they claim to be. */
const sparse = inClass('tar sparse maps', [
  {
    name: 'old GNU sparse region beyond the real size',
    make: ({ dir: d }) => writeTar(join(d, 'beyond.tar'), archive(dir('./'), oldGnuSparse('./s', [[1 << 20, 512]], 4096, 512), data(Buffer.alloc(512, 1)))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /ends past/,
  },
  {
    name: 'old GNU sparse regions overlapping',
    make: ({ dir: d }) => writeTar(join(d, 'overlap.tar'), archive(dir('./'), oldGnuSparse('./s', [[0, 1024], [512, 512]], 8192, 1536), data(Buffer.alloc(1536, 1)))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /overlaps/,
  },
  {
    name: 'old GNU sparse map listing more data than the member holds',
    make: ({ dir: d }) => writeTar(join(d, 'more.tar'), archive(dir('./'), oldGnuSparse('./s', [[0, 4096]], 8192, 512), data(Buffer.alloc(512, 1)))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /lists 4096 bytes/,
  },
  {
    name: 'old GNU sparse extension blocks that never end',
    make: ({ dir: d }) => {
      const ext = Buffer.alloc(512);
      ext[504] = 1;
      return writeTar(join(d, 'endless.tar.gz'), Buffer.concat([oldGnuSparse('./s', [[0, 512]], 4096, 512, true), ...Array.from({ length: 2000 }, () => ext)]), 'gzip');
    },
    exitCode: 4,
    code: ['E_TRUNCATED', 'E_CORRUPT_ARCHIVE'],
  },
  {
    name: 'pax 1.0 sparse map claiming 10^12 regions',
    make: ({ dir: d }) => writeTar(join(d, 'count.tar'), archive(dir('./'), pax10('s', 4096, '1000000000000\n0\n512\n', Buffer.alloc(512)))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /regions/,
  },
  {
    name: 'pax 1.0 sparse map running past its member',
    make: ({ dir: d }) => writeTar(join(d, 'pastmap.tar'), archive(dir('./'), pax10('s', 4096, `3\n${'1\n'.repeat(300)}`, Buffer.alloc(0), 512))),
    exitCode: 4,
    code: ['E_CORRUPT_ARCHIVE', 'E_TRUNCATED'],
  },
  {
    name: 'pax 1.0 sparse map with a non-numeric entry (.tar.gz)',
    make: ({ dir: d }) => writeTar(join(d, 'alpha.tar.gz'), archive(dir('./'), pax10('s', 4096, '1\nzero\n512\n', Buffer.alloc(512))), 'gzip'),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'pax 0.1 sparse map that is not a list of numbers',
    make: ({ dir: d }) =>
      writeTar(join(d, 'p01.tar'), archive(dir('./'), pax([['GNU.sparse.size', '8192'], ['GNU.sparse.numblocks', '1'], ['GNU.sparse.map', '0,-512']]), header({ name: './s', size: 512 }), data(Buffer.alloc(512)))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'pax 0.0 sparse numbytes without its offset',
    make: ({ dir: d }) => {
      const body = paxRecords([['GNU.sparse.size', '8192'], ['GNU.sparse.numbytes', '512']]);
      return writeTar(join(d, 'p00.tar'), archive(dir('./'), header({ name: 'PaxHeaders/x', typeflag: 'x', size: body.length }), data(body), header({ name: './s', size: 512 }), data(Buffer.alloc(512))));
    },
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'pax sparse format 2.0 (unknown)',
    make: ({ dir: d }) => writeTar(join(d, 'p20.tar'), archive(dir('./'), pax([['GNU.sparse.major', '2'], ['GNU.sparse.minor', '0'], ['GNU.sparse.realsize', '10']]), header({ name: './s', size: 0 }))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'pax 1.0 sparse file claiming a petabyte with 512 bytes of data',
    make: ({ dir: d }) => writeTar(join(d, 'peta.tar'), archive(dir('./'), pax10('peta', 2 ** 50, `1\n${2 ** 49}\n512\n`, Buffer.alloc(512, 0x61)))),
    exitCode: 0,
    maxStoredBytes: 1 << 20,
    maxSeconds: 60,
    check: (_json, { entries }) => {
      const e = entries.get('/peta')!;
      expect(e.size).toBe(2 ** 50);
      expect(JSON.parse(e.sparse!)).toEqual([[2 ** 49, 4096]]);
    },
  },
  {
    name: 'a 10 GiB sparse file archived by GNU tar --sparse (old GNU format)',
    make: async ({ dir: d }) => {
      const src = join(d, 'src');
      await mkdir(src);
      const f = join(src, 'lastlog');
      await writeFile(f, '');
      await truncate(f, 10 * 2 ** 30);
      const fd = openSync(f, 'r+');
      writeSync(fd, Buffer.from('record'), 0, 6, 5 * 2 ** 30);
      closeSync(fd);
      await execa('tar', ['--format=gnu', '--sparse', '-C', src, '-cf', join(d, 'gnu-sparse.tar'), '.']);
      return join(d, 'gnu-sparse.tar');
    },
    exitCode: 0,
    maxStoredBytes: 1 << 20,
    maxSeconds: 60,
    check: (_json, { entries }) => {
      expect(entries.get('/lastlog')?.size).toBe(10 * 2 ** 30);
    },
  },
]);

/** Decompression bombs: small inputs of huge, empty content. Holes cost nothing to store. */
const bombs = inClass('decompression bombs', [
  {
    name: '2 GiB file of zeros in 2 MiB of gzip',
    make: ({ dir: d }) => zeroBomb(join(d, 'zeros.tar.gz'), 2 * 2 ** 30, 'gzip'),
    exitCode: 0,
    maxStoredBytes: 1 << 20,
    maxSeconds: 110,
    maxRssMiB: 400,
    check: (_json, { entries }) => {
      expect(entries.get('/zeros')).toMatchObject({ size: 2 * 2 ** 30, sparse: '[]' });
    },
  },
  {
    name: '6 GiB file of zeros in 200 KiB of zstd',
    make: ({ dir: d }) => zeroBomb(join(d, 'zeros.tar.zst'), 6 * 2 ** 30, 'zstd'),
    exitCode: 0,
    maxStoredBytes: 1 << 20,
    maxSeconds: 110,
    maxRssMiB: 400,
  },
  {
    name: '1 GiB file of zeros in xz',
    make: ({ dir: d }) => zeroBomb(join(d, 'zeros.tar.xz'), 2 ** 30, 'xz'),
    exitCode: 0,
    maxStoredBytes: 1 << 20,
    maxSeconds: 110,
    maxRssMiB: 400,
  },
  {
    name: '64 MiB file of zeros in bzip2',
    make: ({ dir: d }) => zeroBomb(join(d, 'zeros.tar.bz2'), 64 << 20, 'bzip2'),
    exitCode: 0,
    maxStoredBytes: 1 << 20,
    maxRssMiB: 400,
  },
  {
    name: 'truncated zstd bomb',
    make: async ({ dir: d }) => {
      const p = await zeroBomb(join(d, 'full.tar.zst'), 256 << 20, 'zstd');
      const out = join(d, 'cut.tar.zst');
      await execa('sh', ['-c', `head -c $(( $(stat -c %s "${p}") / 2 )) "${p}" > "${out}"`]);
      return out;
    },
    exitCode: 4,
    code: ['E_CORRUPT_ARCHIVE', 'E_TRUNCATED'],
  },
  {
    name: 'gzip with a damaged CRC',
    make: async ({ dir: d }) => {
      const p = await writeTar(join(d, 'crc.tar.gz'), archive(dir('./'), header({ name: './f', size: 5 }), data('hello')), 'gzip');
      const { readFile } = await import('node:fs/promises');
      const b = await readFile(p);
      b[b.length - 6] = b[b.length - 6]! ^ 0xff;
      await writeFile(p, b);
      return p;
    },
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
]);

export const SPARSE_CASES: HostileCase[] = [...sparse, ...bombs];
