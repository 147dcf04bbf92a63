import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BeneathRoot, UnsafePathError } from '../../src/lib/beneath.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-beneath-');
});
afterAll(async () => tmp.cleanup());

async function fixture(name: string): Promise<{ root: string; outside: string }> {
  const root = join(tmp.dir, name, 'root');
  const outside = join(tmp.dir, name, 'outside');
  await mkdir(join(root, 'real', 'sub'), { recursive: true });
  await mkdir(join(outside, 'sub'), { recursive: true });
  await writeFile(join(outside, 'init'), 'outside\n');
  await symlink(outside, join(root, 'abs'));
  await symlink('../outside', join(root, 'rel'));
  await writeFile(join(root, 'file'), 'a file\n');
  return { root, outside };
}

describe('BeneathRoot', () => {
  it('creates directories and files with exact modes, whatever the umask, and never replaces anything', async () => {
    const { root } = await fixture('create');
    const t = await BeneathRoot.open(root);
    try {
      await t.mkdir('new', 0o750);
      await t.ensureDir('new/a/b', 0o711);
      await t.writeFile('new/a/b/script', '#!/bin/sh\n', 0o4755);
      expect((await stat(join(root, 'new'))).mode & 0o7777).toBe(0o750);
      expect((await stat(join(root, 'new/a'))).mode & 0o7777).toBe(0o711);
      expect((await stat(join(root, 'new/a/b/script'))).mode & 0o7777).toBe(0o4755);
      expect(await readFile(join(root, 'new/a/b/script'), 'utf8')).toBe('#!/bin/sh\n');
      await expect(t.writeFile('new/a/b/script', 'again', 0o644)).rejects.toMatchObject({ code: 'E_UNSAFE_PATH', message: expect.stringContaining('exists already') });
      await expect(t.mkdir('new', 0o755)).rejects.toMatchObject({ code: 'E_UNSAFE_PATH' });
      await t.ensureDir('new/a', 0o700); // an existing directory is kept as it is
      expect((await stat(join(root, 'new/a'))).mode & 0o7777).toBe(0o711);
      await t.setTimes('new/a/b/script', 1_000_000, 1_000_000);
      expect((await stat(join(root, 'new/a/b/script'))).mtimeMs).toBe(1_000_000_000);
      // the root itself (through its descriptor)
      await t.setTimes('', 2_000_000, 2_000_000);
      await t.chmod('', 0o701);
      await t.chown('', 12, 34);
      expect(await stat(root)).toMatchObject({ mtimeMs: 2_000_000_000, mode: 0o40701, uid: 12, gid: 34 });
    } finally {
      await t.close();
    }
  });

  it('refuses every symlink and non-directory on the way, absolute or relative, and writes nothing outside', async () => {
    const { root, outside } = await fixture('refuse');
    const t = await BeneathRoot.open(root);
    const outsideBefore = (await readdir(outside)).sort();
    try {
      for (const [rel, why] of [
        ['abs/init', 'is a symlink'],
        ['rel/init', 'is a symlink'],
        ['abs/sub/x', 'is a symlink'],
        ['file/x', 'is not a directory'],
        ['missing/x', 'does not exist'],
      ] as const) {
        const err = await t.writeFile(rel, 'x', 0o644).then(() => undefined, (e: unknown) => e);
        expect(err, rel).toBeInstanceOf(UnsafePathError);
        expect((err as Error).message, rel).toContain(why);
        if (!rel.startsWith('missing')) await expect(t.ensureDir(`${rel}/deeper`, 0o755), rel).rejects.toBeInstanceOf(UnsafePathError);
      }
      // a last component that is a symlink is never followed either
      await expect(t.writeFile('abs', 'x', 0o644)).rejects.toBeInstanceOf(UnsafePathError);
      await expect(t.mkdir('abs', 0o755)).rejects.toBeInstanceOf(UnsafePathError);
      await expect(t.chmod('abs', 0o700)).rejects.toBeInstanceOf(UnsafePathError);
      await expect(t.openFile('abs')).rejects.toBeInstanceOf(UnsafePathError);
      await t.setTimes('abs', 5, 5); // the link's own times
      expect((await lstat(join(root, 'abs'))).mtimeMs).toBe(5000);
      expect((await stat(outside)).mtimeMs).not.toBe(5000);
      expect((await readdir(outside)).sort()).toEqual(outsideBefore);
      expect(await readFile(join(outside, 'init'), 'utf8')).toBe('outside\n');
    } finally {
      await t.close();
    }
  });

  it('handles any name as raw bytes', async () => {
    const { root } = await fixture('bytes');
    const t = await BeneathRoot.open(root);
    try {
      const name = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // "caf\xe9", not UTF-8
      await t.mkdir(name, 0o755);
      await t.writeFile(Buffer.concat([name, Buffer.from('/f')]), 'x', 0o644);
      expect((await t.readdir(name)).map((n) => n.toString())).toEqual(['f']);
      expect((await t.readdir('')).some((n) => n.equals(name))).toBe(true);
      await expect(t.writeFile('a/../b', 'x', 0o644)).rejects.toMatchObject({ code: 'E_INTERNAL' });
    } finally {
      await t.close();
    }
  });

  it('reads a file only when it is the one a listing saw', async () => {
    const { root } = await fixture('read');
    const t = await BeneathRoot.open(root);
    try {
      const st = (await t.lstat('file'))!;
      const h = await t.openFile('file', { dev: st.dev, ino: st.ino });
      expect((await h.readFile()).toString()).toBe('a file\n');
      await h.close();
      await expect(t.openFile('file', { dev: st.dev, ino: st.ino + 1 })).rejects.toMatchObject({ code: 'E_UNSAFE_PATH', message: expect.stringContaining('changed') });
    } finally {
      await t.close();
    }
  });
});

