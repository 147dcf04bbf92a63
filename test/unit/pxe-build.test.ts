import { execa } from 'execa';
import { chmod, link, mkdir, readFile, readdir, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootScript, buildIpxeFromSource, embeddedScript, pxeCommandLine, warnXattrs, writeRootCpio } from '../../src/core/build/pxe.js';
import { checkIpxeSource } from '../../src/core/pxe/ipxe-source.js';
import type { Entry } from '../../src/core/model/entry.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { fakeIpxeTree } from '../helpers/fake-ipxe.js';
import { readNewcArchives } from '../helpers/newc.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(async () => tmp.cleanup());

describe('boot.ipxe and the kernel line', () => {
  it('fetches kernel and initrd relative to itself and names the initrd on the kernel line', () => {
    const script = bootScript('0123456789abcdef0123', 'qemu');
    expect(script.split('\n')).toEqual([
      '#!ipxe',
      '# aim 0123456789ab: the kernel, and an initrd holding the whole root filesystem',
      'kernel vmlinuz initrd=initrd.img console=ttyS0,115200 panic=-1 root=ram',
      'initrd initrd.img',
      'boot',
      '',
    ]);
    expect(pxeCommandLine('vmware')).toBe('initrd=initrd.img console=tty0 console=ttyS0,115200 panic=-1 root=ram');
  });

  it('the embedded script of source-built iPXE configures DHCP and chains to boot.ipxe', () => {
    const s = embeddedScript();
    expect(s).toMatch(/^#!ipxe\ndhcp /);
    expect(s).toContain('chain tftp://${next-server}/boot.ipxe');
  });
});

describe('root cpio', () => {
  it('carries the tree under the prefix with owners, modes, links and times, deterministically', async () => {
    const root = join(tmp.dir, 'root');
    await mkdir(join(root, 'usr/bin'), { recursive: true });
    await writeFile(join(root, 'usr/bin/app'), 'binary');
    await chmod(join(root, 'usr/bin/app'), 0o4755);
    await symlink('usr/bin', join(root, 'bin'));
    await execa('mkfifo', [join(root, 'pipe')]);
    await writeFile(join(root, 'owned'), '');
    await execa('chown', ['1000:1001', join(root, 'owned')]);
    for (const p of ['usr/bin/app', 'owned', 'pipe', 'usr/bin', 'usr', '.']) await utimes(join(root, p), 1_600_000_000, 1_600_000_000);
    const out = join(tmp.dir, 'root.cpio');
    const bytes = await writeRootCpio(root, 'newroot', out, 1_700_000_000);
    const buf = await readFile(out);
    expect(buf.length).toBe(bytes);
    const [archive, ...rest] = readNewcArchives(buf);
    expect(rest).toEqual([]);
    // the tree in name order, then the completeness marker /init checks, last
    expect(archive!.map((m) => m.name)).toEqual(['newroot', 'newroot/bin', 'newroot/owned', 'newroot/pipe', 'newroot/usr', 'newroot/usr/bin', 'newroot/usr/bin/app', 'etc/aim/root-complete']);
    const byName = new Map(archive!.map((m) => [m.name, m]));
    expect(byName.get('newroot/usr/bin/app')!.mode).toBe(0o104755);
    expect(byName.get('newroot/usr/bin/app')!.data.toString()).toBe('binary');
    expect(byName.get('newroot/usr/bin/app')!.mtime).toBe(1_600_000_000);
    expect(byName.get('newroot/bin')!.mode & 0o170000).toBe(0o120000);
    expect(byName.get('newroot/bin')!.data.toString()).toBe('usr/bin');
    expect(byName.get('newroot/pipe')!.mode & 0o170000).toBe(0o010000);
    expect([byName.get('newroot/owned')!.uid, byName.get('newroot/owned')!.gid]).toEqual([1000, 1001]);
    // GNU cpio reads it too
    const list = await execa('cpio', ['-i', '-t', '--quiet', '-F', out]);
    expect(list.stdout.split('\n')).toContain('newroot/usr/bin/app');
    const again = join(tmp.dir, 'root-again.cpio');
    await writeRootCpio(root, 'newroot', again, 1_700_000_000);
    expect((await readFile(again)).equals(buf)).toBe(true);
    await expect(writeRootCpio(root, 'newroot', out, 1_700_000_000)).rejects.toThrow(/EEXIST/);
  });

  it('keeps hard links as links: one inode number, the content once, on the last name', async () => {
    const root = join(tmp.dir, 'linked');
    await mkdir(join(root, 'usr/bin'), { recursive: true });
    await writeFile(join(root, 'usr/bin/perl'), 'interpreter');
    await link(join(root, 'usr/bin/perl'), join(root, 'usr/bin/perl5.36.0'));
    await link(join(root, 'usr/bin/perl'), join(root, 'alias'));
    await writeFile(join(root, 'usr/bin/other'), 'single');
    const out = join(tmp.dir, 'linked.cpio');
    await writeRootCpio(root, 'r', out, 1_700_000_000);
    const [archive] = readNewcArchives(await readFile(out));
    const byName = new Map(archive!.map((m) => [m.name, m]));
    const names = ['r/alias', 'r/usr/bin/perl', 'r/usr/bin/perl5.36.0'].map((n) => byName.get(n)!);
    expect(names.map((m) => m.nlink)).toEqual([3, 3, 3]);
    expect(new Set(names.map((m) => m.ino)).size).toBe(1);
    expect(names.map((m) => m.data.toString())).toEqual(['', '', 'interpreter']);
    expect(byName.get('r/usr/bin/other')).toMatchObject({ nlink: 1 });
    expect(new Set(archive!.map((m) => m.ino)).size).toBe(archive!.length - 2);
    // GNU cpio unpacks them as one file with three names
    const back = join(tmp.dir, 'linked-back');
    await mkdir(back);
    await execa('cpio', ['-i', '-d', '--quiet', '-F', out], { cwd: back });
    const inodes = await Promise.all(['r/alias', 'r/usr/bin/perl', 'r/usr/bin/perl5.36.0'].map(async (n) => (await stat(join(back, n))).ino));
    expect(new Set(inodes).size).toBe(1);
    expect(await readFile(join(back, 'r/alias'), 'utf8')).toBe('interpreter');
    expect((await stat(join(back, 'r/alias'))).nlink).toBe(3);
  });
});

describe('extended attributes', () => {
  const entry = (path: string, xattrs?: Record<string, string>): Entry => ({ path, type: 'file', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, xattrs });

  it('warns once, naming the first file and its attributes, when the image has any', () => {
    const reporter = new RecordingReporter();
    warnXattrs({ reporter, entries: [entry('/usr/bin/a'), entry('/usr/bin/ping', { 'security.capability': 'AQAAAgAgAAAAAAAAAAAAAAAAAAA=' }), entry('/x', { 'user.k': 'dg==' })] });
    expect(reporter.warnings()).toEqual([expect.objectContaining({ code: 'W_PXE_XATTRS', path: '/usr/bin/ping' })]);
    expect(reporter.warnings()[0]!.message).toMatch(/^2 file\(s\) have extended attributes \(\/usr\/bin\/ping: security\.capability\); .* dropped/);
  });

  it('says nothing when no file has any', () => {
    const reporter = new RecordingReporter();
    warnXattrs({ reporter, entries: [entry('/usr/bin/a'), entry('/b', {})] });
    expect(reporter.warnings()).toEqual([]);
  });
});

describe('iPXE from source (--ipxe-src): the bundle\'s binaries', () => {
  it('refuses trees that are not iPXE\'s, naming what is missing', async () => {
    expect(() => checkIpxeSource(join(tmp.dir, 'nope'))).toThrow(/--ipxe-src .*nope: no such directory/);
    await mkdir(join(tmp.dir, 'half/src'), { recursive: true });
    await writeFile(join(tmp.dir, 'half/src/Makefile'), '');
    expect(() => checkIpxeSource(join(tmp.dir, 'half'))).toThrow(/is not an iPXE source tree \(missing src\/include\/ipxe, src\/arch\/x86\)/);
  });

  it('builds undionly.kpxe and ipxe.efi with the bundle\'s script embedded (through aim\'s iPXE cache) and copies them', async () => {
    const top = await fakeIpxeTree(join(tmp.dir, 'ipxe-ok'));
    const out = join(tmp.dir, 'ipxe-out');
    await mkdir(out);
    const cacheDir = join(tmp.dir, 'cache');
    const written = await buildIpxeFromSource(top, embeddedScript(), out, { cacheDir });
    expect(written).toEqual([join(out, 'undionly.kpxe'), join(out, 'ipxe.efi')]);
    expect(await readFile(join(out, 'ipxe.efi'), 'utf8')).toMatch(new RegExp(`^${escape(embeddedScript())}target bin-x86_64-efi/ipxe\\.efi `));
    expect(await readFile(join(out, 'undionly.kpxe'), 'utf8')).toMatch(new RegExp(`^${escape(embeddedScript())}target bin/undionly\\.kpxe `));
    // the second bundle takes them from the cache: make ran once
    const again = join(tmp.dir, 'ipxe-out-2');
    await mkdir(again);
    await buildIpxeFromSource(top, embeddedScript(), again, { cacheDir });
    const trees = await readdir(join(cacheDir, 'ipxe/src'));
    for (const dir of ['bin', 'bin-x86_64-efi']) {
      const calls = (await readFile(join(cacheDir, 'ipxe/src', trees[0]!, dir, 'src/bin/invocations.txt'), 'utf8')).split('\n').filter((l) => l.startsWith('goals='));
      expect(calls).toHaveLength(1);
    }
  });

  it('a failing make gives its exit code, the tail of its output and what to install', async () => {
    const top = await fakeIpxeTree(join(tmp.dir, 'ipxe-fail'), '\t@echo "line 1" >&2; echo "gcc: error: unrecognized option" >&2; exit 3');
    const out = join(tmp.dir, 'fail-out');
    await mkdir(out);
    await expect(buildIpxeFromSource(top, embeddedScript(), out, { cacheDir: join(tmp.dir, 'cache') })).rejects.toMatchObject({
      code: 'E_TOOL_FAILED',
      exitCode: 6,
      // make -j2: both goals' recipes ran, their lines may interleave
      message: expect.stringMatching(/^make failed \(exit 2\): [^]*line 1\n[^]*gcc: error: unrecognized option\n/) as unknown,
      hint: expect.stringMatching(/liblzma-dev/) as unknown,
    });
  });
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
