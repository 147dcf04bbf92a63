import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { warnXattrs } from '../../src/core/bootable/root-cpio.js';
import { bootScript, buildIpxeFromSource, checkIpxeSource, embeddedScript, pxeCommandLine } from '../../src/core/build/pxe.js';
import type { Entry } from '../../src/core/model/entry.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
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

/** A fake iPXE tree whose Makefile records how it was invoked and writes the two targets. */
async function fakeIpxeTree(name: string, makefile: string): Promise<string> {
  const top = join(tmp.dir, name);
  for (const d of ['src/include/ipxe', 'src/arch/x86']) await mkdir(join(top, d), { recursive: true });
  await writeFile(join(top, 'src/Makefile'), makefile);
  return top;
}

describe('iPXE from source (--ipxe-src): the make invocation', () => {
  it('refuses trees that are not iPXE\'s, naming what is missing', async () => {
    expect(() => checkIpxeSource(join(tmp.dir, 'nope'))).toThrow(/--ipxe-src .*nope: no such directory/);
    await mkdir(join(tmp.dir, 'half/src'), { recursive: true });
    await writeFile(join(tmp.dir, 'half/src/Makefile'), '');
    expect(() => checkIpxeSource(join(tmp.dir, 'half'))).toThrow(/is not an iPXE source tree \(missing src\/include\/ipxe, src\/arch\/x86\)/);
  });

  it('runs make -C <tree>/src with both targets and EMBED=<script>, and copies what it built', async () => {
    const top = await fakeIpxeTree('ipxe-ok', [
      'bin/undionly.kpxe bin-x86_64-efi/ipxe.efi:',
      '\tprintf \'%s\\n\' "goals=$(MAKECMDGOALS)" "embed=$(EMBED)" "dir=$(CURDIR)" >> invocations.txt',
      '\tmkdir -p $(dir $@) && cat $(EMBED) > $@ && echo "target $@" >> $@',
      '',
    ].join('\n'));
    const embed = join(tmp.dir, 'embed.ipxe');
    await writeFile(embed, embeddedScript());
    const out = join(tmp.dir, 'ipxe-out');
    await mkdir(out);
    const written = await buildIpxeFromSource(top, embed, out);
    expect(written).toEqual([join(out, 'undionly.kpxe'), join(out, 'ipxe.efi')]);
    const calls = (await readFile(join(top, 'src/invocations.txt'), 'utf8')).trim().split('\n');
    // make runs the recipe once per target of the one invocation
    expect(calls).toEqual([
      'goals=bin/undionly.kpxe bin-x86_64-efi/ipxe.efi', `embed=${embed}`, `dir=${join(top, 'src')}`,
      'goals=bin/undionly.kpxe bin-x86_64-efi/ipxe.efi', `embed=${embed}`, `dir=${join(top, 'src')}`,
    ]);
    expect(await readFile(join(out, 'ipxe.efi'), 'utf8')).toBe(`${embeddedScript()}target bin-x86_64-efi/ipxe.efi\n`);
    expect(await readFile(join(out, 'undionly.kpxe'), 'utf8')).toBe(`${embeddedScript()}target bin/undionly.kpxe\n`);
  });

  it('a failing make gives its exit code, the tail of its output and what to install', async () => {
    const top = await fakeIpxeTree('ipxe-fail', 'bin/undionly.kpxe:\n\t@echo "line 1" >&2; echo "gcc: error: unrecognized option" >&2; exit 3\n');
    const out = join(tmp.dir, 'fail-out');
    await mkdir(out);
    await expect(buildIpxeFromSource(top, join(tmp.dir, 'embed.ipxe'), out)).rejects.toMatchObject({
      code: 'E_TOOL_FAILED',
      exitCode: 6,
      message: expect.stringMatching(/^make failed \(exit 2\): line 1\ngcc: error: unrecognized option\n/) as unknown,
      hint: expect.stringMatching(/liblzma-dev/) as unknown,
    });
  });

  it('a make that succeeds without writing the binaries is an error too', async () => {
    const top = await fakeIpxeTree('ipxe-empty', 'bin/undionly.kpxe bin-x86_64-efi/ipxe.efi:\n\t@true\n');
    const out = join(tmp.dir, 'empty-out');
    await mkdir(out);
    await expect(buildIpxeFromSource(top, join(tmp.dir, 'embed.ipxe'), out)).rejects.toThrow(/wrote no bin\/undionly\.kpxe/);
  });
});
