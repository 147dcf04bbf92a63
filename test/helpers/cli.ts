import { execa } from 'execa';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const runJs = join(projectRoot, 'bin', 'run.js');

export interface CliResult<T> {
  exitCode: number;
  json: T;
  stdout: string;
  stderr: string;
}

/** Runs `aim … --json` from the built dist, as a user would, and parses stdout. */
export async function aim<T = Record<string, unknown>>(args: string[], options: { env?: Record<string, string>; uid?: number; gid?: number } = {}): Promise<CliResult<T>> {
  const r = await execa(process.execPath, [runJs, ...args, '--json'], {
    reject: false,
    env: { ...process.env, ...options.env },
    uid: options.uid,
    gid: options.gid,
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
