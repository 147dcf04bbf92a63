/**
 * Gold trees built once per machine and reused: tests, the demo and the benchmarks need the same
 * mmdebstrap tars many times, and a build takes minutes. A tar is named by the content of its
 * recipe (suite, variant, packages, and the bytes and modes of every file copied in), so editing
 * an example's site or app gives a new tree and an unchanged recipe reuses the old one.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runTool } from '../../lib/exec.js';
import { withFileMutex } from '../../lib/file-mutex.js';
import { readHostAptSources, sourcesForSuite } from './apt-sources.js';
import { mmdebstrapArgs, type CopyIn, type GoldDebianRequest } from './gold-debian.js';

export interface GoldRecipe {
  packages: readonly string[];
  copyIns?: readonly CopyIn[];
  suite?: string;
  variant?: GoldDebianRequest['variant'];
  /** Keep the machine's apt sources in the tree (the cache is never committed). */
  keepAptSources?: boolean;
}

async function hashTree(hash: ReturnType<typeof createHash>, path: string, rel: string): Promise<void> {
  const st = await stat(path);
  hash.update(`${rel}\0${st.mode.toString(8)}\0`);
  if (st.isDirectory()) {
    for (const name of (await readdir(path)).sort()) await hashTree(hash, join(path, name), `${rel}/${name}`);
  } else {
    hash.update(await readFile(path));
  }
}

/** sha256 of a recipe's content: what a cached tree is named by. */
export async function goldRecipeKey(recipe: GoldRecipe): Promise<string> {
  const hash = createHash('sha256');
  const { suite = 'bookworm', variant = 'minbase', keepAptSources = false } = recipe;
  hash.update(JSON.stringify({ suite, variant, keepAptSources, packages: [...recipe.packages].sort() }));
  for (const c of recipe.copyIns ?? []) {
    hash.update(`\0copy-in ${c.dest}\0`);
    await hashTree(hash, c.src, '.');
  }
  return hash.digest('hex');
}

/** A large tree (a JDK, a database) on a loaded 2-core machine takes 20 minutes. */
const MMDEBSTRAP_TIMEOUT_MS = 40 * 60_000;

/** Where the cached tar for `recipe` lives in `cacheDir`: named by the recipe's key. */
export async function goldTarPath(cacheDir: string, recipe: GoldRecipe): Promise<string> {
  return join(cacheDir, `gold-${(await goldRecipeKey(recipe)).slice(0, 16)}.tar`);
}

/** Path of the cached tar for `recipe` in `cacheDir`, building it with mmdebstrap when absent. */
export async function cachedGoldTar(cacheDir: string, recipe: GoldRecipe): Promise<string> {
  const out = await goldTarPath(cacheDir, recipe);
  return cachedFile(out, async (tmp) => {
    const suite = recipe.suite ?? 'bookworm';
    const args = mmdebstrapArgs({
      suite,
      variant: recipe.variant ?? 'minbase',
      include: [...recipe.packages],
      tags: [],
      keepAptSources: recipe.keepAptSources,
      copyIns: recipe.copyIns ? [...recipe.copyIns] : undefined,
    });
    args[args.length - 2] = tmp; // mmdebstrapArgs ends SUITE TARGET MIRROR with TARGET "-" (stdout); here, the file
    const sources = sourcesForSuite(await readHostAptSources(), suite);
    await runTool('mmdebstrap', args, { input: sources.join('\n') + '\n', timeout: MMDEBSTRAP_TIMEOUT_MS });
  });
}

/**
 * `out`, made by `build` (which writes the file it is given) when absent. A lock directory
 * holding the builder's pid makes parallel callers on this machine wait for one build instead of
 * running their own, however long it takes; the lock of a builder that died is broken. The file
 * appears complete or not at all.
 */
export async function cachedFile(out: string, build: (tmp: string) => Promise<void>): Promise<string> {
  if (existsSync(out)) return out;
  await mkdir(dirname(out), { recursive: true });
  return withFileMutex(`${out}.lock`, async () => {
    if (existsSync(out)) return out;
    const tmp = `${out}.${process.pid}.partial`;
    try {
      await build(tmp);
      await rename(tmp, out);
      return out;
    } finally {
      await rm(tmp, { force: true });
    }
  }, { pollMs: 1000 });
}
