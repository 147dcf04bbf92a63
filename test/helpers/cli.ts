import { homedir } from 'node:os';
import { execa } from 'execa';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
/**
 * Downloads and builds the tests, demo and benchmarks reuse (gold trees, the kernel package, test
 * programs), named by their recipes: one place per machine, shared by every clone, never committed.
 * A new machine fills it once. AIM_DEV_CACHE moves it.
 */
export const devCache = process.env.AIM_DEV_CACHE ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'aim-dev');
export const runJs = join(projectRoot, 'bin', 'run.js');

export interface CliResult<T> {
  exitCode: number;
  json: T;
  stdout: string;
  stderr: string;
}

/** Runs `aim … --json` from the built dist, as a user would, and parses stdout. */
export async function aim<T = Record<string, unknown>>(args: string[], options: { env?: Record<string, string>; unprivileged?: boolean } = {}): Promise<CliResult<T>> {
  // Unprivileged: still uid 0 (so the checkout, wherever CI put it, stays readable) but with no
  // capabilities at all: no CAP_MKNOD, CAP_CHOWN, CAP_DAC_OVERRIDE, like an ordinary user.
  const [cmd, pre] = options.unprivileged
    ? ['setpriv', ['--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', '--', process.execPath]]
    : [process.execPath, []];
  const r = await execa(cmd, [...pre, runJs, ...args, '--json'], {
    reject: false,
    env: { ...process.env, ...options.env },
    timeout: 600_000,
  });
  let json: T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    json = undefined as T;
  }
  return { exitCode: r.exitCode ?? -1, json, stdout: r.stdout, stderr: r.stderr };
}
