import { describe, expect, it } from 'vitest';
import type { ElfFacts } from '../../src/core/analyze/elf.js';
import type { Entry } from '../../src/core/model/entry.js';
import type { PathEvidence } from '../../src/core/profile/strace-parser.js';
import type { ProfileRecord } from '../../src/core/repository/types.js';
import { tracedFiles, type ReadHead } from '../../src/core/slim/compose.js';

const file = (path: string, size: number, blob: string, mode = 0o755): Entry => ({ path, type: 'file', mode, uid: 0, gid: 0, mtime: 0, size, blob });
const link = (path: string, target: string): Entry => ({ path, type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target });
const dir = (path: string): Entry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
const used = (path: string, exec = false): PathEvidence => ({ path, syscalls: [exec ? 'execve' : 'openat'], ok: true, errors: [], exec, wrote: false, firstPid: 1, firstSeen: 0 });

const ENTRIES = [
  dir('/usr'), dir('/usr/bin'), dir('/usr/lib'), dir('/usr/lib64'), link('/lib64', 'usr/lib64'),
  file('/usr/lib64/ld-linux-x86-64.so.2', 200, 'ld'),
  file('/usr/bin/perl', 3000, 'perl'),
  file('/usr/bin/tool', 50, 'tool'), // a perl script
  file('/usr/bin/static', 700, 'static'), // a static ELF: no PT_INTERP
  file('/usr/lib/data', 10, 'data', 0o644),
];
const byPath = new Map(ENTRIES.map((e) => [e.path, e] as const));
const ELF: Record<string, ElfFacts> = {
  ld: { class: 64, endian: 'le', machine: 'x86-64', type: 'dyn', needed: [] },
  perl: { class: 64, endian: 'le', machine: 'x86-64', type: 'dyn', interp: '/lib64/ld-linux-x86-64.so.2', needed: [] },
  static: { class: 64, endian: 'le', machine: 'x86-64', type: 'exec', needed: [] },
};
const HEADS: Record<string, string> = { tool: '#!/usr/bin/perl -w\nprint 1;\n' };
const readHead: ReadHead = async (e, bytes) => (HEADS[e.blob!] === undefined ? undefined : Buffer.from(HEADS[e.blob!]!).subarray(0, bytes));
const profile = (paths: PathEvidence[]): ProfileRecord => ({ name: 'p', imageId: 'x', createdAt: '', updatedAt: '', runs: [], paths });

describe('the traced limit', () => {
  it('counts what the kernel loads to execute a traced program: its "#!" interpreter and that one\'s PT_INTERP', async () => {
    const limit = await tracedFiles(profile([used('/usr/bin/tool', true), used('/usr/lib/data')]), byPath, new Map(), (b) => ELF[b], readHead);
    expect(limit).toMatchObject({ files: 4, bytes: 50 + 3000 + 200 + 10 });
  });

  it('counts nothing more for a file only opened, or a static program', async () => {
    const opened = await tracedFiles(profile([used('/usr/bin/perl'), used('/usr/bin/static', true)]), byPath, new Map(), (b) => ELF[b], readHead);
    expect(opened).toMatchObject({ files: 2, bytes: 3000 + 700 });
  });
});
