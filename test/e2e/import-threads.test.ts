import { execa } from 'execa';
import { copyFile, link, mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim, runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { buildEveryTypeTree, compareSnapshots, snapshotTree } from '../helpers/tree.js';

/**
 * Directory imports store files on writer threads once there are more than a few hundred
 * (fs-blob-store.ts, blob-pool.ts): the same tree imported with threads and without must give
 * the same image, byte for byte, with the same facts, and export back exactly.
 */

let tmp: Awaited<ReturnType<typeof tempDir>>;
let source: string;

beforeAll(async () => {
  tmp = await tempDir('aim-threads-');
  source = join(tmp.dir, 'src');
  await buildEveryTypeTree(source);
  // Enough files that the writer threads start, with duplicates, ELF programs, hardlinks and holes among them.
  for (let d = 0; d < 8; d++) {
    const dir = join(source, 'many', `d${d}`);
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < 100; i++) await writeFile(join(dir, `f${i}`), `content ${(d * 100 + i) % 350}\n`.repeat(1 + (i % 7)));
    await copyFile('/bin/true', join(dir, 'true'));
    await copyFile('/bin/ls', join(dir, `ls-${d}`));
    await link(join(dir, 'f3'), join(dir, 'zz-f3-again'));
  }
  await writeFile(join(source, 'many', 'sparse'), 'head');
  await truncate(join(source, 'many', 'sparse'), 16 << 20);
  await writeFile(join(source, 'many', 'big'), Buffer.alloc(5 << 20, 0x61));
});
afterAll(async () => tmp.cleanup());

async function importWith(threads: string) {
  const repo = join(tmp.dir, `repo-${threads}`);
  expect((await aim(['repo', 'init', '--repo', repo])).exitCode).toBe(0);
  const r = await aim<{ id: string; fileCount: number; elfCount: number; totalSize: number }>(['image', 'import', source, '--repo', repo], { env: { AIM_BLOB_THREADS: threads } });
  expect(r.exitCode, r.stderr).toBe(0);
  const fsck = await aim<{ ok: boolean; unreferencedBlobs: number }>(['repo', 'fsck', '--repo', repo]);
  expect(fsck.json).toMatchObject({ ok: true, unreferencedBlobs: 0 });
  return { repo, ...r.json };
}

describe('directory import on writer threads', () => {
  it('gives the same image as an import without threads, and exports back exactly', async () => {
    const [none, two] = [await importWith('0'), await importWith('2')];
    expect(two.fileCount).toBeGreaterThan(800);
    expect(two.id).toBe(none.id);
    expect(two.elfCount).toBe(none.elfCount);
    expect(two.elfCount).toBe(2); // /bin/true and /bin/ls, each stored once
    expect(two.totalSize).toBe(none.totalSize);
    const out = join(tmp.dir, 'out');
    const exported = await aim(['image', 'export', two.id, '--repo', two.repo, '--format', 'dir', '--out', out]);
    expect(exported.exitCode, exported.stderr).toBe(0);
    expect(compareSnapshots(await snapshotTree(source), await snapshotTree(out), { ignoreRootMtime: true })).toEqual([]);
    // Holes stay holes: the exported sparse file allocates far less than its size.
    const { stdout } = await execa('stat', ['-c', '%b %B %s', join(out, 'many', 'sparse')]);
    const [blocks, blockSize, size] = stdout.split(' ').map(Number);
    expect(blocks! * blockSize!).toBeLessThan(size! / 4);
  });

  it('parses small ELF files on the thread that read them: the analysis reads none of them again', async () => {
    // Enough files for the writer threads to store them, ELF files among them.
    const tree = join(tmp.dir, 'elf-src');
    await mkdir(join(tree, 'a'), { recursive: true });
    for (let i = 0; i < 400; i++) await writeFile(join(tree, 'a', `f${i}`), `small ${i}\n`);
    await mkdir(join(tree, 'z'));
    await copyFile('/bin/true', join(tree, 'z', 'true'));
    await copyFile('/bin/ls', join(tree, 'z', 'ls'));
    for (const threads of ['0', '2']) {
      const repo = join(tmp.dir, `repo-elf-${threads}`);
      expect((await aim(['repo', 'init', '--repo', repo])).exitCode).toBe(0);
      // Without --json: the stage lines say how many ELF files the analysis had to read itself.
      const r = await execa(process.execPath, [runJs, 'image', 'import', tree, '--repo', repo], { env: { AIM_BLOB_THREADS: threads }, reject: false });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/analyze\.elf: 2 ELF objects/);
      expect(r.stderr).toMatch(/analyze\.elf: 0 ELF files/);
    }
  });
});
