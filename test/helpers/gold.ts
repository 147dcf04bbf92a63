import { join } from 'node:path';
import { cachedGoldTar as cached, type GoldRecipe } from '../../src/core/import/gold-cache.js';
import { resolveCopyIns } from '../../src/core/import/gold-debian.js';
import { projectRoot } from './cli.js';

/** Gold trees the tests share, built once per machine with mmdebstrap and cached (never committed). */
export const GOLD = {
  nginx: ['nginx'],
  redis: ['redis-server'],
  systemd: ['systemd-sysv'],
} as const;

export const goldCacheDir = join(projectRoot, '.cache', 'gold');

/**
 * Path of a cached mmdebstrap minbase tar with the given packages, building it when absent.
 * These trees keep the machine's apt sources (the cache is never committed).
 */
export async function goldTar(name: keyof typeof GOLD): Promise<string> {
  return cached(goldCacheDir, { packages: GOLD[name], keepAptSources: true }, `${name}.tar`);
}

/**
 * A cached minbase tar with `packages` and host content copied in ("SRC:DEST", SRC relative to
 * the project root), named by the content of that recipe so tests, the demo and the benchmarks
 * share it. Apt sources are scrubbed, as `aim image gold debian` does.
 */
export async function cachedGoldTar(packages: readonly string[], copyIns: readonly string[] = []): Promise<string> {
  const recipe: GoldRecipe = { packages, copyIns: await resolveCopyIns(copyIns, projectRoot) };
  return cached(goldCacheDir, recipe);
}
