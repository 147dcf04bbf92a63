import { join } from 'node:path';
import { expect } from 'vitest';
import { inClass, readBlob, type HostileCase } from './harness.js';
import { archive, dir, file, hardlinkMember, header, symlinkMember, writeTar } from './tar-bytes.js';

/**
 * Archives whose entries contradict each other: something below a symlink, a file or a device,
 * or a directory with children replaced by something else. Tar's own rule (the last entry wins)
 * applies where it can; what remains contradictory is refused, naming both entries.
 */
export const TREE_CASES: HostileCase[] = inClass('tree contradictions', [
  {
    name: 'b/x, then b -> a host directory',
    make: ({ dir: d, hostDir }) => writeTar(join(d, 'bx-then-link.tar'), archive(dir('./'), file('./b/x', 'x'), symlinkMember('./b', hostDir))),
    exitCode: 4,
    code: 'E_CONFLICTING_ENTRIES',
    message: /"\/b".*"\/b\/x"/,
  },
  {
    name: 'b/x, then b -> a host directory (.tar.gz, streamed)',
    make: ({ dir: d, hostDir }) => writeTar(join(d, 'bx-then-link.tar.gz'), archive(dir('./'), dir('./b/'), file('./b/x', 'x'), symlinkMember('./b', hostDir)), 'gzip'),
    exitCode: 4,
    code: 'E_CONFLICTING_ENTRIES',
    message: /"\/b".*"\/b\/x"/,
  },
  {
    name: 'a/x, then a plain file a',
    make: ({ dir: d }) => writeTar(join(d, 'ax-then-file.tar'), archive(dir('./'), file('./a/x', 'x'), file('./a', 'plain'))),
    exitCode: 4,
    code: 'E_CONFLICTING_ENTRIES',
    message: /"\/a".*"\/a\/x"/,
  },
  {
    name: 'a/b/c, then a replaced by a symlink',
    make: ({ dir: d }) => writeTar(join(d, 'deep.tar'), archive(dir('./'), dir('./a/'), dir('./a/b/'), file('./a/b/c', 'c'), symlinkMember('./a', '/etc'))),
    exitCode: 4,
    code: 'E_CONFLICTING_ENTRIES',
  },
  {
    name: 'a directory with children replaced by a hardlink',
    make: ({ dir: d }) => writeTar(join(d, 'dir-then-link.tar'), archive(dir('./'), file('./f', 'f'), file('./d/x', 'x'), hardlinkMember('./d', './f'))),
    exitCode: 4,
    code: 'E_CONFLICTING_ENTRIES',
  },
  {
    name: 'etc -> a host directory, then etc/x written through it',
    make: ({ dir: d, hostDir }) => writeTar(join(d, 'through.tar'), archive(dir('./'), symlinkMember('./etc', hostDir), file('./etc/aim-through', 'x'))),
    exitCode: 4,
    code: 'E_PATH_THROUGH_SYMLINK',
  },
  {
    name: 'a file, then a/x below it',
    make: ({ dir: d }) => writeTar(join(d, 'below-file.tar'), archive(dir('./'), file('./a', 'f'), file('./a/x', 'x'))),
    exitCode: 4,
    code: 'E_NOT_A_DIRECTORY',
  },
  {
    name: 'a fifo, then a/x below it',
    make: ({ dir: d }) => writeTar(join(d, 'below-fifo.tar'), archive(dir('./'), header({ name: './a', typeflag: '6' }), file('./a/x', 'x'))),
    exitCode: 4,
    code: 'E_NOT_A_DIRECTORY',
  },
  {
    name: 'a device, then dev/null/x below it',
    make: ({ dir: d }) => writeTar(join(d, 'below-dev.tar'), archive(dir('./'), header({ name: './dev/null', typeflag: '3', devmajor: 1, devminor: 3 }), file('./dev/null/x', 'x'))),
    exitCode: 4,
    code: 'E_NOT_A_DIRECTORY',
  },
  {
    name: 'a directory listed again keeps its children, with the later metadata',
    make: ({ dir: d }) => writeTar(join(d, 'dir-again.tar'), archive(dir('./'), dir('./d/'), file('./d/f', 'kept\n'), dir('./d/', { mode: 0o700 }))),
    exitCode: 0,
    check: async (_json, { repo, entries }) => {
      expect(entries.get('/d')?.type).toBe('dir');
      expect((await readBlob(repo, entries.get('/d/f')!.blob!)).toString()).toBe('kept\n');
    },
  },
  {
    name: 'a file replaced after a hardlink named it: the link keeps the old content',
    make: ({ dir: d }) => writeTar(join(d, 'relink.tar'), archive(dir('./'), file('./f', 'old\n'), hardlinkMember('./h', './f'), file('./f', 'new\n'))),
    exitCode: 0,
    check: async (_json, { repo, entries }) => {
      expect((await readBlob(repo, entries.get('/f')!.blob!)).toString()).toBe('new\n');
      expect(entries.get('/h')?.type).toBe('file');
      expect((await readBlob(repo, entries.get('/h')!.blob!)).toString()).toBe('old\n');
    },
  },
  {
    name: 'an empty directory replaced by a file',
    make: ({ dir: d }) => writeTar(join(d, 'emptydir-file.tar'), archive(dir('./'), dir('./x/'), file('./x', 'now a file\n'))),
    exitCode: 0,
    check: (_json, { entries }) => {
      expect(entries.get('/x')?.type).toBe('file');
    },
  },
]);
