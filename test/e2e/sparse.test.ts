import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, statSync, writeSync } from 'node:fs';
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Holes stay holes through import and export: a file of a large apparent size and little data
 * costs its data in the repository, and comes back with the same apparent size, the same content
 * and about the same allocation, from a directory or a tar, and the same content gives the same
 * image id whichever way it came.
 */

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let source: string;
const APPARENT = 2 ** 30; // 1 GiB
const run = <T = Record<string, unknown>>(args: string[]) => aim<T>([...args, '--repo', repo]);

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

/** Apparent and allocated bytes of a file. */
const sizes = (path: string) => {
  const st = statSync(path);
  return { apparent: st.size, allocated: st.blocks * 512 };
};

async function repoBytes(): Promise<number> {
  const { stdout } = await execa('du', ['-sb', join(repo, 'objects')]);
  return Number(stdout.split('\t')[0]);
}

beforeAll(async () => {
  tmp = await tempDir('aim-sparse-');
  repo = join(tmp.dir, 'repo');
  expect((await run(['repo', 'init'])).exitCode).toBe(0);
  source = join(tmp.dir, 'src');
  await mkdir(join(source, 'var', 'log'), { recursive: true });
  // lastlog-like: 1 GiB apparent, a few records far apart
  const lastlog = join(source, 'var', 'log', 'lastlog');
  await writeFile(lastlog, '');
  await truncate(lastlog, APPARENT);
  const fd = openSync(lastlog, 'r+');
  for (const [at, text] of [[0, 'root record'], [292_000, 'uid 1000'], [APPARENT - 292, 'last uid']] as const) writeSync(fd, Buffer.from(text), 0, text.length, at);
  closeSync(fd);
  // written zeros (allocated): stored sparse all the same
  const zeros = Buffer.alloc(4 << 20);
  zeros.write('start', 0);
  zeros.write('end', zeros.length - 3);
  await writeFile(join(source, 'var', 'zeros'), zeros);
  await writeFile(join(source, 'var', 'small'), 'small\n');
});
afterAll(async () => tmp.cleanup());

describe('sparse files', () => {
  it('a directory import stores the data only; export as a directory and as a tar keeps apparent size, content and holes', async () => {
    const before = await repoBytes();
    const imported = await run<{ id: string }>(['image', 'import', source, '--tag', 'sparse/dir:1']);
    expect(imported.exitCode, imported.stderr).toBe(0);
    expect((await repoBytes()) - before).toBeLessThan(4 << 20);

    const out = join(tmp.dir, 'out');
    const exported = await run(['image', 'export', 'sparse/dir:1', '--format', 'dir', '--out', out]);
    expect(exported.exitCode, exported.stderr).toBe(0);
    for (const rel of ['var/log/lastlog', 'var/zeros', 'var/small']) {
      expect(sizes(join(out, rel)).apparent, rel).toBe(sizes(join(source, rel)).apparent);
      expect(await sha256(join(out, rel)), rel).toBe(await sha256(join(source, rel)));
    }
    const src = sizes(join(source, 'var', 'log', 'lastlog'));
    const back = sizes(join(out, 'var', 'log', 'lastlog'));
    expect(back.allocated).toBeLessThanOrEqual(src.allocated + 64 * 1024);
    // the written zeros come back as holes: never more allocated than the source had
    expect(sizes(join(out, 'var', 'zeros')).allocated).toBeLessThan(sizes(join(source, 'var', 'zeros')).allocated);

    const tarPath = join(tmp.dir, 'sparse.tar');
    expect((await run(['image', 'export', 'sparse/dir:1', '--format', 'tar', '--out', tarPath])).exitCode).toBe(0);
    expect(statSync(tarPath).size).toBeLessThan(1 << 20);
    const fromTar = join(tmp.dir, 'from-tar');
    await mkdir(fromTar);
    await execa('tar', ['-xf', tarPath, '-C', fromTar]);
    expect(sizes(join(fromTar, 'var', 'log', 'lastlog')).apparent).toBe(APPARENT);
    expect(sizes(join(fromTar, 'var', 'log', 'lastlog')).allocated).toBeLessThanOrEqual(src.allocated + 64 * 1024);
    expect(await sha256(join(fromTar, 'var', 'log', 'lastlog'))).toBe(await sha256(join(source, 'var', 'log', 'lastlog')));

    // the same content through the tar (and through a compressed stream of all its zeros) is the same image
    const again = await run<{ id: string }>(['image', 'import', tarPath]);
    expect(again.json.id).toBe(imported.json.id);
    const dense = join(tmp.dir, 'dense.tar.zst');
    await execa('sh', ['-c', `tar -C "${out}" --numeric-owner --format=pax -cf - . | zstd -q -o "${dense}"`]);
    const beforeDense = await repoBytes();
    const viaZstd = await run<{ id: string }>(['image', 'import', dense]);
    expect(viaZstd.exitCode, viaZstd.stderr).toBe(0);
    expect((await repoBytes()) - beforeDense).toBeLessThan(1 << 20);
  }, 600_000);
});
