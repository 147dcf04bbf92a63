import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readHostAptSources, sourcesForSuite } from '../../src/core/import/apt-sources.js';
import { projectRoot } from './cli.js';

/** Gold trees the tests share, built once per machine with mmdebstrap and cached (never committed). */
export const GOLD = {
  nginx: ['nginx'],
  redis: ['redis-server'],
  systemd: ['systemd-sysv'],
} as const;

export const goldCacheDir = join(projectRoot, '.cache', 'gold');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Path of a cached mmdebstrap minbase tar with the given packages, building it when absent.
 * A lock directory keeps parallel test workers from building the same tree twice.
 */
export async function goldTar(name: keyof typeof GOLD): Promise<string> {
  const out = join(goldCacheDir, `${name}.tar`);
  if (existsSync(out)) return out;
  await mkdir(goldCacheDir, { recursive: true });
  const lock = `${out}.lock`;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch {
      if (existsSync(out)) return out;
      const st = await stat(lock).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 15 * 60_000) await rmdir(lock).catch(() => {});
      await sleep(1000);
    }
  }
  try {
    if (existsSync(out)) return out;
    const sources = sourcesForSuite(await readHostAptSources(), 'bookworm');
    const tmp = `${out}.${process.pid}.partial`;
    await execa('mmdebstrap', ['--variant=minbase', `--include=${GOLD[name].join(',')}`, '--format=tar', 'bookworm', tmp, '-'], {
      input: sources.join('\n') + '\n',
      timeout: 15 * 60_000,
    });
    await rename(tmp, out);
    return out;
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}
