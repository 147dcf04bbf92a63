import { execa } from 'execa';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withFileMutex } from '../../src/lib/file-mutex.js';
import { projectRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-file-mutex-');
});
afterAll(async () => tmp?.cleanup());

/** Read, wait a little, write: increments lost unless the callers really take turns. */
async function increment(counter: string): Promise<void> {
  const n = Number(await readFile(counter, 'utf8'));
  await new Promise((r) => setTimeout(r, 2));
  await writeFile(counter, String(n + 1));
}

describe('withFileMutex', () => {
  it('callers in this process and in others take turns; a waiter never sees a half-written lock; nothing is left behind', async () => {
    const dir = join(tmp.dir, 'turns');
    await execa('mkdir', ['-p', dir]);
    const counter = join(dir, 'counter');
    const lock = join(dir, 'counter.lock');
    await writeFile(counter, '0');
    // the compiled module (npm test builds first), as aim's own processes load it
    const mod = pathToFileURL(join(projectRoot, 'dist', 'src', 'lib', 'file-mutex.js')).href;
    const child = `const { withFileMutex } = await import(${JSON.stringify(mod)});
      const { readFile, writeFile } = await import('node:fs/promises');
      for (let i = 0; i < 15; i++) await withFileMutex(${JSON.stringify(lock)}, async () => {
        const n = Number(await readFile(${JSON.stringify(counter)}, 'utf8'));
        await new Promise((r) => setTimeout(r, 2));
        await writeFile(${JSON.stringify(counter)}, String(n + 1));
      }, { pollMs: 5 });`;
    const others = [1, 2, 3].map(() => execa(process.execPath, ['--input-type=module', '-e', child]));
    const here = Array.from({ length: 20 }, () => withFileMutex(lock, () => increment(counter), { pollMs: 5 }));
    await Promise.all([...here, ...others]);
    expect(Number(await readFile(counter, 'utf8'))).toBe(20 + 3 * 15);
    expect(await readdir(dir)).toEqual(['counter']);
  });

  it('removes the drafts of processes that died before linking them, and no one else\'s', async () => {
    const dir = join(tmp.dir, 'drafts');
    await execa('mkdir', ['-p', dir]);
    const lock = join(dir, 'repo.lock');
    const dead = Number((await execa(process.execPath, ['-e', 'console.log(process.pid)'])).stdout);
    const sleeper = execa('sleep', ['30'], { reject: false });
    const live = sleeper.pid!;
    const names = [`repo.lock.${dead}-0a1b2c3d4e5f.new`, `repo.lock.${live}-0a1b2c3d4e5f.new`, `other.lock.${dead}-0a1b2c3d4e5f.new`, 'repo.lock.notes'];
    for (const n of names) await writeFile(join(dir, n), '{}');
    try {
      expect(await withFileMutex(lock, async () => 'ran')).toBe('ran');
      expect((await readdir(dir)).sort()).toEqual(names.slice(1).sort());
    } finally {
      sleeper.kill();
      await sleeper;
    }
  });

  it('takes over a lock whose process is gone, and waits for one whose process lives', async () => {
    const lock = join(tmp.dir, 'stale.lock');
    const dead = await execa(process.execPath, ['-e', 'console.log(process.pid)']);
    await writeFile(lock, JSON.stringify({ pid: Number(dead.stdout) }));
    expect(await withFileMutex(lock, async () => 'ran')).toBe('ran');
    await writeFile(lock, JSON.stringify({ pid: process.pid }));
    let waitedFor: number | undefined;
    let ran = false;
    const waiting = withFileMutex(lock, async () => (ran = true), { pollMs: 10, onWait: (pid) => (waitedFor = pid) });
    await new Promise((r) => setTimeout(r, 200));
    expect([ran, waitedFor]).toEqual([false, process.pid]);
    const { rm } = await import('node:fs/promises');
    await rm(lock);
    await waiting;
    expect(ran).toBe(true);
  });
});
