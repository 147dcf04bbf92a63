/**
 * Issue 10, point 1 (write side): images whose entries point out of the tree (/.aim as a symlink
 * to a host directory or climbing out with ../.., /.aim as a file, /etc and /tmp as host links, a
 * hard link to a symlink to a host file) are built (raw, pxe), exported (dir, tar) and profiled.
 * A sentinel tree around the working directory and around every link target must be byte for
 * byte unchanged afterwards, exits must be clear, and exported tars safe for a naive extractor.
 */
import { execa } from 'execa';
import { readdir, readFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitImage } from '../../src/core/import/commit.js';
import type { IngestResult } from '../../src/core/import/ingest.js';
import type { Entry } from '../../src/core/model/entry.js';
import { openRepository } from '../../src/core/repository/repository.js';
import { silentReporter } from '../../src/lib/reporter.js';
import { HOSTILE_IMAGES, writeHostileTar, type Sentinel } from '../helpers/bad-inputs-write.js';
import { runJs } from '../helpers/cli.js';
import { readNewcArchives } from '../helpers/newc.js';
import { listTar, tarHazards } from '../helpers/tar-safety.js';
import { tempDir } from '../helpers/tmp.js';
import { compareSnapshots, snapshotTree } from '../helpers/tree.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let outs: string;
let sentinelDir: string;
let sentinel: Sentinel;
let scratch: string;
let cwd: string;
let before: Awaited<ReturnType<typeof snapshotTree>>;

interface Result {
  exitCode: number;
  json: { error?: { code: string; message: string; hint?: string } } & Record<string, unknown>;
  stderr: string;
}

/** aim … --json, run from the sentinel's working directory with its scratch space in the sentinel. */
async function run(...args: string[]): Promise<Result> {
  const r = await execa(process.execPath, [runJs, ...args, '--repo', repo, '--json'], { cwd, reject: false, env: { ...process.env, AIM_TMPDIR: scratch }, timeout: 600_000 });
  let json: Result['json'];
  try {
    json = JSON.parse(r.stdout) as Result['json'];
  } catch {
    json = {};
  }
  return { exitCode: r.exitCode ?? -1, json, stderr: r.stderr };
}

/** The sentinel as it is now, except the scratch directory's own times (aim makes and removes its work directories there). */
async function sentinelNow() {
  const snap = await snapshotTree(sentinelDir);
  const s = snap.get('scratch');
  if (s) s.mtimeNs = '0';
  return snap;
}

async function expectSentinelIntact(what: string): Promise<void> {
  expect(compareSnapshots(before, await sentinelNow()), what).toEqual([]);
  expect(await readdir(scratch), `${what}: scratch left behind`).toEqual([]);
}

/** A clear error: aim's code, one line, no raw system error text. */
function expectClearError(r: Result, code: string, exitCode: number): void {
  expect(r.exitCode, r.stderr).toBe(exitCode);
  expect(r.json.error?.code).toBe(code);
  expect(r.json.error!.message.split('\n')).toHaveLength(1);
  expect(r.json.error!.message).not.toMatch(/^E[A-Z]+:|ENOTDIR|ENOENT|EEXIST|ELOOP/);
}

const rootCpioOf = async (initrd: string) => {
  const cpio = (await execa('zstd', ['-dc', initrd], { encoding: 'buffer', maxBuffer: 1 << 30 })).stdout;
  const archives = readNewcArchives(Buffer.from(cpio));
  return new Map(archives[1]!.map((m) => [m.name, m]));
};

