import { execa } from 'execa';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim, runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { buildEveryTypeTree } from '../helpers/tree.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let source: string;
const run = <T = Record<string, unknown>>(args: string[], env: Record<string, string> = {}) => aim<T>([...args, '--repo', repo], { env });

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  source = join(tmp.dir, 'src');
  await buildEveryTypeTree(source);
  // enough distinct files that a kill lands mid-import
  const many = join(source, 'many');
  await execa('mkdir', ['-p', many]);
  await execa('sh', ['-c', `for i in $(seq 1 400); do head -c $((i * 97)) /dev/urandom > ${many}/f$i; done`]);
  expect((await run(['repo', 'init'])).exitCode).toBe(0);
});
afterAll(async () => tmp.cleanup());

async function consistent(): Promise<void> {
  const fsck = await run<{ ok: boolean; problems: unknown[] }>(['repo', 'fsck']);
  expect(fsck.exitCode, JSON.stringify(fsck.json)).toBe(0);
  expect(fsck.json.ok).toBe(true);
}

describe('a killed import', () => {
  for (const [point, after] of [
    ['blob-stored', '1'],
    ['blob-stored', '150'],
    ['analyzed', '1'],
    ['manifest-stored', '1'],
  ] as const) {
    it(`leaves the repository consistent when killed at ${point} #${after}`, async () => {
      const killed = await run(['image', 'import', source, '--tag', 'k/x:1'], { AIM_FAULT_KILL_AT: point, AIM_FAULT_KILL_AFTER: after });
      expect(killed.exitCode).not.toBe(0);
      const list = await run<{ images: unknown[] }>(['image', 'list']);
      expect(list.json.images).toEqual([]);
      await consistent();
    });
  }

  it('is followed by a successful import, and gc clears the leftovers', async () => {
    const ok = await run<{ id: string }>(['image', 'import', source, '--tag', 'k/x:1']);
    expect(ok.exitCode, ok.stderr).toBe(0);
    await consistent();
    const gc = await run<{ removedScratchDirs: number }>(['repo', 'gc']);
    expect(gc.exitCode).toBe(0);
    expect(gc.json.removedScratchDirs).toBeGreaterThanOrEqual(4);
    expect(await readdir(join(repo, 'tmp'))).toEqual([]);
    const fsck = await run<{ unreferencedBlobs: number }>(['repo', 'fsck']);
    expect(fsck.json.unreferencedBlobs).toBe(0);
    await run(['image', 'rm', 'k/x:1']);
  });
});

describe('concurrency', () => {
  it('runs two imports into one repository at the same time', async () => {
    const other = join(tmp.dir, 'src2');
    await execa('cp', ['-a', source, other]);
    await execa('sh', ['-c', `echo second > ${other}/etc/second`]);
    const [a, b] = await Promise.all([run<{ id: string }>(['image', 'import', source, '--tag', 'c/a:1']), run<{ id: string }>(['image', 'import', other, '--tag', 'c/b:1'])]);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(b.exitCode, b.stderr).toBe(0);
    expect(a.json.id).not.toBe(b.json.id);
    const list = await run<{ images: { tags: string[] }[] }>(['image', 'list']);
    expect(list.json.images.flatMap((i) => i.tags).sort()).toEqual(['c/a:1', 'c/b:1']);
    await consistent();
  });

  it('never lets gc remove blobs an import in progress relies on', async () => {
    await run(['image', 'rm', 'c/b:1']);
    const importing = execa(process.execPath, [runJs, 'image', 'import', join(tmp.dir, 'src2'), '--tag', 'c/b:2', '--repo', repo, '--json'], { reject: false });
    const gcs = [];
    for (let i = 0; i < 5; i++) {
      gcs.push(await run<{ error?: { code: string } }>(['repo', 'gc']));
      await new Promise((r) => setTimeout(r, 100));
    }
    const done = await importing;
    expect(done.exitCode, done.stderr).toBe(0);
    for (const g of gcs) expect([0, 9]).toContain(g.exitCode);
    await consistent();
  });
});
