/**
 * The examples in examples/ go gold → profile → slim → verify through the CLI, each from its
 * template, exactly as a user types it. Test files pick which examples they run and where the
 * gold tree comes from: the template's own recipe, or one tree shared by several examples.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTemplate, templateCopyIns } from '../../src/core/template/index.js';
import { aim, projectRoot } from './cli.js';
import { layeredGoldTar } from './gold.js';
import { tempDir } from './tmp.js';

export interface ProbeJson {
  kind: 'http' | 'exec';
  status?: number;
  exitCode?: number;
  sha256: string;
  /** Exec probes: the last lines of the output. */
  outputTail?: string;
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

export const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export interface Example {
  dir: string;
  /** Expected probe outcomes, in template order. */
  probes: Partial<ProbeJson>[];
  /** A path --explain must find kept, with a reason matching. */
  explain: [string, RegExp];
  /** A path of the gold image --explain must find not kept; default /usr/bin/perl. */
  notKept?: string;
  /**
   * At least this many times smaller than gold. Only for examples on their own gold tree: a
   * tree shared by several examples says nothing about one example's reduction.
   */
  minReduction?: number;
  /** Slim bytes within this factor of the traced physical limit. */
  maxOverLimit: number;
  /** Files of the gold tree the trace must have used. */
  used: string[];
  /**
   * Probes (by index) whose answer varies by nature (metrics): verified with --allow-flaky, they
   * must come out "flaky" and slim must meet their expectation; every other probe "same".
   */
  flaky?: number[];
}

export const templatePath = (dir: string) => join(projectRoot, 'examples', dir, 'template.yaml');

/** Gold tag and mmdebstrap recipe (packages, copy-ins) of an example's template. */
export async function goldRecipe(dir: string): Promise<{ tag: string; packages: string[]; copyIns: string[] }> {
  const loaded = await loadTemplate(templatePath(dir));
  const gold = loaded.template.gold!;
  return { tag: gold.tag!, packages: gold.include, copyIns: templateCopyIns(loaded) };
}

/**
 * The cached gold tar of one example's own recipe: the tree of its packages (shared with every
 * other user of those packages) with its copy-ins laid over it.
 */
export async function ownGoldTar(dir: string): Promise<string> {
  const r = await goldRecipe(dir);
  return layeredGoldTar(r.packages, r.copyIns);
}

/**
 * One cached gold tar holding the packages and copy-ins of every example in `dirs`: one
 * mmdebstrap run instead of one per example (most of a build is the same minbase), the copy-ins
 * laid over it afterwards. Copy-ins of different examples must not land on the same path.
 */
export async function sharedGoldTar(dirs: readonly string[]): Promise<string> {
  const recipes = await Promise.all(dirs.map(goldRecipe));
  const dests = new Map<string, string>();
  for (const [i, r] of recipes.entries()) {
    for (const c of r.copyIns) {
      const dest = c.slice(c.lastIndexOf(':') + 1);
      const other = dests.get(dest);
      if (other !== undefined && other !== dirs[i]) throw new Error(`examples ${other} and ${dirs[i]} both copy into ${dest}`);
      dests.set(dest, dirs[i]!);
    }
  }
  const packages = [...new Set(recipes.flatMap((r) => r.packages))].sort();
  return layeredGoldTar(packages, recipes.flatMap((r) => r.copyIns));
}

/**
 * Runs each example through gold → profile → slim → verify in one repository. `goldTar` gives
 * the tar to import for an example; a tar already imported is only tagged with the example's
 * gold tag (`aim image tag`), so a shared tree is imported once.
 */
