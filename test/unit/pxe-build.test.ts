import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { warnXattrs } from '../../src/core/bootable/root-cpio.js';
import type { BootPlan } from '../../src/core/bootable/plan.js';
import { bootScript, buildIpxeFromSource, embeddedScript, pxeCommandLine } from '../../src/core/build/pxe.js';
import { kernelCommandLine } from '../../src/core/build/raw.js';
import { checkIpxeSource } from '../../src/core/pxe/ipxe-source.js';
import type { Entry } from '../../src/core/model/entry.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { fakeIpxeTree } from '../helpers/fake-ipxe.js';
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
    // a disk's loader entry takes extra arguments the same way
    const plan = { ids: { rootUuid: '0b3c8d4e-1111-4222-8333-444455556666' }, platform: 'qemu' } as unknown as BootPlan;
    expect(kernelCommandLine(plan)).toBe('root=UUID=0b3c8d4e-1111-4222-8333-444455556666 rw console=ttyS0,115200 panic=-1');
    expect(kernelCommandLine(plan, 'loglevel=4')).toBe('root=UUID=0b3c8d4e-1111-4222-8333-444455556666 rw console=ttyS0,115200 panic=-1 loglevel=4');
  });

  it('the embedded script of source-built iPXE configures DHCP and chains to boot.ipxe', () => {
    const s = embeddedScript();
    expect(s).toMatch(/^#!ipxe\ndhcp /);
    expect(s).toContain('chain tftp://${next-server}/boot.ipxe');
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

  it('the build\'s signal reaches make: aborting stops it with the signal\'s error (E_CANCELLED) and caches nothing', async () => {
    const top = await fakeIpxeTree(join(tmp.dir, 'ipxe-slow'), '\t@echo "  [BUILD] $@"; sleep 60');
    const out = join(tmp.dir, 'slow-out');
    await mkdir(out);
    const cacheDir = join(tmp.dir, 'cache-slow');
    const ac = new AbortController();
    const reporter = { emit: (e: { type: string }) => void (e.type === 'progress' && ac.abort()) };
    const started = Date.now();
    await expect(buildIpxeFromSource(top, embeddedScript(), out, { cacheDir, signal: ac.signal, reporter })).rejects.toMatchObject({ code: 'E_CANCELLED' });
    // make's sleep 60 did not run out: the abort stopped it
    expect(Date.now() - started).toBeLessThan(45_000);
    expect(await readdir(out)).toEqual([]);
    expect(await readdir(join(cacheDir, 'ipxe/bin')).catch(() => [])).toEqual([]);
  });
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
