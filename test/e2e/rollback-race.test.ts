import { execa, type ResultPromise } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { aim, runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256 } from '../helpers/bad-inputs-repo.js';

/**
 * A failed import's rollback against imports that reuse its blobs. Fault points pause import A
 * after it stored every blob (its lease held, its process stopped) until the test resumes it, so
 * the other import provably runs, and commits, inside A's window.
 */
let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let shared: Buffer;
const started: ResultPromise[] = [];
const run = <T = Record<string, unknown>>(args: string[]) => aim<T>([...args, '--repo', repo]);

async function source(name: string, own: string): Promise<string> {
  const dir = join(tmp.dir, name);
  await mkdir(join(dir, 'etc'), { recursive: true });
  await writeFile(join(dir, 'shared.bin'), shared);
  await writeFile(join(dir, 'etc', 'own'), own);
  await writeFile(join(dir, 'own.bin'), randomBytes(300_000));
  return dir;
}

/** Starts an import that pauses at `point` (its marker files in `dir`) and, when `fail`, then fails there. */
async function pausedImport(src: string, tag: string, dir: string, fail: boolean) {
  await mkdir(dir, { recursive: true });
  const env: Record<string, string> = { AIM_FAULT_PAUSE_AT: 'analyzed', AIM_FAULT_PAUSE_DIR: dir };
  if (fail) env.AIM_FAULT_FAIL_AT = 'analyzed';
  const child = execa(process.execPath, [runJs, 'image', 'import', src, '--tag', tag, '--repo', repo, '--json'], { env: { ...process.env, ...env }, reject: false });
  started.push(child);
  let exited = false;
  void child.finally(() => (exited = true));
  const deadline = Date.now() + 120_000;
  while (!existsSync(join(dir, 'analyzed.paused'))) {
    if (exited) throw new Error(`import ${tag} ended before its pause: ${(await child).stderr}`);
    if (Date.now() > deadline) throw new Error(`import ${tag} never reached its pause`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    running: () => !exited,
    resume: async () => writeFile(join(dir, 'analyzed.resume'), ''),
  };
}

async function writeLocks(): Promise<string[]> {
  return (await readdir(join(repo, 'locks'))).filter((n) => n.startsWith('write-'));
}

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  shared = randomBytes(200_000);
  expect((await run(['repo', 'init'])).exitCode).toBe(0);
});
afterEach(async () => {
  // a failed assertion must not leave a paused import behind
  for (const c of started.splice(0)) if (c.exitCode === undefined && c.pid) process.kill(c.pid, 'SIGKILL');
  await Promise.allSettled(started);
});
afterAll(async () => tmp.cleanup());

describe('a failed import rolls back', { timeout: 600_000 }, () => {
  it('without removing a blob that an overlapping import reused and committed', async () => {
    const blob = join(repo, 'objects', 'sha256', sha256(shared).slice(0, 2), sha256(shared).slice(2));
    const a = await pausedImport(await source('a', 'a'), 'race/a:1', join(tmp.dir, 'pause-a'), true);
    // A stored the shared blob and holds its lease while stopped.
    const inode = (await stat(blob)).ino;
    expect(await writeLocks()).toHaveLength(1);

    const b = await run<{ id: string; created: boolean }>(['image', 'import', await source('b', 'b'), '--tag', 'race/b:1']);
    expect(b.exitCode, b.stderr).toBe(0);
    expect(b.json.created).toBe(true);
    // B ran and committed entirely inside A's pause, reusing A's copy of the blob.
    expect(a.running()).toBe(true);
    expect((await stat(blob)).ino).toBe(inode);

    await a.resume();
    const failed = await a.child;
    expect(failed.exitCode).toBe(1);
    expect(failed.stdout).toContain('injected fault at analyzed');

    expect(existsSync(blob)).toBe(true);
    const fsck = await run<{ ok: boolean; unreferencedBlobs: number }>(['repo', 'fsck']);
    expect(fsck.exitCode, fsck.stdout).toBe(0);
    // What only A had stored (its own file, its manifest) is gone again.
    expect(fsck.json).toMatchObject({ ok: true, unreferencedBlobs: 0 });
    const out = join(tmp.dir, 'b.tar');
    const exported = await run(['image', 'export', 'race/b:1', '--format', 'tar', '--out', out]);
    expect(exported.exitCode, exported.stdout).toBe(0);
  });

  it('removes nothing while another writer that may count on its blobs is still running', async () => {
    await run(['image', 'rm', 'race/b:1']);
    await run(['repo', 'gc']);
    const a = await pausedImport(await source('a2', 'a2'), 'race/a:2', join(tmp.dir, 'pause-a2'), true);
    const c = await pausedImport(await source('c2', 'c2'), 'race/c:2', join(tmp.dir, 'pause-c2'), false);
    expect(await writeLocks()).toHaveLength(2);

    await a.resume();
    expect((await a.child).exitCode).toBe(1);
    // C is still stopped, holding its lease: A's rollback had to leave every blob in place.
    expect(c.running()).toBe(true);
    const blob = join(repo, 'objects', 'sha256', sha256(shared).slice(0, 2), sha256(shared).slice(2));
    expect(existsSync(blob)).toBe(true);

    await c.resume();
    const committed = await c.child;
    expect(committed.exitCode, committed.stderr).toBe(0);
    const fsck = await run<{ ok: boolean; unreferencedBlobs: number }>(['repo', 'fsck']);
    expect(fsck.json.ok).toBe(true);
    // A's own blobs are garbage now, for gc
    expect(fsck.json.unreferencedBlobs).toBeGreaterThan(0);
    const gc = await run<{ removedBlobs: number }>(['repo', 'gc']);
    expect(gc.json.removedBlobs).toBe(fsck.json.unreferencedBlobs);
    expect((await run<{ ok: boolean; unreferencedBlobs: number }>(['repo', 'fsck'])).json).toMatchObject({ ok: true, unreferencedBlobs: 0 });
  });
});
