import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { appendFile, chmod, mkdir, readFile, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIpxe, type IpxeBuildRequest } from '../../src/core/pxe/ipxe-build.js';
import { ipxeCacheLayout, withIpxeLock } from '../../src/core/pxe/ipxe-cache.js';
import { chainBootUrl, readEmbedFile, renderEmbeddedScript, resolveEmbeddedScript } from '../../src/core/pxe/ipxe-script.js';
import { hashIpxeTree, identifyIpxeSource } from '../../src/core/pxe/ipxe-source.js';
import { makeGoals } from '../../src/core/pxe/ipxe-targets.js';
import { checkIpxeToolchain } from '../../src/core/pxe/ipxe-toolchain.js';
import { InterruptedError } from '../../src/lib/errors.js';
import { RecordingReporter, silentReporter } from '../../src/lib/reporter.js';
import { fakeIpxeTree } from '../helpers/fake-ipxe.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-ipxe-');
});
afterAll(async () => tmp.cleanup());

const SCRIPT = '#!ipxe\necho one\n';
let n = 0;
/** A fresh fake tree and cache for one test. */
async function setup(recipe?: string): Promise<{ top: string; cacheDir: string; req: (over?: Partial<IpxeBuildRequest>) => IpxeBuildRequest }> {
  const dir = join(tmp.dir, `case-${++n}`);
  const top = await fakeIpxeTree(join(dir, 'ipxe'), recipe);
  const cacheDir = join(dir, 'cache');
  return { top, cacheDir, req: (over = {}) => ({ source: top, script: SCRIPT, targets: ['efi'], cacheDir, ...over }) };
}
const invocations = async (tree: string) => (await readFile(join(tree, 'src/bin/invocations.txt'), 'utf8')).trim().split('\n');

describe('the default embedded script', () => {
  it('chains to boot.ipxe on the server with the machine\'s MAC, UUID, architecture and platform', async () => {
    const s = await renderEmbeddedScript('http://192.0.2.10:8080');
    expect(s.startsWith('#!ipxe\n')).toBe(true);
    expect(s).toMatch(/^dhcp \|\| goto no_address$/m);
    expect(s).toContain('\nchain http://192.0.2.10:8080/boot.ipxe?mac=${net0/mac}&uuid=${uuid}&buildarch=${buildarch}&platform=${platform} || goto no_boot\n');
    // a failure says so and tries again, never falls through to nothing
    expect(s).toMatch(/^sleep 10 \|\| shell\ngoto start$/m);
    expect(s).not.toMatch(/\{\{|\}\}/);
  });

  it('keeps a path prefix, drops trailing slashes, and accepts https and IPv6 hosts', () => {
    expect(chainBootUrl('https://boot.example.org/aim/').bootUrl).toBe('https://boot.example.org/aim/boot.ipxe?mac=${net0/mac}&uuid=${uuid}&buildarch=${buildarch}&platform=${platform}');
    expect(chainBootUrl('http://[2001:db8::1]:8080').server).toBe('http://[2001:db8::1]:8080');
  });

  it.each([
    ['http://h/\nshell', /whitespace or control/],
    ['http://h/ x', /whitespace or control/],
    ['http://h/${net0/ip}', /expand or quote/],
    ['http://h/"x', /expand or quote/],
    ['tftp://h/', /scheme tftp/],
    ['http://user:pw@h/', /credentials/],
    ['http://h/?a=1', /no query or fragment/],
    ['http://h/#x', /no query or fragment/],
    ['192.0.2.10:8080', /scheme|not a URL/],
    ['', /not a URL/],
  ])('refuses --chain %j', (url, why) => {
    expect(() => chainBootUrl(url)).toThrow(why);
  });

  it('--embed takes a small iPXE script only, and never both --embed and --chain', async () => {
    const ok = join(tmp.dir, 'ok.ipxe');
    await writeFile(ok, '#!ipxe\nshell\n');
    expect(await readEmbedFile(ok)).toBe('#!ipxe\nshell\n');
    const notScript = join(tmp.dir, 'not.ipxe');
    await writeFile(notScript, 'echo hi\n');
    await expect(readEmbedFile(notScript)).rejects.toThrow(/not an iPXE script/);
    const big = join(tmp.dir, 'big.ipxe');
    await writeFile(big, `#!ipxe\n${'#'.repeat(70_000)}\n`);
    await expect(readEmbedFile(big)).rejects.toThrow(/more than 65536/);
    await expect(readEmbedFile(join(tmp.dir, 'none.ipxe'))).rejects.toThrow(/no such file/);
    await expect(resolveEmbeddedScript({ embed: ok, chain: 'http://h' })).rejects.toThrow(/not both/);
    await expect(resolveEmbeddedScript({})).rejects.toMatchObject({ code: 'E_CONFIG', message: expect.stringMatching(/--chain URL .* or --embed FILE/) as unknown });
    expect((await resolveEmbeddedScript({ chain: 'http://h:1/' })).origin).toEqual({ chain: 'http://h:1' });
  });
});

