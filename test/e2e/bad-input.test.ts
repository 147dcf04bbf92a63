import { execa } from 'execa';
import { chown, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim, projectRoot, runJs } from '../helpers/cli.js';
import { ALL_HOSTILE, BAD_INPUTS } from '../helpers/bad-inputs.js';
import { describeHostile } from '../helpers/hostile/harness.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let inputs: string;
const run = <T = Record<string, unknown>>(args: string[], options: { unprivileged?: boolean } = {}) => aim<T>([...args, '--repo', repo], options);

/** Everything observable of a repository: its files (and sizes) and what the catalog lists. */
async function repoState(): Promise<string> {
  const files: string[] = [];
  const walk = async (d: string) => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const st = await stat(p);
      if (st.isDirectory()) await walk(p);
      else if (!/catalog\.db(-wal|-shm)?$/.test(name)) files.push(`${p.slice(repo.length)} ${st.size}`);
    }
  };
  await walk(repo);
  const list = await run<{ images: unknown[] }>(['image', 'list']);
  return JSON.stringify({ files, images: list.json.images });
}

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  inputs = join(tmp.dir, 'inputs');
  await mkdir(inputs);
  expect((await run(['repo', 'init'])).exitCode).toBe(0);
  // one good image so "as it was" means something
  const good = join(tmp.dir, 'good');
  await mkdir(join(good, 'etc'), { recursive: true });
  await writeFile(join(good, 'etc', 'hostname'), 'good\n');
  expect((await run(['image', 'import', good, '--tag', 'good/one:1'])).exitCode).toBe(0);
});
afterAll(async () => tmp.cleanup());

describeHostile('bad input is refused cleanly', BAD_INPUTS);

describe('the hostile corpus', () => {
  it('has at least 100 cases, in classes the README lists', async () => {
    expect(ALL_HOSTILE.length).toBeGreaterThanOrEqual(100);
    const readme = await readFile(join(projectRoot, 'README.md'), 'utf8');
    for (const cls of new Set(ALL_HOSTILE.map((c) => c.class))) {
      const count = ALL_HOSTILE.filter((c) => c.class === cls).length;
      expect(readme, `README row for ${cls}`).toMatch(new RegExp(`^\\| ${cls.replace(/[/()]/g, '\\$&')} \\| ${count} \\|`, 'm'));
    }
  });

  it('without --json a refusal is one line on stderr, then the hint', async () => {
    const source = join(inputs, 'garbage.bin');
    await writeFile(source, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251)));
    const before = await repoState();
    const plain = await execa(process.execPath, [runJs, 'image', 'import', source, '--repo', repo], { reject: false });
    expect(plain.exitCode).toBe(4);
    const lines = plain.stderr.trimEnd().split('\n');
    const at = lines.findIndex((l) => l.startsWith('aim: '));
    expect(at, plain.stderr).toBeGreaterThanOrEqual(0);
    expect(lines.slice(at + 1).every((l) => l.startsWith('hint: ')), plain.stderr).toBe(true);
    expect(await repoState()).toBe(before);
  });

  it('an invalid tag is a usage error (exit 2) before any work', async () => {
    const res = await run<{ error: { code: string } }>(['image', 'import', inputs, '--tag', 'Bad Tag!']);
    expect(res.exitCode).toBe(2);
    expect(res.json.error.code).toBe('E_CONFIG');
  });
});

describe('privileges (uid 0 with every capability dropped, as an ordinary user has none)', () => {
  it('exporting device nodes to a directory says it needs root (exit 7) and writes nothing', async () => {
    const devTree = join(tmp.dir, 'devtree');
    await mkdir(join(devTree, 'dev'), { recursive: true });
    await execa('mknod', [join(devTree, 'dev', 'null'), 'c', '1', '3']);
    expect((await run(['image', 'import', devTree, '--tag', 'dev/one:1'])).exitCode).toBe(0);
    const out = join(tmp.dir, 'unpriv-out');
    await mkdir(out);
    const res = await run<{ error: { code: string; hint: string } }>(['image', 'export', 'dev/one:1', '--format', 'dir', '--out', join(out, 'root')], { unprivileged: true });
    expect(res.exitCode, res.stderr).toBe(7);
    expect(res.json.error.code).toBe('E_PERMISSION');
    expect(res.json.error.hint).toMatch(/root|--format tar/);
    expect(await readdir(out)).toEqual([]);
    // a tar export needs no privileges
    const tarOut = await run(['image', 'export', 'dev/one:1', '--format', 'tar', '--out', join(out, 'dev.tar')], { unprivileged: true });
    expect(tarOut.exitCode, tarOut.stderr).toBe(0);
  });

  it('importing a tree it cannot read says so (exit 7) and leaves the repository as it was', async () => {
    const secret = join(tmp.dir, 'secret-tree');
    await mkdir(join(secret, 'etc'), { recursive: true });
    await writeFile(join(secret, 'etc', 'shadow'), 'root:*:1:0:99999:7:::\n', { mode: 0o600 });
    await chown(join(secret, 'etc', 'shadow'), 1000, 1000); // not ours, and no CAP_DAC_OVERRIDE
    const before = await repoState();
    const res = await run<{ error: { code: string } }>(['image', 'import', secret], { unprivileged: true });
    expect(res.exitCode, res.stderr).toBe(7);
    expect(res.json.error.code).toBe('E_PERMISSION');
    expect(await repoState()).toBe(before);
  });

  it('building a gold image without privileges says it needs root (exit 7)', async () => {
    const res = await run<{ error: { code: string } }>(['image', 'gold', 'debian', '--include', 'hello'], { unprivileged: true });
    expect(res.exitCode).toBe(7);
    expect(res.json.error.code).toBe('E_PERMISSION');
  });
});
