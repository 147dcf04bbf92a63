/**
 * The examples in examples/ go gold → profile → slim → verify through the CLI, each from its
 * template: the gold tree is built with mmdebstrap from the template's gold section (cached by
 * content in .cache/gold), the rest is exactly what a user types.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTemplate, templateCopyIns } from '../../src/core/template/index.js';
import { aim, projectRoot } from '../helpers/cli.js';
import { cachedGoldTar } from '../helpers/gold.js';
import { tempDir } from '../helpers/tmp.js';

interface ProbeJson {
  kind: 'http' | 'exec';
  status?: number;
  exitCode?: number;
  sha256: string;
}
interface SlimJson {
  id: string;
  report: {
    gold: { files: number; bytes: number; packages: number };
    slim: { files: number; bytes: number; packages: number };
    limit: { files: number; bytes: number };
    packagesTouched: string[];
    entrypoint: string[];
  };
  explanations: { path: string; kept: boolean; reasons: string[] }[];
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

interface Example {
  dir: string;
  /** Expected probe outcomes, in template order. */
  probes: Partial<ProbeJson>[];
  /** A path --explain must find kept, with a reason matching. */
  explain: [string, RegExp];
  /** The target: at least this many times smaller than gold. */
  minReduction: number;
  /** Slim bytes within this factor of the traced physical limit. */
  maxOverLimit: number;
  /** Files of the gold tree the trace must have used. */
  used: string[];
}

const EXAMPLES: Example[] = [
  {
    dir: 'nginx',
    probes: [{ status: 200 }, { status: 200 }, { status: 404 }],
    explain: ['/var/www/html/style.css', /traced/],
    minReduction: 10,
    maxOverLimit: 1.2,
    used: ['/usr/sbin/nginx', '/var/www/html/index.html', '/var/www/html/style.css'],
  },
  {
    dir: 'redis',
    probes: [
      { exitCode: 0, sha256: sha256('PONG\n') },
      { exitCode: 0, sha256: sha256('OK\n') },
      { exitCode: 0, sha256: sha256('hello-from-aim\n') },
    ],
    explain: ['/usr/bin/redis-cli', /traced/],
    // The issue asks 10x; redis-server really maps 17.0 MiB (itself, libcrypto, libstdc++,
    // libsystemd and its compressors): 169.1 MiB of gold over that traced limit is 9.9x, so no
    // slim image of this gold can reach 10x. Guard what is reachable (measured: 9.8x).
    minReduction: 9.5,
    maxOverLimit: 1.2,
    used: ['/usr/bin/redis-server', '/usr/bin/redis-cli'],
  },
  {
    dir: 'python-http',
    probes: [{ status: 200 }, { status: 200 }, { status: 404 }],
    explain: ['/srv/app/server.py', /traced/],
    minReduction: 9.5, // measured 10.2x; the issue sets no target for Python
    maxOverLimit: 1.2,
    used: ['/srv/app/server.py', '/srv/app/static/index.html'],
  },
];

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(async () => tmp?.cleanup());

describe.each(EXAMPLES)('example $dir: gold → profile → slim → verify', (ex) => {
  const template = join(projectRoot, 'examples', ex.dir, 'template.yaml');
  let repo: string;
  const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);

  beforeAll(async () => {
    repo = join(tmp.dir, `repo-${ex.dir}`);
    const loaded = await loadTemplate(template);
    const tar = await cachedGoldTar(loaded.template.gold!.include, templateCopyIns(loaded));
    expect((await run('repo', 'init')).exitCode).toBe(0);
    const imported = await run('image', 'import', tar, '--tag', loaded.template.gold!.tag!);
    expect(imported.exitCode, imported.stderr).toBe(0);
  }, 1_200_000);

  it('profiles the workload from the template', async () => {
    const res = await run<{ run: { probes: ProbeJson[] }; profile: { paths: { path: string; ok: boolean }[] } }>('profile', 'run', '--template', template);
    expect(res.exitCode, res.stderr + res.stdout).toBe(0);
    expect(res.json.run.probes).toHaveLength(ex.probes.length);
    ex.probes.forEach((want, i) => expect(res.json.run.probes[i]).toMatchObject(want));
    const ok = new Set(res.json.profile.paths.filter((p) => p.ok).map((p) => p.path));
    for (const p of ex.used) expect(ok, p).toContain(p);
  }, 180_000);

  it('slims it at least the target factor, close to the physical limit, and explains', async () => {
    const res = await run<SlimJson>('slim', '--template', template, '--explain', ex.explain[0], '--explain', '/usr/bin/perl', '--explain', '/no/such/path');
    expect(res.exitCode, res.stderr + res.stdout).toBe(0);
    const r = res.json.report;
    expect(r.gold.bytes / r.slim.bytes).toBeGreaterThanOrEqual(ex.minReduction);
    expect(r.limit.bytes).toBeGreaterThan(0);
    expect(r.slim.bytes).toBeGreaterThanOrEqual(r.limit.bytes);
    expect(r.slim.bytes / r.limit.bytes).toBeLessThanOrEqual(ex.maxOverLimit);
    expect(r.packagesTouched).toContain('libc6');
    expect(r.slim.packages).toBeLessThan(r.gold.packages);
    expect(r.entrypoint.length).toBeGreaterThan(0);
    const [kept, perl, absent] = res.json.explanations;
    expect(kept).toMatchObject({ path: ex.explain[0], kept: true });
    expect(kept!.reasons.join('\n')).toMatch(ex.explain[1]);
    expect(perl).toMatchObject({ kept: false });
    expect(absent).toMatchObject({ path: '/no/such/path', kept: false });
    expect(absent!.reasons.join('\n')).toMatch(/not in the image/);
  }, 180_000);

  it('verifies the slim image against gold: every probe identical', async () => {
    const res = await run<{ ok: boolean; probes: { same: boolean }[] }>('verify', '--template', template);
    expect(res.exitCode, res.stderr + res.stdout).toBe(0);
    expect(res.json.ok).toBe(true);
    expect(res.json.probes).toHaveLength(ex.probes.length);
    expect(res.json.probes.every((p) => p.same)).toBe(true);
    // nothing materialised or mounted is left behind
    expect(await readdir(join(repo, 'tmp'))).toEqual([]);
    expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(repo);
  }, 240_000);
});
