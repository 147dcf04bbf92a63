import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { blobPath, damageBlob, type BlobDamage } from '../helpers/bad-inputs-repo.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Every command that writes an image's content out reads it verified: a damaged blob fails the
 * command with E_CORRUPT_BLOB or E_MISSING_BLOB naming the image path, exit 8, nothing partial
 * left behind, no stack trace. fsck --repair then restores it from a source.
 */
let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let src: string;
let big: Buffer;
const run = <T = Record<string, unknown>>(args: string[]) => aim<T>([...args, '--repo', repo]);
type Failure = { error: { code: string; message: string; exitCode: number; hint: string; report?: Record<string, unknown> } };

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  src = join(tmp.dir, 'src');
  big = randomBytes((2 << 20) + 333);
  await mkdir(join(src, 'data'), { recursive: true });
  await writeFile(join(src, 'data', 'big'), big);
  await writeFile(join(src, 'data', 'small'), 'small\n');
  await mkdir(join(src, 'bin'));
  await writeFile(join(src, 'bin', 'sh'), '#!/bin/true\n', { mode: 0o755 });
  expect((await run(['repo', 'init'])).exitCode).toBe(0);
  const imported = await run(['image', 'import', src, '--tag', 'c/x:1']);
  expect(imported.exitCode, imported.stderr).toBe(0);
});
afterAll(async () => tmp.cleanup());

/** Each reader writes into a fresh place under `dir`; what must not exist after a failure. */
const readers: Record<string, (dir: string) => { args: string[]; out: string }> = {
  'export --format tar': (dir) => ({ args: ['image', 'export', 'c/x:1', '--format', 'tar', '--out', join(dir, 'x.tar')], out: join(dir, 'x.tar') }),
  'export --format dir': (dir) => ({ args: ['image', 'export', 'c/x:1', '--format', 'dir', '--out', join(dir, 'x')], out: join(dir, 'x') }),
  'build --format tar': (dir) => ({ args: ['build', 'c/x:1', '--format', 'tar', '--out', join(dir, 'b')], out: join(dir, 'b') }),
  'build --format oci': (dir) => ({ args: ['build', 'c/x:1', '--format', 'oci', '--out', join(dir, 'o')], out: join(dir, 'o') }),
};

async function restore(): Promise<void> {
  const repaired = await run<{ ok: boolean; repair: { restored: string[] } }>(['repo', 'fsck', '--repair', '--source', src]);
  expect(repaired.exitCode, repaired.stdout).toBe(0);
  expect(repaired.json.repair.restored).toHaveLength(1);
  expect((await run(['repo', 'fsck'])).exitCode).toBe(0);
}

// several CLI runs each: generous deadlines for a loaded machine
describe('a damaged blob', { timeout: 600_000 }, () => {
  const damages: [BlobDamage, string][] = [
    ['flip-middle', 'E_CORRUPT_BLOB'],
    ['truncate', 'E_CORRUPT_BLOB'],
    ['remove', 'E_MISSING_BLOB'],
  ];
  for (const [how, code] of damages) {
    it(`(${how}) fails every reader with ${code} and leaves no partial output`, async () => {
      await damageBlob(repo, big, how);
      for (const [name, reader] of Object.entries(readers)) {
        const dir = join(tmp.dir, `out-${how}-${name.replace(/\W+/g, '-')}`);
        await mkdir(dir);
        const { args, out } = reader(dir);
        const r = await run<Failure>(args);
        expect(r.exitCode, `${name}: ${r.stdout}${r.stderr}`).toBe(8);
        expect(r.json.error.code, name).toBe(code);
        expect(r.json.error.message, name).toContain('/data/big in image');
        expect(r.json.error.hint, name).toContain('fsck --repair');
        expect(r.stderr, name).not.toMatch(/\n\s+at |ERR_STREAM/);
        expect(existsSync(out), name).toBe(false);
        expect(await readdir(dir), name).toEqual([]);
      }
      await restore();
    });
  }

  it('is reported by fsck --json in one document, and restored by --repair --source', async () => {
    await damageBlob(repo, big, 'flip-first');
    const found = await run<Failure>(['repo', 'fsck']);
    expect(found.exitCode).toBe(8);
    expect(() => JSON.parse(found.stdout)).not.toThrow();
    expect(found.json.error.code).toBe('E_INTEGRITY');
    expect(found.json.error.report).toMatchObject({ ok: false, problems: [{ kind: 'corrupt-blob' }] });
    await restore();
    const exported = await run(['image', 'export', 'c/x:1', '--format', 'tar', '--out', join(tmp.dir, 'after-repair.tar')]);
    expect(exported.exitCode, exported.stdout).toBe(0);
  });

  it('without a source, --repair removes the corrupt copy, lists the image, and a re-import restores it', async () => {
    await damageBlob(repo, big, 'flip-middle');
    const left = await run<Failure>(['repo', 'fsck', '--repair']);
    expect(left.exitCode).toBe(8);
    const report = left.json.error.report as { repair: { removedCorrupt: string[]; unrepaired: string[]; affectedImages: { tags: string[]; source: string; paths: string[] }[] } };
    expect(report.repair.removedCorrupt).toHaveLength(1);
    expect(report.repair.unrepaired).toEqual(report.repair.removedCorrupt);
    expect(report.repair.affectedImages).toEqual([expect.objectContaining({ tags: ['c/x:1'], source: src, paths: ['/data/big'] })]);
    // the missing blob is named as such now, and the hint's re-import brings it back
    const missing = await run<Failure>(['image', 'export', 'c/x:1', '--format', 'tar', '--out', join(tmp.dir, 'missing.tar')]);
    expect(missing.json.error.code).toBe('E_MISSING_BLOB');
    const again = await run<{ created: boolean }>(['image', 'import', src, '--tag', 'c/x:1']);
    expect(again.exitCode).toBe(0);
    expect(again.json.created).toBe(false);
    expect((await run<{ ok: boolean }>(['repo', 'fsck'])).json.ok).toBe(true);
  });

  it('in an image manifest is rebuilt from the catalog', async () => {
    const id = (await run<{ images: { id: string }[] }>(['image', 'list'])).json.images[0]!.id;
    await rm(blobPath(repo, id));
    expect((await run(['repo', 'fsck'])).exitCode).toBe(8);
    const repaired = await run<{ ok: boolean; repair: { restored: string[] } }>(['repo', 'fsck', '--repair']);
    expect(repaired.exitCode, repaired.stdout).toBe(0);
    expect(repaired.json.repair.restored).toEqual([id]);
  });
});
