import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { chmod, chown, link, mkdir, open, readFile, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Entry } from '../../src/core/model/entry.js';
import { openRepository } from '../../src/core/repository/repository.js';
import { aim, runJs } from '../helpers/cli.js';
import { writeFakeKernelTree } from '../helpers/fake-kernel.js';
import { readNewcArchives, type NewcEntry } from '../helpers/newc.js';
import { alive, childProcesses, pollFor } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * `aim build --format pxe` writes the root cpio from the manifest: no exported tree, so an
 * ordinary user (no CAP_MKNOD, CAP_CHOWN, CAP_DAC_OVERRIDE) builds an image with device nodes
 * and other owners, and gets the same bytes as root. Ctrl-C stops it mid-way, with its zstd.
 */

interface BuildJson {
  outDir: string;
  artifacts: { path: string; sha256: string }[];
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
const run = <T = Record<string, unknown>>(args: string[], unprivileged = false) => aim<T>([...args, '--repo', repo], { unprivileged });
const SPARSE = 64 * 2 ** 20;

async function writeAt(path: string, data: Buffer, position: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(data, 0, data.length, position);
  } finally {
    await fh.close();
  }
}

beforeAll(async () => {
  tmp = await tempDir('aim-pxe-initrd-');
  repo = join(tmp.dir, 'repo');
  expect((await run(['repo', 'init'])).exitCode).toBe(0);
  // as root: a tree with device nodes, other owners, setuid, hard and symbolic links, a fifo, holes
  const src = await writeFakeKernelTree(join(tmp.dir, 'src'), '6.1.0-test');
  await writeFile(join(src, 'app'), '#!/bin/sh\n', { mode: 0o755 });
  await mkdir(join(src, 'dev'));
  await execa('mknod', ['-m', '600', join(src, 'dev/console'), 'c', '5', '1']);
  await execa('mknod', ['-m', '660', join(src, 'dev/sda'), 'b', '8', '0']);
  await chown(join(src, 'dev/sda'), 0, 6);
  await mkdir(join(src, 'usr/bin'), { recursive: true });
  await writeFile(join(src, 'usr/bin/tool'), 'setuid tool');
  await chown(join(src, 'usr/bin/tool'), 1000, 1001);
  await chmod(join(src, 'usr/bin/tool'), 0o4750);
  await writeFile(join(src, 'usr/bin/perl'), 'interpreter', { mode: 0o755 });
  await link(join(src, 'usr/bin/perl'), join(src, 'usr/bin/perl5.36.0'));
  await symlink('usr/bin', join(src, 'bin'));
  await execa('mkfifo', [join(src, 'fifo')]);
  await mkdir(join(src, 'var'));
  const img = join(src, 'var/disk.img');
  await writeFile(img, '');
  await truncate(img, SPARSE);
  await writeAt(img, Buffer.alloc(4096, 'a'), 0);
  await writeAt(img, Buffer.alloc(4096, 'b'), SPARSE - 4096);
  expect((await run(['image', 'import', src, '--tag', 'fixture/pxe:1'])).exitCode).toBe(0);
}, 300_000);
afterAll(async () => tmp.cleanup());

const build = (out: string, unprivileged: boolean, image = 'fixture/pxe:1') =>
  run<BuildJson>(['build', image, '--format', 'pxe', '--entrypoint', '/app', '--out', join(tmp.dir, out)], unprivileged);

async function rootArchive(bundle: BuildJson): Promise<Map<string, NewcEntry>> {
  const initrd = bundle.artifacts.find((a) => a.path.endsWith('/initrd.img'))!.path;
  const cpio = (await execa('zstd', ['-dc', initrd], { encoding: 'buffer', maxBuffer: 1 << 30 })).stdout;
  const [core, root, ...rest] = readNewcArchives(Buffer.from(cpio));
  expect(core!.map((m) => m.name)).toContain('bin/busybox');
  expect(rest).toEqual([]);
  return new Map(root!.map((m) => [m.name, m]));
}

const TYPE_BITS: Record<string, number> = { file: 0o100000, hardlink: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 };

