import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { statfsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * The free-space guard on a small tmpfs holding the repository, and --max-size. An import that
 * does not fit stops with E_NO_SPACE (never Node's ENOSPC) and leaves the repository as it was.
 */
const MiB = 1 << 20;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let mnt: string;
let mounted = false;
type Failure = { error: { code: string; message: string; exitCode: number; hint: string } };

async function tree(name: string, files: number, size: number): Promise<string> {
  const dir = join(tmp.dir, name);
  await mkdir(join(dir, 'data'), { recursive: true });
  for (let i = 0; i < files; i++) await writeFile(join(dir, 'data', `f${i}`), randomBytes(size));
  return dir;
}

async function unchanged(repo: string): Promise<void> {
  const run = <T>(args: string[]) => aim<T>([...args, '--repo', repo]);
  expect((await run<{ images: unknown[] }>(['image', 'list'])).json.images).toEqual([]);
  const fsck = await run<{ ok: boolean; unreferencedBlobs: number; blobsChecked: number }>(['repo', 'fsck']);
  expect(fsck.json).toMatchObject({ ok: true, unreferencedBlobs: 0, blobsChecked: 0 });
  expect(await readdir(join(repo, 'tmp'))).toEqual([]);
}

beforeAll(async () => {
  tmp = await tempDir();
  mnt = join(tmp.dir, 'small-fs');
  await mkdir(mnt);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mnt]);
  mounted = true;
});
afterAll(async () => {
  if (mounted) await execa('umount', [mnt]);
  await tmp.cleanup();
});

// several CLI runs each: generous deadlines for a loaded machine
describe('the free-space guard', { timeout: 600_000 }, () => {
  const cases: [string, () => Promise<string>][] = [
    ['a directory of large files', () => tree('large', 12, 4 * MiB)],
    ['a directory of many small files', () => tree('small', 2400, 20 * 1024)],
    [
      // repeated text, not zeros: runs of zeros are stored as holes and take no space (test/e2e/sparse.test.ts)
      'a tar.gz of repeated text that expands 1000-fold',
      async () => {
        const dir = join(tmp.dir, 'bomb');
        await mkdir(dir);
        await execa('sh', ['-c', `yes aim | head -c ${100 * MiB} > ${dir}/text && tar -C ${dir} -czf ${tmp.dir}/bomb.tar.gz text && rm ${dir}/text`]);
        return join(tmp.dir, 'bomb.tar.gz');
      },
    ],
  ];
  for (const [name, make] of cases) {
    it(`stops importing ${name} before the repository's filesystem is full`, async () => {
      const repo = join(mnt, name.replace(/\W+/g, '-'));
      expect((await aim(['repo', 'init', '--repo', repo])).exitCode).toBe(0);
      const r = await aim<Failure>(['image', 'import', await make(), '--tag', 'big/x:1', '--repo', repo]);
      expect(r.exitCode, r.stdout).toBe(12);
      expect(r.json.error.code).toBe('E_NO_SPACE');
      expect(r.json.error.message).toContain(repo);
      expect(r.json.error.message).toMatch(/MiB free/);
      expect(r.stderr).not.toContain('ENOSPC');
      await unchanged(repo);
    });
  }

  it('lets an import that fits through, on the same filesystem', async () => {
    const repo = join(mnt, 'fits');
    expect((await aim(['repo', 'init', '--repo', repo])).exitCode).toBe(0);
    const r = await aim<{ fileCount: number }>(['image', 'import', await tree('fits', 4, 2 * MiB), '--tag', 'ok/x:1', '--repo', repo]);
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.json.fileCount).toBe(4);
    const free = statfsSync(mnt);
    expect(free.bavail * free.bsize).toBeGreaterThan(4 * MiB);
  });
});

describe('--max-size', { timeout: 600_000 }, () => {
  it('stops an import storing more new content than allowed, counting only what is not stored yet', async () => {
    const repo = join(tmp.dir, 'repo');
    const src = await tree('limited', 3, MiB);
    expect((await aim(['repo', 'init', '--repo', repo])).exitCode).toBe(0);
    const over = await aim<Failure>(['image', 'import', src, '--max-size', '2M', '--repo', repo]);
    expect(over.exitCode, over.stdout).toBe(4);
    expect(over.json.error.code).toBe('E_MAX_SIZE');
    expect(over.json.error.message).toContain('2.0 MiB');
    await unchanged(repo);

    expect((await aim(['image', 'import', src, '--max-size', '4M', '--tag', 'l/x:1', '--repo', repo])).exitCode).toBe(0);
    // the same content again adds nothing, so any limit lets it through
    const again = await aim<{ created: boolean }>(['image', 'import', src, '--max-size', '1', '--tag', 'l/x:2', '--repo', repo]);
    expect(again.exitCode, again.stdout).toBe(0);
    expect(again.json.created).toBe(false);
  });

  it('refuses a size it cannot read', async () => {
    const r = await aim<Failure>(['image', 'import', tmp.dir, '--max-size', 'lots', '--repo', join(tmp.dir, 'repo')]);
    expect(r.exitCode).toBe(2);
    expect(r.json.error.code).toBe('E_CONFIG');
  });
});
