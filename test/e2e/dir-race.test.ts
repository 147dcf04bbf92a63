import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim, runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Directory sources that change while they are imported: swapping a file or a directory for a
 * symlink to a host secret must never put the secret into the image, nor into any message. The
 * pause points (lib/fault.ts) stop the import exactly between listing an entry and opening it, so
 * these tests prove the swap happened inside that window; the last test swaps freely and counts
 * the swaps that happened while each import ran.
 */

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let secretDir: string;
const MARKER = `aim-race-secret-${process.pid}-${Date.now()}`;

async function tree(name: string, files = 50): Promise<string> {
  const root = join(tmp.dir, name);
  await mkdir(join(root, 'sub', 'deeper'), { recursive: true });
  for (let i = 0; i < files; i++) await writeFile(join(root, `f${String(i).padStart(4, '0')}`), `file ${i}\n`);
  await writeFile(join(root, 'victim'), 'innocent\n');
  await writeFile(join(root, 'sub', 'deeper', 'inner'), 'inner\n');
  return root;
}

/** No blob of the repository holds the secret. */
async function secretStored(): Promise<boolean> {
  const r = await execa('grep', ['-rl', MARKER, join(repo, 'objects')], { reject: false });
  return r.exitCode === 0;
}

async function waitFor(path: string, child: ResultPromise): Promise<string> {
  const deadline = Date.now() + 120_000;
  while (!existsSync(path)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the import did not reach its pause point (${path})`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return readFile(path, 'utf8');
}

async function imagesCount(): Promise<number> {
  return ((await aim<{ images: unknown[] }>(['image', 'list', '--repo', repo])).json.images ?? []).length;
}

/** Runs an import paused at `point` for the entry matching `match`, lets `swap` run, then resumes. */
async function importWithSwap(source: string, point: string, match: string, swap: () => Promise<void>) {
  const pauseDir = join(tmp.dir, `pause-${point}`);
  await rm(pauseDir, { recursive: true, force: true });
  await mkdir(pauseDir);
  const child = execa(process.execPath, [runJs, 'image', 'import', source, '--repo', repo, '--json'], {
    reject: false,
    env: { AIM_FAULT_PAUSE_AT: point, AIM_FAULT_PAUSE_MATCH: match, AIM_FAULT_PAUSE_DIR: pauseDir },
  });
  const detail = await waitFor(join(pauseDir, `${point}.paused`), child);
  expect(detail).toContain(match);
  await swap();
  await writeFile(join(pauseDir, `${point}.resume`), '');
  const r = await child;
  return { exitCode: r.exitCode, json: JSON.parse(String(r.stdout)) as { error?: { code: string; message: string } }, output: `${String(r.stdout)}${String(r.stderr)}` };
}

beforeAll(async () => {
  tmp = await tempDir('aim-race-');
  repo = join(tmp.dir, 'repo');
  expect((await aim(['repo', 'init', '--repo', repo])).exitCode).toBe(0);
  secretDir = join(tmp.dir, 'host');
  await mkdir(secretDir);
  await writeFile(join(secretDir, 'secret'), `${MARKER}\n`);
});
afterAll(async () => tmp.cleanup());

describe('a directory source changing during import', () => {
  it('a file swapped for a symlink to a host secret between listing and opening: E_SOURCE_CHANGED, nothing read', async () => {
    const root = await tree('file-swap');
    const before = await imagesCount();
    const r = await importWithSwap(root, 'dir-listed', '/victim', async () => {
      await symlink(join(secretDir, 'secret'), join(root, '.swap'));
      await rename(join(root, '.swap'), join(root, 'victim'));
    });
    expect(r.exitCode, r.output).toBe(4);
    expect(r.json.error?.code).toBe('E_SOURCE_CHANGED');
    expect(r.json.error?.message).toMatch(/victim changed during import/);
    expect(r.output).not.toContain(MARKER);
    expect(await secretStored()).toBe(false);
    expect(await imagesCount()).toBe(before);
  });

  it('a file replaced by another regular file between listing and opening is refused too (inode differs)', async () => {
    const root = await tree('file-replace');
    const r = await importWithSwap(root, 'dir-listed', '/victim', async () => {
      await writeFile(join(root, '.swap'), 'other\n');
      await rename(join(root, '.swap'), join(root, 'victim'));
    });
    expect(r.exitCode, r.output).toBe(4);
    expect(r.json.error?.code).toBe('E_SOURCE_CHANGED');
  });

  it('a directory swapped for a symlink to a host directory before it is walked: E_SOURCE_CHANGED, nothing read', async () => {
    const root = await tree('dir-swap');
    await mkdir(join(secretDir, 'deeper'), { recursive: true });
    await writeFile(join(secretDir, 'deeper', 'inner'), `${MARKER}\n`);
    const r = await importWithSwap(root, 'dir-descend', '/sub', async () => {
      await rename(join(root, 'sub'), join(tmp.dir, 'sub-moved-away'));
      await symlink(secretDir, join(root, 'sub'));
    });
    expect(r.exitCode, r.output).toBe(4);
    expect(r.json.error?.code).toBe('E_SOURCE_CHANGED');
    expect(r.output).not.toContain(MARKER);
    expect(await secretStored()).toBe(false);
  });

  it('free-running swaps while imports run: the secret never lands in an image, every outcome is clean', async () => {
    const root = await tree('free', 3000);
    const victims = ['victim', 'sub/deeper/inner'];
    // A separate process swaps as fast as it can and counts its swaps in a file.
    const counter = join(tmp.dir, 'swaps');
    const swapper = execa(process.execPath, ['-e', `
      const fs = require('node:fs'); const path = require('node:path');
      const [root, secret, counter, ...victims] = process.argv.slice(1);
      let n = 0;
      for (;;) {
        for (const v of victims) {
          const p = path.join(root, v), t = p + '.tmp';
          try { fs.rmSync(t, { force: true }); fs.symlinkSync(secret, t); fs.renameSync(t, p); } catch {}
          try { fs.writeFileSync(t, 'innocent\\n'); fs.renameSync(t, p); } catch {}
        }
        if (++n % 50 === 0) fs.writeFileSync(counter, String(n));
      }
    `, root, join(secretDir, 'secret'), counter, ...victims], { reject: false });
    const swaps = async () => Number(await readFile(counter, 'utf8').catch(() => '0'));
    try {
      const deadline = Date.now() + 60_000;
      while ((await swaps()) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const outcomes: string[] = [];
      for (let i = 0; i < 3; i++) {
        const before = await swaps();
        const r = await aim<{ id?: string; error?: { code: string } }>(['image', 'import', root, '--repo', repo]);
        const during = (await swaps()) - before;
        expect(during, 'swaps happened while the import ran').toBeGreaterThan(0);
        expect(r.stdout + r.stderr).not.toContain(MARKER);
        if (r.exitCode === 0) outcomes.push('imported');
        else {
          expect(r.exitCode, r.stderr).toBe(4);
          expect(r.json.error?.code).toBe('E_SOURCE_CHANGED');
          outcomes.push('changed');
        }
      }
      expect(outcomes).toHaveLength(3);
      expect(await secretStored()).toBe(false);
    } finally {
      swapper.kill('SIGKILL');
      await swapper;
    }
  }, 600_000);
});