/**
 * The race: another process swaps root/a between a real directory and a symlink to a directory
 * outside (which has the same layout), as fast as it can, while we write root/a/b/f-N. The
 * naive way (a path write) is shown to land outside, which proves the swaps overlap the writes;
 * BeneathRoot's writes must never land outside, however often they run into the swap.
 */
describe('a directory swapped for a symlink during the walk', () => {
  const RACER = `
const fs = require('fs');
const [dir, outside] = process.argv.slice(1);
const a = dir + '/a', real = dir + '/a.real', link = dir + '/a.link';
fs.symlinkSync(outside, link);
let n = 0;
for (;;) {
  fs.renameSync(a, real); fs.renameSync(link, a);
  fs.renameSync(a, link); fs.renameSync(real, a);
  // written beside and renamed: a kill between writeFileSync's truncate and its write left an
  // empty count (read as 0 swaps once in a Node 24 run)
  if (++n % 1000 === 0) { fs.writeFileSync(dir + '/swaps.next', String(n)); fs.renameSync(dir + '/swaps.next', dir + '/swaps'); }
}`;

  async function arena(name: string) {
    const dir = join(tmp.dir, name);
    const outside = join(dir, 'outside');
    await mkdir(join(dir, 'root', 'a', 'b'), { recursive: true });
    await mkdir(join(outside, 'b'), { recursive: true });
    const racer = execa(process.execPath, ['-e', RACER, join(dir, 'root'), outside], { reject: false });
    // the racer is running once it has swapped a thousand times
    const deadline = Date.now() + 30_000;
    while (!existsSync(join(dir, 'root', 'swaps')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(existsSync(join(dir, 'root', 'swaps')), 'the racer did not start').toBe(true);
    return { root: join(dir, 'root'), outside, racer };
  }

  /** Stops the racer; the number of swaps it made (to the thousand). */
  async function stop(racer: ResultPromise, root: string): Promise<number> {
    racer.kill('SIGKILL');
    await racer;
    return Number(await readFile(join(root, 'swaps'), 'utf8'));
  }

  it('the naive path write lands outside (the harness really races)', async () => {
    const { root, outside, racer } = await arena('naive');
    let landed = false;
    try {
      const deadline = Date.now() + 60_000;
      for (let i = 0; !landed && Date.now() < deadline; i++) {
        await writeFile(join(root, 'a', 'b', `f-${i}`), 'x').catch(() => undefined);
        landed = (await readdir(join(outside, 'b'))).length > 0;
      }
    } finally {
      await stop(racer, root);
    }
    expect(landed).toBe(true);
  }, 90_000);

  it('BeneathRoot never writes outside: each write lands in the real directory or is refused clearly', async () => {
    const { root, outside, racer } = await arena('beneath');
    const t = await BeneathRoot.open(root);
    // met: refused because a component was not a directory when opened (the symlink, or whatever
    // the racer had put there by the time aim looked again); missing: caught between two renames
    const counts = { written: 0, met: 0, missing: 0 };
    let swaps: number;
    try {
      const deadline = Date.now() + 60_000;
      for (let i = 0; Date.now() < deadline && (i < 3000 || counts.met === 0 || counts.written === 0); i++) {
        try {
          // (mkdir, not ensureDir: creating a missing "a" would fight the racer's renames)
          if (i % 2 === 0) await t.writeFile(`a/b/f-${i}`, 'x', 0o644);
          else await t.mkdir(`a/b/d-${i}`, 0o755);
          counts.written++;
        } catch (e) {
          expect(e, String((e as Error).stack)).toBeInstanceOf(UnsafePathError);
          if ((e as Error).message.includes('does not exist')) counts.missing++;
          else counts.met++;
        }
      }
    } finally {
      swaps = await stop(racer, root);
      await t.close();
    }
    expect(await readdir(join(outside, 'b'))).toEqual([]);
    expect(await readdir(outside)).toEqual(['b']);
    // it raced: writes met the swapped directory, and others went through
    expect(counts.met).toBeGreaterThan(0);
    expect(counts.written).toBeGreaterThan(0);
    expect(swaps).toBeGreaterThanOrEqual(1000);
    const aIsDir = await lstat(join(root, 'a')).then((st) => st.isDirectory(), () => false);
    expect((await readdir(join(root, aIsDir ? 'a' : 'a.real', 'b'))).length).toBe(counts.written);
    console.log(`race: ${counts.written} written, ${counts.met} refused at the swapped directory, ${counts.missing} while the name was missing, ${swaps} swaps`);
  }, 90_000);
});
