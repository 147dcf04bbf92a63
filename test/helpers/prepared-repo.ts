import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { cachedFile } from '../../src/core/import/gold-cache.js';
import { devCache, projectRoot } from './cli.js';
import { tempDir } from './tmp.js';

/**
 * Repositories that several test files start from (a slim image made from a cached gold tree, the
 * kernel core), made once through the CLI and kept as a tar in the dev cache. The key covers the
 * code that made it (every file of dist/, which the CLI runs), the recipe's name and its inputs
 * (the gold tars and kernel packages, by name, size and time), so a change to aim or to an input
 * makes it again; an older tar of the same recipe is removed when a new one is made. Files that
 * test the steps themselves (import, profile, slim) do not use it.
 */
const cacheDir = join(devCache, 'repos');

let codeHash: Promise<string> | undefined;

/** sha256 over dist/'s files (path and content), once per process. */
function distHash(): Promise<string> {
  codeHash ??= (async () => {
    const h = createHash('sha256');
    const dist = join(projectRoot, 'dist');
    const files = (await readdir(dist, { recursive: true, withFileTypes: true })).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name)).sort();
    for (const f of files) h.update(`${relative(dist, f)}\0`).update(await readFile(f)).update('\0');
    return h.digest('hex');
  })();
  return codeHash;
}

/** Name, size and modification time of each input file (directories: of each file below): what identifies a cached gold tar or kernel package. */
async function describeInputs(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const path of paths) {
    const st = await stat(path);
    if (st.isDirectory()) out.push(...(await describeInputs((await readdir(path)).sort().map((name) => join(path, name)))));
    else out.push(`${path}:${st.size}:${st.mtimeMs}`);
  }
  return out;
}

/**
 * Makes `repo` (absent or empty) a copy of the repository `recipe` builds with `build(repo)`,
 * from the dev cache when this code already built it from these inputs.
 */
export async function preparedRepo(repo: string, recipe: string, inputs: readonly string[], build: (repo: string) => Promise<void>): Promise<void> {
  const key = createHash('sha256').update(`${recipe}\n${await distHash()}\n${(await describeInputs(inputs)).join('\n')}`).digest('hex').slice(0, 16);
  const tar = join(cacheDir, `${recipe}-${key}.tar`);
  await cachedFile(tar, async (tmp) => {
    const work = await tempDir(`aim-prepared-${recipe}-`);
    try {
      const made = join(work.dir, 'repo');
      await build(made);
      await execa('tar', ['-cf', tmp, '-C', made, '.']);
    } finally {
      await work.cleanup();
    }
    // older versions of this recipe (other code, other inputs) are of no more use
    const older = new RegExp(`^${recipe}-[0-9a-f]{16}\\.tar$`);
    for (const name of await readdir(cacheDir)) if (older.test(name) && name !== `${recipe}-${key}.tar`) await rm(join(cacheDir, name), { force: true });
  });
  await mkdir(repo, { recursive: true });
  await execa('tar', ['-xpf', tar, '-C', repo, '--numeric-owner']);
}
