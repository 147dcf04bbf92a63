/**
 * aim image rm through the CLI: an image a channel serves is refused with one JSON error document
 * (E_IMAGE_IN_USE, exit 2, what holds it, a hint); --force removes it and says what it leaves
 * dangling; gc keeps its objects and fsck lists it while the channel names it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);

interface ErrorJson {
  error: { code: string; message: string; hint: string; exitCode: number; holds: { kind: string; channel?: string }[] };
}

beforeAll(async () => {
  tmp = await tempDir('aim-rm-holds-');
  repo = join(tmp.dir, 'repo');
  expect((await run('repo', 'init')).exitCode).toBe(0);
  for (const v of ['1', '2']) {
    const tree = join(tmp.dir, `tree${v}`);
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc', 'version'), `version ${v}\n`);
    const r = await run('image', 'import', tree, '--tag', `app:${v}`);
    expect(r.exitCode, r.stderr).toBe(0);
  }
  expect((await run('channel', 'promote', 'app:1', 'prod')).exitCode).toBe(0);
}, 120_000);
afterAll(async () => tmp?.cleanup());

describe('aim image rm of an image in use', () => {
  it('is refused with one JSON error naming what holds it, and removes nothing', async () => {
    const r = await run<ErrorJson>('image', 'rm', 'app:1');
    expect(r.exitCode).toBe(2);
    expect(r.json.error).toMatchObject({ code: 'E_IMAGE_IN_USE', exitCode: 2, holds: [{ kind: 'channel', channel: 'prod' }] });
    expect(r.json.error.message).toMatch(/^app:1 \([0-9a-f]{12}\) is in use: channel prod serves it$/);
    expect(r.json.error.hint).toMatch(/aim channel promote <another image> prod.*--force/);
    expect((await run('image', 'inspect', 'app:1')).exitCode).toBe(0);
    // app:2 is held by nothing
    expect((await run<{ removedImage: string }>('image', 'rm', 'app:2')).json.removedImage).toMatch(/^[0-9a-f]{64}$/);
  });

  it('--force removes it, says what is left dangling; gc keeps its objects and fsck lists it', async () => {
    const id = (await run<{ id: string }>('image', 'inspect', 'app:1')).json.id;
    const r = await run<{ removedImage: string; dangling: { kind: string }[] }>('image', 'rm', 'app:1', '--force');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ removedImage: id, dangling: [{ kind: 'channel', channel: 'prod' }] });
    expect((await run('image', 'rm', 'app:1')).exitCode).toBe(3);
    const gc = await run<{ removedBlobs: number; danglingImages: string[] }>('repo', 'gc');
    expect(gc.json).toMatchObject({ danglingImages: [id] });
    // app:2's manifest and its own file went; app:1's stayed
    expect(gc.json.removedBlobs).toBe(2);
    const fsck = await run<{ ok: boolean; danglingImages: string[]; unreferencedBlobs: number }>('repo', 'fsck');
    expect(fsck.json).toMatchObject({ ok: true, danglingImages: [id], unreferencedBlobs: 0 });
  });
});