describe('targets and toolchain', () => {
  it('asks make for each goal once, BIOS first, media inputs included', () => {
    expect(makeGoals(['efi', 'bios'])).toEqual(['bin/undionly.kpxe', 'bin/ipxe.lkrn', 'bin/1af41000.rom', 'bin-x86_64-efi/snponly.efi', 'bin-x86_64-efi/ipxe.efi']);
    expect(makeGoals(['iso', 'usb'])).toEqual(['bin/ipxe.lkrn', 'bin-x86_64-efi/ipxe.efi']);
  });

  it('names every missing tool and the Debian packages that provide them, at once', () => {
    const only = (...present: string[]) => (t: string) => (present.includes(t) ? `/usr/bin/${t}` : undefined);
    expect(() => checkIpxeToolchain(['efi'], only('make', 'perl', 'as', 'ld', 'ar', 'objcopy', 'nm', 'objdump'))).toThrow(expect.objectContaining({
      code: 'E_TOOL_MISSING',
      exitCode: 5,
      message: 'gcc not found: needed to build iPXE from source (efi)',
      hint: 'apt-get install gcc (or run: npm run setup)',
    }));
    const compiler = ['gcc', 'make', 'perl', 'as', 'ld', 'ar', 'objcopy', 'nm', 'objdump'];
    expect(() => checkIpxeToolchain(['iso', 'usb'], only(...compiler, 'mcopy', 'genisoimage'))).toThrow(expect.objectContaining({
      message: 'xorrisofs, mformat, syslinux not found: needed to build iPXE from source (iso, usb)',
      hint: 'apt-get install xorriso mtools syslinux (or run: npm run setup)',
    }));
    expect(() => checkIpxeToolchain(['iso', 'usb'], only(...compiler, 'mformat', 'mcopy', 'xorrisofs', 'syslinux'))).not.toThrow();
  });
});