export function describeExamples(examples: readonly Example[], goldTar: (dir: string) => Promise<string>): void {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let repo: string;
  const imported = new Map<string, string>();
  const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);

  beforeAll(async () => {
    tmp = await tempDir();
    repo = join(tmp.dir, 'repo');
    expect((await run('repo', 'init')).exitCode).toBe(0);
  });
  afterAll(async () => tmp?.cleanup());

  describe.each(examples)('example $dir: gold → profile → slim → verify', (ex) => {
    const template = templatePath(ex.dir);

    beforeAll(async () => {
      const [tar, recipe] = await Promise.all([goldTar(ex.dir), goldRecipe(ex.dir)]);
      const first = imported.get(tar);
      const res = first === undefined ? await run('image', 'import', tar, '--tag', recipe.tag) : await run('image', 'tag', first, recipe.tag);
      expect(res.exitCode, res.stderr).toBe(0);
      imported.set(tar, recipe.tag);
    }, 1_200_000);

    it('profiles the workload from the template', async () => {
      const res = await run<{ run: { probes: ProbeJson[]; ready?: { ms: number; tries: number }; readyMs?: number }; profile: { paths: { path: string; ok: boolean }[] } }>('profile', 'run', '--template', template);
      expect(res.exitCode, res.stderr + res.stdout).toBe(0);
      expect(res.json.run.probes).toHaveLength(ex.probes.length);
      ex.probes.forEach((want, i) => expect(res.json.run.probes[i], `probe ${i}`).toMatchObject(want));
      const ok = new Set(res.json.profile.paths.filter((p) => p.ok).map((p) => p.path));
      for (const p of ex.used) expect(ok, p).toContain(p);
      console.log(`${ex.dir}: ready after ${res.json.run.ready?.ms ?? res.json.run.readyMs ?? '-'} ms`);
    }, 240_000);

    it('slims it close to the physical limit, and explains', async () => {
      const res = await run<SlimJson>('slim', '--template', template, '--explain', ex.explain[0], '--explain', ex.notKept ?? '/usr/bin/perl', '--explain', '/no/such/path');
      expect(res.exitCode, res.stderr + res.stdout).toBe(0);
      const r = res.json.report;
      if (ex.minReduction !== undefined) expect(r.gold.bytes / r.slim.bytes).toBeGreaterThanOrEqual(ex.minReduction);
      expect(r.limit.bytes).toBeGreaterThan(0);
      expect(r.slim.bytes).toBeGreaterThanOrEqual(r.limit.bytes);
      expect(r.slim.bytes / r.limit.bytes).toBeLessThanOrEqual(ex.maxOverLimit);
      expect(r.packagesTouched).toContain('libc6');
      expect(r.slim.packages).toBeLessThan(r.gold.packages);
      expect(r.entrypoint.length).toBeGreaterThan(0);
      const [kept, notKept, absent] = res.json.explanations;
      expect(kept).toMatchObject({ path: ex.explain[0], kept: true });
      expect(kept!.reasons.join('\n')).toMatch(ex.explain[1]);
      expect(notKept).toMatchObject({ kept: false });
      expect(absent).toMatchObject({ path: '/no/such/path', kept: false });
      expect(absent!.reasons.join('\n')).toMatch(/not in the image/);
      console.log(`${ex.dir}: slim ${(r.slim.bytes / 2 ** 20).toFixed(1)} MiB, limit ${(r.limit.bytes / 2 ** 20).toFixed(1)} MiB (${(r.slim.bytes / r.limit.bytes).toFixed(2)}x)`);
    }, 240_000);

    it('verifies the slim image against gold: every probe identical', async () => {
      const res = await run<{ ok: boolean; probes: { same: boolean; verdict: string }[] }>('verify', '--template', template, ...(ex.flaky ? ['--allow-flaky'] : []));
      expect(res.exitCode, res.stderr + res.stdout).toBe(0);
      expect(res.json.ok).toBe(true);
      expect(res.json.probes).toHaveLength(ex.probes.length);
      expect(res.json.probes.map((p) => p.verdict)).toEqual(ex.probes.map((_, i) => (ex.flaky?.includes(i) ? 'flaky' : 'same')));
      // nothing materialised or mounted is left behind
      expect(await readdir(join(repo, 'tmp'))).toEqual([]);
      expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(repo);
    }, 300_000);
  });
}
