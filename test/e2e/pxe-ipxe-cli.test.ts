import { execa } from 'execa';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IpxeBuildResult } from '../../src/core/pxe/ipxe-build.js';
import { aim, runJs } from '../helpers/cli.js';
import { fakeIpxeTree } from '../helpers/fake-ipxe.js';
import { tempDir } from '../helpers/tmp.js';

/** `aim pxe ipxe build` as users run it, on a stand-in iPXE tree (the real build is test/boot/ipxe-build.test.ts). */
let tmp: Awaited<ReturnType<typeof tempDir>>;
let tree: string;
beforeAll(async () => {
  tmp = await tempDir('aim-ipxe-cli-');
  tree = await fakeIpxeTree(join(tmp.dir, 'ipxe'));
});
afterAll(async () => tmp.cleanup());

interface ErrorJson {
  error: { code: string; message: string; hint?: string; exitCode: number };
  result: { log: string; tail: string[] } | null;
}

describe('aim pxe ipxe build', () => {
  it('--help explains the targets and the default script, with examples', async () => {
    const r = await execa(process.execPath, [runJs, 'pxe', 'ipxe', 'build', '--help']);
    // (oclif wraps the description at 80 columns)
    expect(r.stdout.replace(/\n\s*/g, '')).toContain('boot.ipxe?mac=${net0/mac}&uuid=${uuid}&buildarch=${buildarch}&platform=${platform}');
    expect(r.stdout).toMatch(/snponly\.efi \(chainload from UEFI PXE/);
    expect(r.stdout).toMatch(/EXAMPLES[^]*--chain http:\/\/192\.0\.2\.10:8080 --out \/srv\/tftp/);
    expect(r.stdout).toMatch(/--target=<option>\.*\s/);
  });

  it('builds the targets from AIM_IPXE_SRC into --out and reports each file; the same build again is a cache hit', async () => {
    const cache = join(tmp.dir, 'cache');
    const out = join(tmp.dir, 'out');
    const env = { AIM_IPXE_SRC: tree, AIM_CACHE_DIR: cache };
    const r = await aim<IpxeBuildResult>(['pxe', 'ipxe', 'build', '--chain', 'http://192.0.2.10:8080/', '--target', 'efi', '--out', out], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ source: { kind: 'tree', path: tree }, script: { chain: 'http://192.0.2.10:8080' }, cacheDir: cache, outDir: out });
    expect(r.json.targets).toEqual([expect.objectContaining({ target: 'efi', cached: false })]);
    expect(r.json.targets[0]!.files.map((f) => [f.name, f.outPath])).toEqual([['snponly.efi', join(out, 'snponly.efi')], ['ipxe.efi', join(out, 'ipxe.efi')]]);
    expect(await readFile(join(out, 'snponly.efi'), 'utf8')).toContain('chain http://192.0.2.10:8080/boot.ipxe?mac=${net0/mac}&uuid=${uuid}&buildarch=${buildarch}&platform=${platform} || goto no_boot');
    const again = await aim<IpxeBuildResult>(['pxe', 'ipxe', 'build', '--chain', 'http://192.0.2.10:8080', '--target', 'efi'], { env });
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.json.targets[0]!.cached).toBe(true);
    expect(again.json.build).toBeUndefined();
    // without --json: a table and where the binaries are
    const text = await execa(process.execPath, [runJs, 'pxe', 'ipxe', 'build', '--chain', 'http://192.0.2.10:8080', '--target', 'efi'], { env: { ...process.env, ...env } });
    expect(text.stdout).toMatch(/^TARGET\s+FILE\s+SIZE\s+FROM\s+PATH\nefi\s+snponly\.efi\s+[\d.]+ (B|KiB)\s+cached\s+\S+\/snponly\.efi\n/);
    expect(text.stdout).toMatch(/\nfrom the cache in [\d.]+ s$/);
  });

  it('--embed puts your own script in instead', async () => {
    const script = join(tmp.dir, 'site.ipxe');
    await writeFile(script, '#!ipxe\ndhcp\nchain http://boot.example.org/menu.ipxe\n');
    const r = await aim<IpxeBuildResult>(['pxe', 'ipxe', 'build', '--ipxe-src', tree, '--embed', script, '--target', 'bios', '--cache-dir', join(tmp.dir, 'cache')]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json.script).toMatchObject({ embed: script });
    expect(await readFile(r.json.targets[0]!.files[0]!.path, 'utf8')).toMatch(/^#!ipxe\ndhcp\nchain http:\/\/boot\.example\.org\/menu\.ipxe\ntarget bin\/undionly\.kpxe/);
  });

  it.each([
    [['--chain', 'http://h:1'], /no iPXE source: give --ipxe-src or set AIM_IPXE_SRC/],
    [['--ipxe-src', '/nonexistent/ipxe'], /no script to embed: give --chain URL/],
    [['--ipxe-src', '/nonexistent/ipxe', '--chain', 'http://h:1'], /--ipxe-src \/nonexistent\/ipxe: no such file or directory/],
    [['--ipxe-src', '/nonexistent/ipxe', '--chain', 'http://h/x y'], /whitespace or control characters/],
    [['--ipxe-src', '/nonexistent/ipxe', '--chain', 'http://h', '--embed', '/x'], /--chain=http:\/\/h cannot also be provided when using --embed/],
    [['--ipxe-src', '/nonexistent/ipxe', '--chain', 'http://h', '--target', 'floppy'], /Expected --target=floppy to be one of: efi, bios, usb, iso/],
  ])('usage errors are one JSON document with exit 2: %j', async (args, message) => {
    const r = await aim<ErrorJson>(['pxe', 'ipxe', 'build', ...args], { env: { AIM_IPXE_SRC: '' } });
    expect(r.exitCode).toBe(2);
    expect(r.json.error.code).toBe('E_CONFIG');
    expect(r.json.error.message).toMatch(message);
  });

  it('a machine without the compiler toolchain: exit 5, every missing tool and its Debian package', async () => {
    const r = await aim<ErrorJson>(['pxe', 'ipxe', 'build', '--ipxe-src', tree, '--chain', 'http://h:1', '--target', 'iso', '--cache-dir', join(tmp.dir, 'cache-notools')], { env: { PATH: join(tmp.dir, 'empty-path') } });
    expect(r.exitCode).toBe(5);
    expect(r.json.error).toMatchObject({ code: 'E_TOOL_MISSING' });
    expect(r.json.error.message).toMatch(/^make, gcc, perl, as, ld, ar, objcopy, nm, objdump, xorrisofs, mformat, mcopy not found: needed to build iPXE from source \(iso\)$/);
    expect(r.json.error.hint).toBe('apt-get install make gcc perl binutils xorriso mtools (or run: npm run setup)');
  });

  it('a failing build: exit 6, the tail of the output, and the whole log named in --json\'s result', async () => {
    const broken = await fakeIpxeTree(join(tmp.dir, 'broken'), '\t@echo "  [BUILD] $@"; echo "drivers/net/x.c:9: error: expected \';\'" >&2; exit 1');
    const r = await aim<ErrorJson>(['pxe', 'ipxe', 'build', '--ipxe-src', broken, '--chain', 'http://h:1', '--target', 'bios', '--cache-dir', join(tmp.dir, 'cache')]);
    expect(r.exitCode).toBe(6);
    expect(r.json.error.code).toBe('E_TOOL_FAILED');
    expect(r.json.error.message).toMatch(/^make failed \(exit 2\): [^]*drivers\/net\/x\.c:9: error: expected ';'/);
    expect(r.json.result!.tail).toContain('drivers/net/x.c:9: error: expected \';\'');
    expect(await readFile(r.json.result!.log, 'utf8')).toMatch(/\[BUILD\] bin\/undionly\.kpxe/);
  });
  it('Ctrl-C mid-build: exit 130 with one JSON document, make and what it ran are stopped, nothing is cached or copied out', async () => {
    const slow = await fakeIpxeTree(join(tmp.dir, 'slow'), '\t@echo "  [BUILD] $@"; sleep 120 & echo $$! >> $(CURDIR)/sleeper.pid; wait');
    const cache = join(tmp.dir, 'cache-ctrl-c');
    const out = join(tmp.dir, 'out-ctrl-c');
    const child = execa(process.execPath, [runJs, 'pxe', 'ipxe', 'build', '--ipxe-src', slow, '--chain', 'http://h:1', '--target', 'efi', '--cache-dir', cache, '--out', out, '--json'], { reject: false, timeout: 120_000 });
    const pidFile = () => join(cache, 'ipxe/src', readdirSync(join(cache, 'ipxe/src')).find((d) => /^[0-9a-f]{64}$/.test(d)) ?? '-', 'bin-x86_64-efi/src/sleeper.pid');
    const deadline = Date.now() + 60_000;
    while (!(existsSync(join(cache, 'ipxe/src')) && existsSync(pidFile())) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(pidFile()), 'make started its recipe').toBe(true);
    child.kill('SIGINT');
    const res = await child;
    expect(res.exitCode, res.stderr).toBe(130);
    expect(JSON.parse(res.stdout)).toMatchObject({ error: { code: 'E_INTERRUPTED', exitCode: 130 } });
    const pids = (await readFile(pidFile(), 'utf8')).trim().split('\n');
    const gone = async () => (await Promise.all(pids.map((pid) => execa('kill', ['-0', pid], { reject: false })))).every((r) => r.exitCode !== 0);
    const until = Date.now() + 15_000;
    while (!(await gone()) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(await gone()).toBe(true);
    expect(existsSync(join(cache, 'ipxe/bin')) ? readdirSync(join(cache, 'ipxe/bin')) : []).toEqual([]);
    expect(existsSync(out)).toBe(false);
  });
});
