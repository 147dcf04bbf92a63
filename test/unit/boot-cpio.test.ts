import { execa } from 'execa';
import { lstat, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCpio, type CpioMember } from '../../src/core/bootable/cpio.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(async () => tmp.cleanup());

const members: CpioMember[] = [
  { name: 'init', type: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
  { name: 'bin', type: 'dir', mode: 0o755 },
  { name: 'bin/sh', type: 'symlink', mode: 0o777, target: 'busybox' },
  { name: 'bin/busybox', type: 'file', mode: 0o755, data: Buffer.alloc(1001, 7) },
  { name: 'etc', type: 'dir', mode: 0o700, uid: 1, gid: 2 },
  { name: 'etc/empty', type: 'file', mode: 0o600 },
  { name: 'dev', type: 'dir', mode: 0o755 },
  { name: 'dev/console', type: 'char', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
];

describe('cpio newc writer', () => {
  it('writes an archive GNU cpio lists and extracts exactly', async () => {
    const archive = join(tmp.dir, 'a.cpio');
    await writeFile(archive, writeCpio(members, 1_700_000_000));
    const list = await execa('cpio', ['-i', '-t', '--quiet', '-F', archive]);
    expect(list.stdout.split('\n')).toEqual(['bin', 'bin/busybox', 'bin/sh', 'dev', 'dev/console', 'etc', 'etc/empty', 'init']);
    const verbose = await execa('cpio', ['-i', '-t', '-v', '--quiet', '-F', archive]);
    expect(verbose.stdout).toMatch(/^crw------- +1 root +root +5, +1 .* dev\/console$/m);
    const out = join(tmp.dir, 'x');
    await execa('mkdir', [out]);
    await execa('cpio', ['-i', '-d', '-m', '--quiet', '--no-absolute-filenames', '-F', archive], { cwd: out });
    expect(await readFile(join(out, 'init'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(await readFile(join(out, 'bin/busybox'))).toEqual(Buffer.alloc(1001, 7));
    expect(await readlink(join(out, 'bin/sh'))).toBe('busybox');
    const st = await lstat(join(out, 'init'));
    expect(st.mode & 0o7777).toBe(0o755);
    expect(st.mtimeMs).toBe(1_700_000_000_000);
    expect((await lstat(join(out, 'etc'))).uid).toBe(1);
  });

  it('is deterministic: member order does not matter, the time does', () => {
    const a = writeCpio(members, 1000);
    const b = writeCpio([...members].reverse(), 1000);
    expect(a.equals(b)).toBe(true);
    expect(a.equals(writeCpio(members, 1001))).toBe(false);
    expect(a.length % 4).toBe(0);
  });

  it('refuses duplicate names', () => {
    expect(() => writeCpio([members[0]!, members[0]!], 0)).toThrow(/duplicate member init/);
  });
});