beforeAll(async () => {
  tmp = await tempDir('aim-hostile-');
  repo = join(tmp.dir, 'repo');
  outs = join(tmp.dir, 'outs');
  sentinelDir = join(tmp.dir, 'sentinel');
  sentinel = { host: join(sentinelDir, 'host'), secret: join(sentinelDir, 'secret'), elsewhere: join(sentinelDir, 'elsewhere') };
  scratch = join(sentinelDir, 'scratch');
  cwd = join(sentinelDir, 'cwd');
  for (const d of [outs, sentinel.host, sentinel.elsewhere, scratch, cwd]) await mkdir(d, { recursive: true });
  await writeFile(join(sentinel.host, 'init'), 'the host\'s own init: aim must not overwrite it\n');
  await writeFile(join(sentinel.host, 'busybox'), 'not busybox\n');
  await writeFile(sentinel.secret, 'TOP SECRET host file\n', { mode: 0o600 });
  await writeFile(join(sentinel.elsewhere, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  await writeFile(join(cwd, 'notes'), 'the user\'s working directory\n');
  expect((await run('repo', 'init')).exitCode).toBe(0);
  before = await sentinelNow();
}, 60_000);
afterAll(async () => tmp.cleanup());

describe.each(HOSTILE_IMAGES.map((image, i) => ({ ...image, tag: `hostile/case${i}:1`, n: i })))('$name', (image) => {
  const out = (what: string) => join(outs, `case${image.n}-${what}`);

  beforeAll(async () => {
    const source = await writeHostileTar(image, sentinel, join(tmp.dir, `case${image.n}.tar`));
    const r = await run('image', 'import', source, '--tag', image.tag);
    expect(r.exitCode, r.stderr).toBe(0);
  }, 120_000);

  it('export --format tar gives a tar that is safe to extract, and extracting it writes nothing outside', async () => {
    const tar = out('export.tar');
    const r = await run('image', 'export', image.tag, '--format', 'tar', '--out', tar);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(tarHazards(await listTar(tar))).toEqual([]);
    // naive extractors: GNU tar as root, Python's tarfile trusting everything
    const gnu = out('gnu');
    await mkdir(gnu);
    await execa('tar', ['-xpf', tar, '-C', gnu]);
    const py = out('python');
    await execa('python3', ['-c', 'import sys, tarfile\nwith tarfile.open(sys.argv[1]) as t: t.extractall(sys.argv[2], filter="fully_trusted")', tar, py]);
    await expectSentinelIntact('export tar');
  });

  it('export --format dir writes the tree exactly, inside --out only', async () => {
    const dir = out('dir');
    const r = await run('image', 'export', image.tag, '--format', 'dir', '--out', dir);
    expect(r.exitCode, r.stderr).toBe(0);
    const names = await readdir(dir);
    expect(names).toContain('bin');
    expect(names.filter((n) => n.startsWith('.aim-export-'))).toEqual([]);
    await expectSentinelIntact('export dir');
  });

  // (raw and pxe stage the root the same way; raw, the slower, runs for the /.aim cases)
  if (image.aimDir) it('build --format raw succeeds and writes aim\'s files only into the artifact', async () => {
    const dir = out('raw');
    const r = await run('build', image.tag, '--format', 'raw', '--entrypoint', 'app', '--out', dir);
    expect(r.exitCode, r.stderr).toBe(0);
    await expectSentinelIntact('build raw');
    // the root partition (after the 1 MiB gap and the 64 MiB ESP) holds aim's /.aim
    const root = join(dir, 'root.img');
    await execa('dd', [`if=${join(dir, 'disk.raw')}`, `of=${root}`, 'bs=1M', 'skip=65', 'conv=sparse', 'status=none']);
    const init = await execa('debugfs', ['-R', 'cat /.aim/init', root]);
    expect(init.stdout).toMatch(/^#!\/\.aim\/busybox sh\n# aim init/);
    const stat = await execa('debugfs', ['-R', 'stat /.aim', root]);
    expect(stat.stdout).toMatch(/Type: directory/);
  }, 300_000);

  it('build --format pxe succeeds and the root cpio carries aim\'s /.aim, the image\'s other entries as they are', async () => {
    const dir = out('pxe');
    const r = await run('build', image.tag, '--format', 'pxe', '--entrypoint', 'app', '--out', dir);
    expect(r.exitCode, r.stderr).toBe(0);
    await expectSentinelIntact('build pxe');
    const root = await rootCpioOf(join(dir, 'initrd.img'));
    expect(root.get('newroot/.aim')!.mode & 0o170000).toBe(0o040000);
    expect(root.get('newroot/.aim/init')!.data.toString()).toMatch(/^#!\/\.aim\/busybox sh\n# aim init/);
    expect(root.get('newroot/.aim/busybox')!.data.equals(await readFile('/usr/bin/busybox'))).toBe(true);
    if (image.aimDir) expect([...root.keys()].filter((n) => n.startsWith('newroot/.aim/')).sort()).toEqual(['newroot/.aim/acpi', 'newroot/.aim/acpi/PWRF', 'newroot/.aim/acpi/PWRF/00000080', 'newroot/.aim/busybox', 'newroot/.aim/dhcp', 'newroot/.aim/init']);
    // an entry aim did not need keeps its own link, the host file's content never enters
    for (const m of root.values()) expect(m.data.toString('latin1')).not.toContain('TOP SECRET');
    for (const [path, content] of Object.entries(image.rootHolds ?? {})) expect(root.get(`newroot/${path}`)?.data.toString(), path).toBe(content);
  }, 300_000);

  it(`profile run materialises the image in scratch space only${image.profileRefused ? ` (refused: ${image.profileRefused})` : ''}`, async () => {
    const r = await run('profile', 'run', image.tag, '--run', 'true', '--duration', '1s', '--name', `case${image.n}`);
    if (image.profileRefused) expectClearError(r, image.profileRefused, 4);
    else expect(r.exitCode, r.stderr).toBe(0);
    await expectSentinelIntact('profile run');
  }, 120_000);
});

describe('reproducible output', () => {
  it('the same hostile image built twice as pxe gives the same initrd (builds seconds apart: aim\'s additions carry fixed times, the root keeps its own)', async () => {
    const sums: string[] = [];
    for (const n of [1, 2]) {
      const dir = join(outs, `repro-${n}`);
      const r = await run('build', 'hostile/case0:1', '--format', 'pxe', '--entrypoint', 'app', '--out', dir);
      expect(r.exitCode, r.stderr).toBe(0);
      sums.push((r.json as unknown as { artifacts: { path: string; sha256: string }[] }).artifacts.find((a) => a.path.endsWith('initrd.img'))!.sha256);
    }
    expect(sums[1]).toBe(sums[0]);
    await expectSentinelIntact('reproducible pxe');
  }, 300_000);
});

/** Commits a manifest as an older aim could have stored it (import refuses these now). */
async function commitManifest(tag: string, make: (s: Sentinel, blob: { hash: string; size: number }) => Entry[]): Promise<void> {
  const r = await openRepository(repo);
  try {
    const blob = await r.blobs.putBuffer(Buffer.from('payload\n'));
    const entries: Entry[] = [{ path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 }, ...make(sentinel, blob)];
    const ingested: IngestResult = { entries, elfBlobs: new Set(), elfFacts: new Map(), fileCount: 1, totalSize: blob.size, skipped: [] };
    await commitImage(r, ingested, { source: 'test', sourceKind: 'test', tags: [tag] }, silentReporter);
  } finally {
    await r.close();
  }
}

describe('manifests an older aim stored', () => {
  const refused: { name: string; entries: (s: Sentinel, blob: { hash: string; size: number }) => Entry[]; names: string[] }[] = [
    {
      name: 'a file below a symlink to a host directory',
      entries: (s, b) => [
        { path: '/b', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target: s.elsewhere },
        { path: '/b/x', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: b.size, blob: b.hash },
      ],
      names: ['/b/x', '/b'],
    },
    {
      name: 'a file below a regular file',
      entries: (_, b) => [
        { path: '/a', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: b.size, blob: b.hash },
        { path: '/a/x', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: b.size, blob: b.hash },
      ],
      names: ['/a/x', '/a'],
    },
  ];

  for (const [i, c] of refused.entries()) {
    it(`${c.name}: every export and build refuses with both names (exit 8), nothing written`, async () => {
      const tag = `contradictory/case${i}:1`;
      await commitManifest(tag, c.entries);
      const attempts: [string, string[]][] = [
        ['export.tar', ['image', 'export', tag, '--format', 'tar', '--out']],
        ['export-dir', ['image', 'export', tag, '--format', 'dir', '--out']],
        ['build-tar', ['build', tag, '--format', 'tar', '--out']],
        ['build-oci', ['build', tag, '--format', 'oci', '--out']],
      ];
      for (const [what, args] of attempts) {
        const res = await run(...args, join(outs, `contradictory${i}-${what}`));
        expectClearError(res, 'E_UNSAFE_MANIFEST', 8);
        for (const n of c.names) expect(res.json.error!.message).toContain(`"${n}"`);
      }
      expect((await readdir(outs)).filter((n) => n.startsWith(`contradictory${i}-`) || n.includes('.partial'))).toEqual([]);
      await expectSentinelIntact('contradictory manifest');
    }, 120_000);
  }

  it('a hard link to a symlink to a host file is exported as a copy of the symlink, safe for naive extractors', async () => {
    const tag = 'older/hardlink-to-symlink:1';
    await commitManifest(tag, (s) => [
      { path: '/hard', type: 'hardlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target: '/link' },
      { path: '/link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target: s.secret },
    ]);
    const tar = join(outs, 'older-hardlink.tar');
    const r = await run('image', 'export', tag, '--format', 'tar', '--out', tar);
    expect(r.exitCode, r.stderr).toBe(0);
    const members = await listTar(tar);
    expect(tarHazards(members)).toEqual([]);
    expect(members.find((m) => m.name === './hard')).toEqual({ name: './hard', type: 'symlink', linkname: sentinel.secret });
    const py = join(outs, 'older-hardlink-python');
    await execa('python3', ['-c', 'import sys, tarfile\nwith tarfile.open(sys.argv[1]) as t: t.extractall(sys.argv[2], filter="fully_trusted")', tar, py]);
    const dir = join(outs, 'older-hardlink-dir');
    expect((await run('image', 'export', tag, '--format', 'dir', '--out', dir)).exitCode).toBe(0);
    await expectSentinelIntact('hard link to a symlink');
  });
});
