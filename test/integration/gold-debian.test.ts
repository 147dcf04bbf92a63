import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/run/qemu.js';
import { aim } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  await run('repo', 'init');
});
afterAll(async () => tmp.cleanup());

describe('aim image gold debian', () => {
  it('prints the mmdebstrap command with --dry-run', async () => {
    const res = await run<{ command: string[] }>('image', 'gold', 'debian', '--include', 'hello', '--dry-run');
    expect(res.exitCode).toBe(0);
    expect(res.json.command.slice(0, 3)).toEqual(['mmdebstrap', '--variant=minbase', '--format=tar']);
    expect(res.json.command).toContain('--include=hello');
  });

  it('rejects a bad package name before running anything', async () => {
    const res = await run<{ error: { code: string } }>('image', 'gold', 'debian', '--include', 'x;rm -rf /');
    expect(res.exitCode).toBe(2);
  });

  it('builds a minbase image from real packages, streamed, with apt sources scrubbed', async () => {
    const res = await run<{ id: string; packageCount: number; sourceKind: string }>('image', 'gold', 'debian', '--include', 'hello', '--tag', 'gold/hello:1');
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.sourceKind).toBe('gold-debian');
    const ins = await run<{ packages: { name: string }[] }>('image', 'inspect', 'gold/hello:1', '--packages', '1000');
    expect(ins.json.packages.map((p) => p.name)).toEqual(expect.arrayContaining(['hello', 'libc6', 'dpkg']));
    const tar = join(tmp.dir, 'hello.tar');
    await run('image', 'export', 'gold/hello:1', '--format', 'tar', '--out', tar);
    const { execa } = await import('execa');
    const list = (await execa('tar', ['-tf', tar])).stdout.split('\n');
    expect(list).toContain('./usr/bin/hello');
    expect(list.filter((p) => /etc\/apt\/sources\.list(\.d\/.+)?$/.test(p) && !p.endsWith('/'))).toEqual([]);
  }, 600_000);

  it('reports mmdebstrap failing (its mirror unreachable) as exit 6 with its reason, and leaves the repository unchanged', async () => {
    // a mirror on a loopback port nobody listens on: apt fails at once, where an unknown package
    // fails only after the whole essential set was downloaded and unpacked (40 s here)
    const sources = join(tmp.dir, 'unreachable.list');
    await writeFile(sources, `deb http://127.0.0.1:${await freePort()}/debian bookworm main\n`);
    const before = await run<{ images: unknown[] }>('image', 'list');
    const res = await run<{ error: { code: string; message: string } }>('image', 'gold', 'debian', '--include', 'hello', '--sources', sources);
    expect(res.exitCode).toBe(6);
    expect(res.json.error.code).toBe('E_TOOL_FAILED');
    expect(res.json.error.message).toMatch(/^mmdebstrap failed .*127\.0\.0\.1/);
    expect((await run<{ images: unknown[] }>('image', 'list')).json.images).toEqual(before.json.images);
    const fsck = await run<{ ok: boolean; unreferencedBlobs: number }>('repo', 'fsck');
    expect(fsck.json).toMatchObject({ ok: true, unreferencedBlobs: 0 });
  }, 600_000);
});