describe('source hash', () => {
  it('is the same for the same files, whatever their times and build outputs; content, names and execute bits count', async () => {
    const { top } = await setup();
    const first = await hashIpxeTree(top);
    await utimes(join(top, 'src/Makefile'), 1_000_000, 1_000_000);
    await mkdir(join(top, 'src/bin-x86_64-efi'), { recursive: true });
    await writeFile(join(top, 'src/bin-x86_64-efi/ipxe.efi'), 'built');
    await writeFile(join(top, 'src/util/zbin64'), 'built tool');
    await mkdir(join(top, '.git'));
    await writeFile(join(top, '.git/HEAD'), 'ref: refs/heads/main\n');
    expect(await hashIpxeTree(top)).toBe(first);
    await chmod(join(top, 'src/util/genfsimg'), 0o644);
    const noExec = await hashIpxeTree(top);
    expect(noExec).not.toBe(first);
    await chmod(join(top, 'src/util/genfsimg'), 0o755);
    await appendFile(join(top, 'src/include/ipxe/version.h'), ' ');
    expect(await hashIpxeTree(top)).not.toBe(first);
    expect(new Set([first, noExec, await hashIpxeTree(top)]).size).toBe(3);
  });

  it('a tarball is named by its sha256; a git checkout by its files and HEAD\'s commit', async () => {
    const { top } = await setup();
    const commit = 'a'.repeat(40);
    await mkdir(join(top, '.git/refs/heads'), { recursive: true });
    await writeFile(join(top, '.git/HEAD'), 'ref: refs/heads/main\n');
    await writeFile(join(top, '.git/packed-refs'), `# pack-refs\n${commit} refs/heads/main\n`);
    expect(await identifyIpxeSource(top)).toMatchObject({ kind: 'tree', path: top, gitCommit: commit });
    const tarball = join(tmp.dir, `src-${n}.tar.gz`);
    await execa('tar', ['-czf', tarball, '-C', top, '.']);
    const sha = (await execa('sha256sum', [tarball])).stdout.split(' ')[0];
    expect(await identifyIpxeSource(tarball)).toEqual({ kind: 'tarball', path: tarball, sha256: sha });
  });

  it('refuses links out of the tree, special files, and what is not iPXE', async () => {
    const { top } = await setup();
    await symlink('/etc/passwd', join(top, 'src/include/ipxe/passwd.h'));
    await expect(hashIpxeTree(top)).rejects.toMatchObject({ code: 'E_IPXE_SOURCE_LINK', message: expect.stringContaining('src/include/ipxe/passwd.h links outside the tree (to /etc/passwd)') as unknown });
    await rm(join(top, 'src/include/ipxe/passwd.h'));
    await symlink('../../../..', join(top, 'src/include/ipxe/up'));
    await expect(hashIpxeTree(top)).rejects.toMatchObject({ code: 'E_IPXE_SOURCE_LINK' });
    await rm(join(top, 'src/include/ipxe/up'));
    await symlink('../arch', join(top, 'src/include/arch'));
    await expect(hashIpxeTree(top)).resolves.toMatch(/^[0-9a-f]{64}$/);
    await execa('mkfifo', [join(top, 'src/fifo')]);
    await expect(hashIpxeTree(top)).rejects.toMatchObject({ code: 'E_IPXE_SOURCE_SPECIAL' });
    await expect(identifyIpxeSource(join(tmp.dir, 'nope'))).rejects.toThrow(/--ipxe-src .*nope: no such file or directory/);
    await mkdir(join(tmp.dir, 'half/src'), { recursive: true });
    await writeFile(join(tmp.dir, 'half/src/Makefile'), '');
    await expect(identifyIpxeSource(join(tmp.dir, 'half'))).rejects.toThrow(/is not an iPXE source tree \(missing src\/include\/ipxe, src\/arch\/x86\)/);
  });
});

