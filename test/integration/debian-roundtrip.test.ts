import { execa } from 'execa';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { goldTar } from '../helpers/gold.js';
import { tempDir } from '../helpers/tmp.js';
import { compareSnapshots, snapshotTree } from '../helpers/tree.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let tar: string;
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  tar = await goldTar('nginx');
  expect((await run('repo', 'init')).exitCode).toBe(0);
}, 900_000);
afterAll(async () => tmp.cleanup());

describe('a real mmdebstrap rootfs (minbase + nginx)', () => {
  let tarId: string;

  it('imports from the tar with packages, ELF facts and licenses', async () => {
    const res = await run<{ id: string; packageCount: number; elfCount: number; licenseCount: number; fileCount: number; distro: string }>(
      'image', 'import', tar, '--tag', 'gold/nginx:tar',
    );
    expect(res.exitCode, res.stderr).toBe(0);
    tarId = res.json.id;
    expect(res.json.distro).toBe('debian');
    expect(res.json.fileCount).toBeGreaterThan(5000);
    expect(res.json.packageCount).toBeGreaterThan(80);
    expect(res.json.elfCount).toBeGreaterThan(100);
    const ins = await run<{ packages: { name: string; version: string }[]; licenses: { spdx: string }[]; osRelease: Record<string, string> }>(
      'image', 'inspect', 'gold/nginx:tar', '--packages', '500',
    );
    expect(ins.json.osRelease.VERSION_CODENAME).toBe('bookworm');
    expect(ins.json.packages.map((p) => p.name)).toContain('nginx');
    expect(ins.json.licenses.map((l) => l.spdx)).toContain('BSD-2-Clause'); // nginx's own license
  });

  it('exports to a directory identical to what GNU tar extracts from the original', async () => {
    const ours = join(tmp.dir, 'ours');
    const gnu = join(tmp.dir, 'gnu');
    const exp = await run('image', 'export', 'gold/nginx:tar', '--format', 'dir', '--out', ours);
    expect(exp.exitCode, exp.stderr).toBe(0);
    await mkdir(gnu);
    await execa('tar', ['-xpf', tar, '-C', gnu, '--xattrs', '--xattrs-include=*', '--numeric-owner']);
    const a = await snapshotTree(gnu);
    const b = await snapshotTree(ours);
    expect(a.size).toBeGreaterThan(5000);
    expect(compareSnapshots(a, b)).toEqual([]);
  });

  it('gives the extracted directory the same image id as the tar', async () => {
    const res = await run<{ id: string }>('image', 'import', join(tmp.dir, 'gnu'), '--tag', 'gold/nginx:dir');
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.id).toBe(tarId);
  });

  it('re-imports its own tar export, zstd-compressed, to the same id', async () => {
    const out = join(tmp.dir, 'export.tar');
    expect((await run('image', 'export', 'gold/nginx:tar', '--format', 'tar', '--out', out)).exitCode).toBe(0);
    await execa('zstd', ['-q', '-T0', out, '-o', `${out}.zst`]);
    const res = await run<{ id: string; created: boolean }>('image', 'import', `${out}.zst`);
    expect(res.json.id).toBe(tarId);
    expect(res.json.created).toBe(false);
  });

  it('imports the same tree from a qcow2 disk (GPT + ext4) with the same content', async () => {
    const fs = join(tmp.dir, 'root.ext4');
    const disk = join(tmp.dir, 'disk.raw');
    await execa('mke2fs', ['-q', '-t', 'ext4', '-d', join(tmp.dir, 'gnu'), '-E', 'root_owner=0:0', fs, '400M']);
    await execa('truncate', ['-s', '402M', disk]);
    await execa('sfdisk', ['-q', disk], { input: 'label: gpt\nstart=2048, size=819200, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709\n' });
    await execa('dd', [`if=${fs}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
    await execa('qemu-img', ['convert', '-O', 'qcow2', disk, `${disk}.qcow2`]);
    const res = await run<{ id: string; sourceKind: string }>('image', 'import', `${disk}.qcow2`, '--tag', 'gold/nginx:disk');
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.sourceKind).toBe('disk');
    const diff = await run<{ summary: { added: number; removed: number; changed: number } }>('image', 'diff', 'gold/nginx:tar', 'gold/nginx:disk');
    // mke2fs adds lost+found; nothing else may differ (mtimes are not compared by default)
    expect(diff.json.summary).toMatchObject({ added: 1, removed: 0, changed: 0 });
  });

  it('dedups: the second and third imports store no new file content', async () => {
    const stats = await run<{ images: number; dedupRatio: number; logicalBytes: number; uniqueBytes: number }>('repo', 'stats');
    expect(stats.json.images).toBe(2);
    expect(stats.json.dedupRatio).toBeGreaterThan(1.9);
    const fsck = await run<{ ok: boolean }>('repo', 'fsck');
    expect(fsck.json.ok).toBe(true);
  });
});
