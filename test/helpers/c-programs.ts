import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { devCache, projectRoot } from './cli.js';

const fixtures = join(projectRoot, 'test', 'fixtures', 'trace');
const cacheDir = join(devCache, 'c');

/** The host has a C compiler and static glibc (scripts/setup.mjs installs gcc and libc6-dev). */
export const HAS_GCC = (() => {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/**
 * Path of test/fixtures/trace/NAME.c built as a static executable (so it runs alone in any image
 * tree), compiled once per source content and cached under .cache/c.
 */
export function staticProgram(name: string): string {
  const src = join(fixtures, `${name}.c`);
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
  const out = join(cacheDir, `${name}-${hash}`);
  if (existsSync(out)) return out;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  execFileSync('gcc', ['-O2', '-static', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', tmp, src, '-lrt'], { stdio: 'pipe' });
  renameSync(tmp, out);
  return out;
}