describe('buildIpxe with a stand-in iPXE tree', () => {
  it('runs make -j2 in private copies (one per build directory) with EMBED=<script>, caches by (source, script, target), and the second build is a hit', async () => {
    const { top, cacheDir, req } = await setup();
    const reporter = new RecordingReporter();
    const out = join(tmp.dir, `out-${n}`);
    const first = await buildIpxe(req({ targets: ['efi', 'bios'], outDir: out }), reporter);
    expect(first.targets.map((t) => [t.target, t.cached, t.files.map((f) => f.name)])).toEqual([
      ['efi', false, ['snponly.efi', 'ipxe.efi']],
      ['bios', false, ['undionly.kpxe', 'ipxe.lkrn', '1af41000.rom']],
    ]);
    const base = join(cacheDir, 'ipxe/src', first.source.sha256);
    expect(first.build!.trees).toEqual([join(base, 'bin'), join(base, 'bin-x86_64-efi')]);
    expect(existsSync(join(top, 'src/bin'))).toBe(false); // the user's tree is left alone
    const embed = join(cacheDir, 'ipxe/scripts', first.script.sha256, 'aim.ipxe');
    const [bios, efi] = await Promise.all(first.build!.trees.map(invocations));
    expect(bios![0]).toBe(`goals=bin/undionly.kpxe bin/ipxe.lkrn bin/1af41000.rom embed=${embed} dir=${join(base, 'bin/src')}`);
    expect(efi![0]).toBe(`goals=bin-x86_64-efi/snponly.efi bin-x86_64-efi/ipxe.efi embed=${embed} dir=${join(base, 'bin-x86_64-efi/src')}`);
    expect([...bios!, ...efi!].filter((c) => c.startsWith('built ')).map((c) => c.split(' ')[2])).toEqual(['-j2', '-j2', '-j2', '-j2', '-j2']);
    for (const f of first.targets.flatMap((t) => t.files)) {
      const content = await readFile(f.outPath!, 'utf8');
      expect(content.startsWith(SCRIPT)).toBe(true);
      expect(await readFile(f.path, 'utf8')).toBe(content);
      expect(f.outPath).toBe(join(out, f.name));
    }
    expect(reporter.events).toContainEqual({ type: 'progress', stage: 'ipxe', done: 5, unit: 'files' });

    const again = await buildIpxe(req({ targets: ['bios', 'efi'] }), silentReporter);
    expect(again.targets.map((t) => [t.target, t.cached])).toEqual([['efi', true], ['bios', true]]);
    expect(again.build).toBeUndefined();
    expect(again.targets.map((t) => t.key)).toEqual(first.targets.map((t) => t.key));
    expect((await invocations(first.build!.trees[1]!)).filter((c) => c.startsWith('goals=')).length).toBe(1);
  });

  it('another script or target is another key; the same work tree is reused and only what is missing is built', async () => {
    const { req } = await setup();
    const efi = await buildIpxe(req(), silentReporter);
    const other = await buildIpxe(req({ script: '#!ipxe\necho two\n', targets: ['efi', 'iso'] }), silentReporter);
    expect(other.targets.map((t) => t.cached)).toEqual([false, false]);
    expect(other.targets[0]!.key).not.toBe(efi.targets[0]!.key);
    expect([...other.build!.trees].sort()).toEqual([efi.build!.trees[0]!.replace(/bin-x86_64-efi$/, 'bin'), efi.build!.trees[0]]);
    expect(await readFile(other.targets[0]!.files[0]!.path, 'utf8')).toMatch(/^#!ipxe\necho two\ntarget bin-x86_64-efi\/snponly\.efi/);
    // the ISO: genfsimg over the BIOS and UEFI binaries of this build
    const iso = await readFile(other.targets[1]!.files[0]!.path, 'utf8');
    expect(iso).toMatch(/^#!ipxe\necho two\ntarget bin\/ipxe\.lkrn [^]*#!ipxe\necho two\ntarget bin-x86_64-efi\/ipxe\.efi [^]*media \S+\/ipxe\.iso\n$/);
    const usb = await buildIpxe(req({ script: '#!ipxe\necho two\n', targets: ['usb'] }), silentReporter);
    expect(usb.targets[0]!.files.map((f) => f.name)).toEqual(['ipxe.usb']);
    // genfsimg makes a FAT image without a partition table for a name ending in .sdsk
    expect(await readFile(usb.targets[0]!.files[0]!.path, 'utf8')).toMatch(/media \S+\/ipxe\.sdsk\n$/);
    // the first script's binary is still cached, untouched
    const back = await buildIpxe(req(), silentReporter);
    expect(back.targets[0]).toMatchObject({ cached: true, key: efi.targets[0]!.key });
    expect(await readFile(back.targets[0]!.files[0]!.path, 'utf8')).toMatch(/^#!ipxe\necho one\n/);
    // the builds had a fixed SOURCE_DATE_EPOCH: the newest time of the sources, not of what was built
    expect(await readFile(back.targets[0]!.files[0]!.path, 'utf8')).toBe(await readFile(efi.targets[0]!.files[0]!.path, 'utf8'));
    expect((await readFile(other.targets[0]!.files[0]!.path, 'utf8')).match(/epoch=(\d+)/)![1]).toBe((await readFile(efi.targets[0]!.files[0]!.path, 'utf8')).match(/epoch=(\d+)/)![1]);
  });

  it('a damaged cache entry is built again', async () => {
    const { req } = await setup();
    const first = await buildIpxe(req(), silentReporter);
    await writeFile(first.targets[0]!.files[1]!.path, 'tampered');
    const again = await buildIpxe(req(), silentReporter);
    expect(again.targets[0]!.cached).toBe(false);
    expect(await readFile(again.targets[0]!.files[1]!.path, 'utf8')).toMatch(/^#!ipxe\necho one\ntarget bin-x86_64-efi\/ipxe\.efi/);
  });

  it('builds from a tarball with one top directory (GitHub\'s archives), its commit from the tree when it is a checkout', async () => {
    const { top, req } = await setup();
    const parent = join(tmp.dir, `tarball-${n}`);
    await mkdir(parent);
    await execa('cp', ['-a', top, join(parent, 'ipxe-0123abc')]);
    const tarball = join(tmp.dir, `ipxe-${n}.tar.gz`);
    await execa('tar', ['-czf', tarball, '-C', parent, 'ipxe-0123abc']);
    const r = await buildIpxe(req({ source: tarball }), silentReporter);
    expect(r.source.kind).toBe('tarball');
    expect(r.build!.trees).toEqual([join(req().cacheDir, 'ipxe/src', r.source.sha256, 'bin-x86_64-efi')]);
    expect(await readFile(r.targets[0]!.files[0]!.path, 'utf8')).toMatch(/^#!ipxe\necho one\ntarget bin-x86_64-efi\/snponly\.efi git= epoch=\d+/);
    // a tarball of something else
    const junk = join(tmp.dir, `junk-${n}.tar`);
    await execa('tar', ['-cf', junk, '-C', join(top, 'src'), 'include']);
    await expect(buildIpxe(req({ source: junk }), silentReporter)).rejects.toThrow(/is not a tarball of an iPXE source tree/);
    // a checkout's commit goes into the version string
    await mkdir(join(top, '.git'));
    await writeFile(join(top, '.git/HEAD'), `${'b'.repeat(40)}\n`);
    const git = await buildIpxe(req(), silentReporter);
    expect(await readFile(git.targets[0]!.files[0]!.path, 'utf8')).toContain(`git=${'b'.repeat(40)}`);
  });

  it('a failing build: make\'s exit code, the tail of its output, the whole log, nothing cached', async () => {
    const { req, cacheDir } = await setup('\t@echo "  [BUILD] $@"; for i in 1 2 3 4 5 6 7 8; do echo "noise $$i" >&2; done; echo "drivers/x.c:1:1: error: no compiler here" >&2; exit 3');
    const err = await buildIpxe(req(), silentReporter).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({
      code: 'E_TOOL_FAILED',
      exitCode: 6,
      // make -j2 runs both goals' recipes: the two failures may interleave
      message: expect.stringMatching(/^make failed \(exit 2\): [^]*drivers\/x\.c:1:1: error: no compiler here\n[^]*make: \*\*\* \[Makefile:\d+: bin-x86_64-efi\/(snponly|ipxe)\.efi\] Error 3/) as unknown,
      hint: expect.stringMatching(/liblzma-dev\); the whole output is in .*aim-build\.log$/) as unknown,
    });
    const { log, tail } = (err as { result: { log: string; tail: string[] } }).result;
    expect(tail).toContain('noise 1');
    // make's stdout ([BUILD] lines) and stderr reach the log through pipes of their own: each line
    // whole, but in no set order between the two (with -j2 both goals' recipes run at once)
    const text = await readFile(log, 'utf8');
    expect(text).toMatch(/^\$ \S*make -j2 bin-x86_64-efi\/snponly\.efi /);
    expect(text).toContain('  [BUILD] bin-x86_64-efi/snponly.efi\n');
    expect(text).toContain('drivers/x.c:1:1: error: no compiler here\n');
    expect(existsSync(ipxeCacheLayout(cacheDir).bin) ? await readdir(ipxeCacheLayout(cacheDir).bin) : []).toEqual([]);
  });

  it('a build that writes nothing is an error too', async () => {
    const { req } = await setup('\t@true');
    await expect(buildIpxe(req(), silentReporter)).rejects.toThrow(/iPXE's build succeeded but wrote no bin-x86_64-efi\/snponly\.efi/);
  });

  it('cancelling stops make and what it runs, and caches nothing', async () => {
    const { req, cacheDir } = await setup('\t@sleep 60 & echo $$! >> $(CURDIR)/sleeper.pid; echo "  [BUILD] $@"; wait');
    const ac = new AbortController();
    const reporter = new RecordingReporter();
    const run = buildIpxe(req({ signal: ac.signal }), { emit: (e) => (reporter.emit(e), e.type === 'progress' && ac.abort()) });
    const started = Date.now();
    await expect(run).rejects.toMatchObject({ code: 'E_CANCELLED' });
    expect(Date.now() - started).toBeLessThan(30_000);
    const tree = join(cacheDir, 'ipxe/src', (await readdir(join(cacheDir, 'ipxe/src')))[0]!, 'bin-x86_64-efi');
    const pids = (await readFile(join(tree, 'src/sleeper.pid'), 'utf8')).trim().split('\n');
    const gone = async () => (await Promise.all(pids.map((pid) => execa('kill', ['-0', pid], { reject: false })))).every((r) => r.exitCode !== 0);
    const deadline = Date.now() + 15_000;
    while (!(await gone()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await gone()).toBe(true);
    expect(existsSync(join(cacheDir, 'ipxe/bin')) ? await readdir(join(cacheDir, 'ipxe/bin')) : []).toEqual([]);
  });

  it('a signal aborted before the build starts: the caller\'s reason (the CLI\'s Ctrl-C), and make never runs', async () => {
    const { req, cacheDir } = await setup();
    const ac = new AbortController();
    ac.abort(new InterruptedError('interrupted (Ctrl-C)'));
    await expect(buildIpxe(req({ signal: ac.signal }), silentReporter)).rejects.toMatchObject({ code: 'E_INTERRUPTED', exitCode: 130 });
    expect(existsSync(join(cacheDir, 'ipxe/src'))).toBe(false);
  });

  it('builds in one source take turns: the second waits for the first and then finds its binaries', async () => {
    const { req } = await setup();
    const reporter = new RecordingReporter();
    const [a, b] = await Promise.all([buildIpxe(req(), silentReporter), buildIpxe(req(), reporter)]);
    expect([a.targets[0]!.cached, b.targets[0]!.cached].sort()).toEqual([false, true]);
    expect(a.targets[0]!.key).toBe(b.targets[0]!.key);
  });

  it('a lock left by a process that is gone is taken over', async () => {
    const { cacheDir } = await setup();
    const layout = ipxeCacheLayout(cacheDir);
    await mkdir(layout.locks, { recursive: true });
    const dead = execa('true');
    await dead;
    await writeFile(join(layout.locks, 'x.lock'), JSON.stringify({ pid: dead.pid }));
    expect(await withIpxeLock(layout, 'x', silentReporter, undefined, async () => 'ran')).toBe('ran');
    expect(existsSync(join(layout.locks, 'x.lock'))).toBe(false);
  });

  it('refuses no source and no target', async () => {
    const { req } = await setup();
    await expect(buildIpxe(req({ source: undefined }), silentReporter)).rejects.toThrow(/no iPXE source: give --ipxe-src or set AIM_IPXE_SRC/);
    await expect(buildIpxe(req({ targets: [] }), silentReporter)).rejects.toThrow(/no iPXE target given/);
  });
});