describe('the PXE initrd from the manifest, without privileges', () => {
  it('an ordinary user builds it, with every owner, mode, device, link and hole of the image', async () => {
    const built = await build('user', true);
    expect(built.exitCode, built.stderr).toBe(0);
    const root = await rootArchive(built.json);
    const r = await openRepository(repo);
    let entries: Entry[];
    try {
      entries = await r.catalog.entries((await r.catalog.resolve('fixture/pxe:1'))!);
    } finally {
      await r.close();
    }
    for (const e of entries) {
      const m = root.get(e.path === '/' ? 'newroot' : `newroot${e.path}`);
      expect(m, e.path).toBeDefined();
      const file = e.type === 'hardlink' ? entries.find((f) => f.path === e.target)! : e;
      expect([m!.mode, m!.uid, m!.gid, m!.mtime], e.path).toEqual([TYPE_BITS[e.type]! | file.mode, file.uid, file.gid, file.mtime]);
      if (e.type === 'char' || e.type === 'block') expect([m!.rdevMajor, m!.rdevMinor], e.path).toEqual([e.devMajor, e.devMinor]);
    }
    expect(root.get('newroot/dev/console')).toMatchObject({ mode: 0o020600, rdevMajor: 5, rdevMinor: 1 });
    expect(root.get('newroot/dev/sda')).toMatchObject({ mode: 0o060660, gid: 6, rdevMajor: 8, rdevMinor: 0 });
    expect(root.get('newroot/usr/bin/tool')).toMatchObject({ mode: 0o104750, uid: 1000, gid: 1001 });
    const names = [root.get('newroot/usr/bin/perl')!, root.get('newroot/usr/bin/perl5.36.0')!];
    expect(names.map((m) => [m.ino, m.nlink])).toEqual([[names[0]!.ino, 2], [names[0]!.ino, 2]]);
    expect(names.map((m) => m.data.toString())).toEqual(['', 'interpreter']);
    // the holes come back as zeros, the data where it was
    const disk = root.get('newroot/var/disk.img')!.data;
    expect(disk.length).toBe(SPARSE);
    expect(disk.subarray(0, 4096).equals(Buffer.alloc(4096, 'a'))).toBe(true);
    expect(disk.subarray(SPARSE - 4096).equals(Buffer.alloc(4096, 'b'))).toBe(true);
    expect(disk.subarray(4096, SPARSE - 4096).every((b) => b === 0)).toBe(true);
    // aim's init and the mount points the image lacks, root's
    expect(root.get('newroot/.aim/busybox')).toMatchObject({ mode: 0o100755, uid: 0, gid: 0 });
    expect(root.get('newroot/proc')).toMatchObject({ mode: 0o040555, uid: 0 });
  });

  it('gives the same bytes for a user and for root, build after build', async () => {
    const sums = async (out: string, unprivileged: boolean) => {
      const b = await build(out, unprivileged);
      expect(b.exitCode, b.stderr).toBe(0);
      return b.json.artifacts.map((a) => [a.path.slice(b.json.outDir.length), a.sha256]);
    };
    const user = await sums('user-again', true);
    expect(user.map(([p]) => p)).toEqual(['/vmlinuz', '/initrd.img', '/boot.ipxe', '/undionly.kpxe', '/ipxe.efi']);
    expect(await sums('root', false)).toEqual(user);
  });
});

describe('--kernel-args', () => {
  it('go onto boot.ipxe\'s kernel line; refused for an artifact that boots no kernel, and when iPXE would misread them', async () => {
    const built = await run<BuildJson>(['build', 'fixture/pxe:1', '--format', 'pxe', '--entrypoint', '/app', '--kernel-args', ' loglevel=4   net.ifnames=0 ', '--out', join(tmp.dir, 'args')]);
    expect(built.exitCode, built.stderr).toBe(0);
    const script = await readFile(join(tmp.dir, 'args', 'boot.ipxe'), 'utf8');
    expect(script).toContain('kernel vmlinuz initrd=initrd.img console=ttyS0,115200 panic=-1 root=ram loglevel=4 net.ifnames=0\n');
    const tar = await run<{ error: { code: string; message: string } }>(['build', 'fixture/pxe:1', '--format', 'tar', '--kernel-args', 'quiet', '--out', join(tmp.dir, 'args-tar')]);
    expect(tar.exitCode).toBe(2);
    expect(tar.json.error).toMatchObject({ code: 'E_CONFIG', message: expect.stringMatching(/--kernel-args: a tar artifact boots no kernel/) });
    const quoted = await run<{ error: { code: string; message: string } }>(['build', 'fixture/pxe:1', '--format', 'pxe', '--entrypoint', '/app', '--kernel-args', 'a="b c"', '--out', join(tmp.dir, 'args-bad')]);
    expect(quoted.exitCode).toBe(2);
    expect(quoted.json.error.message).toMatch(/quotes and backslashes/);
    expect(existsSync(join(tmp.dir, 'args-tar'))).toBe(false);
    expect(existsSync(join(tmp.dir, 'args-bad'))).toBe(false);
  });
});

describe('Ctrl-C during aim build --format pxe', () => {
  it('stops zstd, removes the partial bundle and exits 130', async () => {
    // a file of zeros as large as newc holds: compressing it takes many seconds, so Ctrl-C surely comes mid-way
    const src = join(tmp.dir, 'big');
    await writeFakeKernelTree(src, '6.1.0-test');
    await writeFile(join(src, 'app'), '#!/bin/sh\n', { mode: 0o755 });
    await writeFile(join(src, 'zeros'), '');
    await truncate(join(src, 'zeros'), 2 ** 32 - 4096);
    await writeAt(join(src, 'zeros'), Buffer.alloc(4096, 1), 2 ** 32 - 8192);
    expect((await run(['image', 'import', src, '--tag', 'fixture/big:1'])).exitCode).toBe(0);
    const out = join(tmp.dir, 'interrupted');
    const child = execa(process.execPath, [runJs, 'build', 'fixture/big:1', '--format', 'pxe', '--entrypoint', '/app', '--out', out, '--repo', repo, '--json'], { reject: false, timeout: 300_000 });
    const zstd = await pollFor('zstd compressing the root while initrd.img is written', () => (existsSync(join(out, 'initrd.img')) ? childProcesses(child.pid!).find((p) => p.comm === 'zstd') : undefined), 120_000);
    child.kill('SIGINT');
    const res = await child;
    expect(res.exitCode, res.stderr).toBe(130);
    expect(JSON.parse(res.stdout)).toMatchObject({ error: { code: 'E_INTERRUPTED', exitCode: 130 } });
    expect(existsSync(out)).toBe(false);
    expect(alive(zstd.pid)).toBe(false);
  }, 300_000);
});
