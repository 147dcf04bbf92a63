import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InternalError } from './errors.js';

/**
 * Fault points for the tests that prove a killed or failed import leaves the repository
 * consistent, and that races really overlapped. Off unless these variables are set:
 * - AIM_FAULT_KILL_AT=<name>: the process sends itself SIGKILL there (AIM_FAULT_KILL_AFTER=n: on
 *   the n-th time);
 * - AIM_FAULT_PAUSE_AT=<name> with AIM_FAULT_PAUSE_DIR=<dir>: the process writes <dir>/<name>.paused
 *   and stops, event loop and all, until <dir>/<name>.resume exists (AIM_FAULT_PAUSE_AFTER=n);
 * - AIM_FAULT_FAIL_AT=<name>: the process throws there (after any pause at the same point).
 */
const counts = new Map<string, number>();
const PAUSE_LIMIT_MS = 300_000;

function reached(name: string, after: string | undefined): boolean {
  return (counts.get(name) ?? 0) === Number(after ?? '1');
}

function pause(name: string, dir: string, detail = String(process.pid)): void {
  writeFileSync(join(dir, `${name}.paused`), detail);
  const resume = join(dir, `${name}.resume`);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + PAUSE_LIMIT_MS;
  while (!existsSync(resume)) {
    if (Date.now() > deadline) throw new InternalError(`fault point ${name}: nobody resumed the paused process`);
    Atomics.wait(nap, 0, 0, 20);
  }
}

export function faultPoint(name: string): void {
  const env = process.env;
  if (env.AIM_FAULT_KILL_AT !== name && env.AIM_FAULT_PAUSE_AT !== name && env.AIM_FAULT_FAIL_AT !== name) return;
  counts.set(name, (counts.get(name) ?? 0) + 1);
  if (env.AIM_FAULT_KILL_AT === name && (counts.get(name) ?? 0) >= Number(env.AIM_FAULT_KILL_AFTER ?? '1')) process.kill(process.pid, 'SIGKILL');
  if (env.AIM_FAULT_PAUSE_AT === name && env.AIM_FAULT_PAUSE_DIR && reached(name, env.AIM_FAULT_PAUSE_AFTER)) pause(name, env.AIM_FAULT_PAUSE_DIR);
  if (env.AIM_FAULT_FAIL_AT === name && reached(name, env.AIM_FAULT_FAIL_AFTER)) throw new InternalError(`injected fault at ${name}`);
}

/**
 * Pause points for race tests: with AIM_FAULT_PAUSE_AT=<name> (and AIM_FAULT_PAUSE_MATCH=<text>
 * found in `detail`, if set) the process creates `<AIM_FAULT_PAUSE_DIR>/<name>.paused` holding
 * `detail` and waits, blocking, until `<name>.resume` appears there: the test changes the world
 * meanwhile and so proves its change happened at exactly that point. Off unless set.
 */
export function faultPause(name: string, detail: string): void {
  const dir = process.env.AIM_FAULT_PAUSE_DIR;
  if (process.env.AIM_FAULT_PAUSE_AT !== name || !dir) return;
  const match = process.env.AIM_FAULT_PAUSE_MATCH;
  if (match && !detail.includes(match)) return;
  pause(name, dir, detail);
  rmSync(join(dir, `${name}.resume`), { force: true });
}
