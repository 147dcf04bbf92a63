import { join } from 'node:path';
import { expect } from 'vitest';
import { inClass, readBlob, type HostileCase } from './harness.js';
import { archive, compressedZeros, data, dir, file, hardlinkMember, header, pax, symlinkMember, writeTar } from './tar-bytes.js';

/** Numbers in tar headers and pax records: every one checked against the data present. */
const numbers = inClass('tar numbers', [
  {
    name: 'negative base-256 size in a 1.5 KB .tar.gz',
    make: ({ dir: d }) => writeTar(join(d, 'neg.tar.gz'), archive(dir('./'), header({ name: './evil', size: -1n }), data('x'.repeat(600))), 'gzip'),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /size -1 is negative/,
    maxSeconds: 30,
    maxRssMiB: 300,
  },
  {
    name: 'negative base-256 size in a plain tar',
    make: ({ dir: d }) => writeTar(join(d, 'neg.tar'), archive(header({ name: './evil', size: -(2n ** 40n) }), data('x'))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'base-256 size 2^90 (bits beyond 53)',
    make: ({ dir: d }) => writeTar(join(d, 'big.tar'), archive(header({ name: './big', size: 2n ** 90n }), data('x'))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /out of range/,
  },
  {
    name: 'base-256 size 2^53 + 1',
    make: ({ dir: d }) => writeTar(join(d, 'big53.tar.gz'), archive(header({ name: './big', size: 2n ** 53n + 1n }), data('x')), 'gzip'),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'negative-size directory in a .tar.gz',
    make: ({ dir: d }) => writeTar(join(d, 'negdir.tar.gz'), archive(dir('./'), dir('./d/', { size: -512n }), file('./d/f', 'f')), 'gzip'),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'negative size on a volume header (plain tar)',
    make: ({ dir: d }) => writeTar(join(d, 'vol.tar'), archive(header({ name: 'VOLUME', typeflag: 'V', size: -1024n, magic: 'gnu' }), file('./f', 'f'))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    maxSeconds: 30,
  },
  {
    name: 'negative size on a volume header (.tar.gz)',
    make: ({ dir: d }) => writeTar(join(d, 'vol.tar.gz'), archive(header({ name: 'VOLUME', typeflag: 'V', size: -1024n, magic: 'gnu' }), file('./f', 'f')), 'gzip'),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    maxSeconds: 30,
  },
  {
    name: 'pax header with a negative size field',
    make: ({ dir: d }) => writeTar(join(d, 'negpax.tar'), archive(header({ name: 'PaxHeaders/x', typeflag: 'x', size: -100n }), file('./f', 'f'))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'pax size record "-5"',
    make: ({ dir: d }) => writeTar(join(d, 'paxneg.tar.gz'), archive(pax([['size', '-5']]), file('./f', 'hello')), 'gzip'),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /not a number/,
  },
  {
    name: 'pax size record beyond 2^53',
    make: ({ dir: d }) => writeTar(join(d, 'paxhuge.tar'), archive(pax([['size', '99999999999999999999']]), file('./f', 'hello'))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /out of range/,
  },
  {
    name: 'pax size record larger than the archive',
    make: ({ dir: d }) => writeTar(join(d, 'paxbig.tar'), archive(pax([['size', String(2 ** 40)]]), file('./f', 'hello'))),
    exitCode: 4,
    code: 'E_TRUNCATED',
  },
  {
    name: 'pax size record larger than the stream (.tar.zst)',
    make: ({ dir: d }) => writeTar(join(d, 'paxbig.tar.zst'), archive(pax([['size', String(2 ** 40)]]), file('./f', 'hello')), 'zstd'),
    exitCode: 4,
    code: 'E_TRUNCATED',
  },
  {
    name: 'pax uid that is not a number',
    make: ({ dir: d }) => writeTar(join(d, 'paxuid.tar'), archive(pax([['uid', '0x10']]), file('./f', 'f'))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'pax mtime that is not a time',
    make: ({ dir: d }) => writeTar(join(d, 'paxtime.tar'), archive(pax([['mtime', '1e99']]), file('./f', 'f'))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'pax record whose length runs past the header',
    make: ({ dir: d }) => {
      const body = Buffer.from('99999999 path=x\n');
      return writeTar(join(d, 'paxlen.tar'), archive(header({ name: 'PaxHeaders/x', typeflag: 'x', size: body.length }), data(body), file('./f', 'f')));
    },
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'negative base-256 uid',
    make: ({ dir: d }) => writeTar(join(d, 'neguid.tar'), archive(file('./f', 'f', { uid: -1n }))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'negative base-256 device major',
    make: ({ dir: d }) => writeTar(join(d, 'negdev.tar'), archive(header({ name: './dev/x', typeflag: '3', devmajor: -1n }))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'size field with a non-octal digit',
    make: ({ dir: d }) => writeTar(join(d, 'octal.tar'), archive(header({ name: './f', size: Buffer.from('0000000009\0') }), data('x'))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'octal size of 8 GiB over 1 KiB of data (.tar.gz)',
    make: ({ dir: d }) => writeTar(join(d, 'eight.tar.gz'), archive(header({ name: './f', size: 0o77777777777 }), data('x'.repeat(1024))), 'gzip'),
    exitCode: 4,
    code: 'E_TRUNCATED',
  },
  {
    name: 'checksum field that is not a number (second member)',
    make: ({ dir: d }) => writeTar(join(d, 'cksum.tar'), archive(dir('./'), header({ name: './f', checksum: Buffer.from('zzzzzzz\0') }))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'negative base-256 mtime (before 1970) is a valid time',
    make: ({ dir: d }) => writeTar(join(d, 'oldtime.tar'), archive(dir('./'), file('./old', 'old\n', { mtime: -86400n }))),
    exitCode: 0,
  },
]);

/** Structure: extension headers, caps on metadata, entry kinds, names, links. */
const structure = inClass('tar structure', [
  {
    name: 'pax header declaring 32 MiB (compressed to a few KiB)',
    make: ({ dir: d }) => writeTar(join(d, 'bigpax.tar.gz'), archive(header({ name: 'PaxHeaders/x', typeflag: 'x', size: 32 << 20 }), Buffer.alloc(32 << 20)), 'gzip'),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /too large/,
    maxRssMiB: 300,
  },
  {
    name: 'GNU long name of 1 MiB',
    make: ({ dir: d }) => writeTar(join(d, 'longname.tar'), archive(header({ name: '././@LongLink', typeflag: 'L', size: 1 << 20, magic: 'gnu' }), Buffer.alloc(1 << 20, 0x61), file('./f', 'f'))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /too large/,
  },
  {
    name: 'global pax headers piling up distinct keys',
    make: ({ dir: d }) => {
      const globals: Buffer[] = [];
      for (let i = 0; i < 40; i++) globals.push(pax([[`user.k${i}`, 'v'.repeat(60_000)]], 'g'));
      return writeTar(join(d, 'globals.tar.gz'), archive(...globals, file('./f', 'f')), 'gzip');
    },
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
    message: /global pax headers/,
  },
  {
    name: 'GNU long name then the end of the input',
    make: ({ dir: d }) => writeTar(join(d, 'dangling.tar'), Buffer.concat([header({ name: '././@LongLink', typeflag: 'L', size: 5, magic: 'gnu' }), data('name\0')])),
    exitCode: 4,
    code: 'E_TRUNCATED',
  },
  {
    name: 'pax header right before the end-of-archive marker',
    make: ({ dir: d }) => writeTar(join(d, 'paxend.tar'), archive(file('./f', 'f'), pax([['path', 'x']]))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'unknown entry type',
    make: ({ dir: d }) => writeTar(join(d, 'type.tar'), archive(header({ name: './f', typeflag: 'Q' }))),
    exitCode: 4,
    code: 'E_UNSUPPORTED_ENTRY',
  },
  {
    name: 'GNU multi-volume continuation',
    make: ({ dir: d }) => writeTar(join(d, 'multi.tar'), archive(header({ name: './f', typeflag: 'M', magic: 'gnu', size: 10 }), data('0123456789'))),
    exitCode: 4,
    code: 'E_UNSUPPORTED_ENTRY',
  },
  {
    name: 'pax path with a NUL byte',
    make: ({ dir: d }) => writeTar(join(d, 'nul.tar'), archive(pax([['path', Buffer.from('a\0b')]]), file('./f', 'f'))),
    exitCode: 4,
    code: 'E_BAD_NAME',
  },
  {
    name: 'pax path escaping with ..',
    make: ({ dir: d }) => writeTar(join(d, 'paxdotdot.tar.gz'), archive(pax([['path', '../../etc/aim-escaped']]), file('./f', 'x')), 'gzip'),
    exitCode: 4,
    code: 'E_PATH_TRAVERSAL',
  },
  {
    name: 'GNU long name escaping with ..',
    make: ({ dir: d }) =>
      writeTar(join(d, 'longdotdot.tar'), archive(header({ name: '././@LongLink', typeflag: 'L', size: 20, magic: 'gnu' }), data('a/../../../escaped\0\0'), file('./f', 'x'))),
    exitCode: 4,
    code: 'E_PATH_TRAVERSAL',
  },
  {
    name: 'hardlink to an absolute path',
    make: ({ dir: d, secret }) => writeTar(join(d, 'abslink.tar'), archive(dir('./'), hardlinkMember('./h', secret))),
    exitCode: 4,
    code: 'E_ABSOLUTE_PATH',
  },
  {
    name: 'hardlink to a directory',
    make: ({ dir: d }) => writeTar(join(d, 'linkdir.tar'), archive(dir('./'), dir('./d/'), hardlinkMember('./h', './d'))),
    exitCode: 4,
    code: 'E_BAD_HARDLINK',
  },
  {
    name: 'hardlink to itself',
    make: ({ dir: d }) => writeTar(join(d, 'linkself.tar'), archive(dir('./'), file('./h', 'h'), hardlinkMember('./h', './h'))),
    exitCode: 4,
    code: 'E_HARDLINK_OUTSIDE',
  },
  {
    name: 'symlink with an empty target',
    make: ({ dir: d }) => writeTar(join(d, 'emptylink.tar'), archive(dir('./'), symlinkMember('./l', ''))),
    exitCode: 4,
    code: 'E_BAD_SYMLINK',
  },
  {
    name: 'the root listed as a symlink',
    make: ({ dir: d, hostDir }) => writeTar(join(d, 'rootlink.tar'), archive(symlinkMember('./', hostDir), file('./f', 'f'))),
    exitCode: 4,
    code: 'E_BAD_ROOT',
  },
  {
    name: 'an archive of nothing but the end marker',
    make: ({ dir: d }) => writeTar(join(d, 'empty-archive.tar'), Buffer.alloc(10240)),
    exitCode: 4,
    code: 'E_EMPTY_ARCHIVE',
  },
  {
    name: '2 GiB of zeros in zstd (an end marker and a bomb of padding)',
    make: ({ dir: d }) => compressedZeros(join(d, 'padding.tar.zst'), 2 ** 31, 'zstd'),
    exitCode: 4,
    code: 'E_EMPTY_ARCHIVE',
    maxSeconds: 60,
    maxRssMiB: 300,
  },
  {
    name: 'content shorter than declared at the end of a .tar.gz',
    make: ({ dir: d }) => writeTar(join(d, 'short.tar.gz'), Buffer.concat([header({ name: './f', size: 100_000 }), Buffer.alloc(5000, 0x61)]), 'gzip'),
    exitCode: 4,
    code: 'E_TRUNCATED',
  },
  {
    name: 'GNU dumpdir with a negative size',
    make: ({ dir: d }) => writeTar(join(d, 'dumpdir.tar'), archive(header({ name: './d/', typeflag: 'D', size: -7n, magic: 'gnu' }))),
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'a path listed twice: the last entry wins, as in tar',
    make: ({ dir: d }) => writeTar(join(d, 'twice.tar'), archive(dir('./'), file('./etc-passwd', 'one\n'), file('./etc-passwd', 'two\n'))),
    exitCode: 0,
    check: async (_json, { repo, entries }) => {
      const e = entries.get('/etc-passwd')!;
      expect((await readBlob(repo, e.blob!)).toString()).toBe('two\n');
    },
  },
]);

export const TAR_CASES: HostileCase[] = [...numbers, ...structure];
