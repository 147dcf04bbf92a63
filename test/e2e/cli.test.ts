import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Config } from '@oclif/core';
import { aim, projectRoot, runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { buildEveryTypeTree, compareSnapshots, snapshotTree } from '../helpers/tree.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let tree: string;
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  tree = join(tmp.dir, 'tree');
  await buildEveryTypeTree(tree);
});
afterAll(async () => tmp.cleanup());

describe('aim CLI', () => {
  it('has help with examples and --json for every command', async () => {
    // every command in oclif's manifest, from its metadata (one process, not one per command)
    const config = await Config.load(projectRoot);
    const commands = config.commands.filter((c) => c.pluginName === config.pjson.name);
    expect(commands.map((c) => c.id)).toEqual(expect.arrayContaining(['repo:init', 'image:import', 'profile:run', 'slim', 'verify', 'build', 'ship', 'ship:list']));
    for (const c of commands) {
      expect(c.examples?.length ?? 0, c.id).toBeGreaterThan(0);
      expect(Object.keys(c.flags), c.id).toContain('json');
    }
    // and rendered as a user sees it
    const top = await execa(process.execPath, [runJs, '--help']);
    expect(top.stdout).toMatch(/repo/);
    expect(top.stdout).toMatch(/image/);
    for (const cmd of ['image import', 'ship']) {
      const h = await execa(process.execPath, [runJs, ...cmd.split(' '), '--help']);
      expect(h.stdout, cmd).toMatch(/EXAMPLES/);
      expect(h.stdout, cmd).toMatch(/--json/);
    }
  });

  it('says how to create a repository when there is none (exit 3)', async () => {
    const res = await run('image', 'list');
    expect(res.exitCode).toBe(3);
    expect(res.json).toMatchObject({ error: { code: 'E_NOT_FOUND' } });
    expect(String((res.json as { error: { hint: string } }).error.hint)).toMatch(/aim repo init/);
  });

  it('initialises a repository idempotently', async () => {
    const a = await run<{ created: boolean }>('repo', 'init');
    expect(a.exitCode).toBe(0);
    expect(a.json.created).toBe(true);
    const b = await run<{ created: boolean }>('repo', 'init');
    expect(b.json.created).toBe(false);
  });

  it('imports a directory with every entry type and exports it back exactly', async () => {
    const imp = await run<{ id: string; fileCount: number; skipped: unknown[] }>('image', 'import', tree, '--tag', 'fixture/every:1');
    expect(imp.exitCode, imp.stderr).toBe(0);
    expect(imp.json.id).toMatch(/^[0-9a-f]{64}$/);
    const out = join(tmp.dir, 'out-dir');
    const exp = await run('image', 'export', 'fixture/every:1', '--format', 'dir', '--out', out);
    expect(exp.exitCode, exp.stderr).toBe(0);
    const diffs = compareSnapshots(await snapshotTree(tree), await snapshotTree(out));
    expect(diffs).toEqual([]);
    const caps = await execa('getcap', [join(out, 'bin', 'ping-like')]);
    expect(caps.stdout).toMatch(/cap_net_raw[=+]ep/);
  });

  it('gives the same id to a tar export of an image', async () => {
    const tar = join(tmp.dir, 'every.tar');
    expect((await run('image', 'export', 'fixture/every:1', '--format', 'tar', '--out', tar)).exitCode).toBe(0);
    const again = await run<{ id: string; created: boolean }>('image', 'import', tar, '--tag', 'fixture/every:tar');
    const first = await run<{ id: string }>('image', 'inspect', 'fixture/every:1');
    expect(again.json.id).toBe(first.json.id);
    expect(again.json.created).toBe(false);
    // GNU tar reads our archive and restores the same tree
    const out = join(tmp.dir, 'gnu-extract');
    await execa('mkdir', [out]);
    await execa('tar', ['-xpf', tar, '-C', out, '--xattrs', '--xattrs-include=*', '--numeric-owner']);
    const diffs = compareSnapshots(await snapshotTree(tree), await snapshotTree(out));
    expect(diffs).toEqual([]);
  });

  it('lists, inspects, diffs, tags and removes images', async () => {
    const list = await run<{ images: { id: string; tags: string[] }[] }>('image', 'list');
    expect(list.json.images).toHaveLength(1);
    expect(list.json.images[0]!.tags.sort()).toEqual(['fixture/every:1', 'fixture/every:tar']);

    const ins = await run<{ counts: Record<string, number>; totalSize: number }>('image', 'inspect', 'fixture/every:1');
    expect(ins.json.counts).toMatchObject({ char: 1, fifo: 1, hardlink: 2 });
    expect(ins.json.totalSize).toBeGreaterThan(3 * 1024 * 1024);

    const changed = join(tmp.dir, 'tree2');
    await execa('cp', ['-a', tree, changed]);
    await execa('sh', ['-c', `echo changed > ${changed}/etc/config && rm ${changed}/big.bin && echo new > ${changed}/added`]);
    await run('image', 'import', changed, '--tag', 'fixture/every:2');
    const diff = await run<{ summary: { added: number; removed: number; changed: number }; changed: { path: string; changes: string[] }[] }>(
      'image', 'diff', 'fixture/every:1', 'fixture/every:2',
    );
    expect(diff.json.summary).toMatchObject({ added: 1, removed: 1 });
    expect(diff.json.changed.find((c) => c.path === '/etc/config')!.changes).toContain('content');

    expect((await run('image', 'tag', 'fixture/every:2', 'fixture/every:latest')).exitCode).toBe(0);
    const rm1 = await run<{ removedImage?: string }>('image', 'rm', 'fixture/every:2');
    expect(rm1.json.removedImage).toBeUndefined();
    const rm2 = await run<{ removedImage?: string }>('image', 'rm', 'fixture/every:latest');
    expect(rm2.json.removedImage).toMatch(/^[0-9a-f]{64}$/);
    const missing = await run('image', 'inspect', 'fixture/every:2');
    expect(missing.exitCode).toBe(3);

    const gc = await run<{ removedBlobs: number }>('repo', 'gc');
    expect(gc.exitCode).toBe(0);
    expect(gc.json.removedBlobs).toBeGreaterThanOrEqual(3); // manifest, changed config, added file
    const fsck = await run<{ ok: boolean; unreferencedBlobs: number }>('repo', 'fsck');
    expect(fsck.json).toMatchObject({ ok: true, unreferencedBlobs: 0 });
    expect(await readdir(join(repo, 'tmp'))).toEqual([]);
    expect(existsSync(join(repo, 'catalog.db'))).toBe(true);
  });
});
