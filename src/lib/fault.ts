import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InternalError } from './errors.js';

/**
 * Fault points for the tests that prove a killed or failed import leaves the repository
 * consistent, and that races really overlapped. Off unless these variables are set:
 * - AIM_FAULT_KILL_AT=<name>: the process sends itself SIGKILL there (AIM_FAULT_KILL_AFTER=n: on
 *   the n-th time and after);
 * - AIM_FAULT_PAUSE_AT=<name> with AIM_FAULT_PAUSE_DIR=<dir>: the process writes <dir>/<name>.paused
 *   (holding the point's detail) and stops, event loop and all, until <dir>/<name>.resume exists
 *   (AIM_FAULT_PAUSE_AFTER=n: on the n-th time; AIM_FAULT_PAUSE_MATCH=<text>: only counting the
 *   times whose detail contains it). The test changes the world meanwhile and so proves its
 *   change happened at exactly that point;
 * - AIM_FAULT_FAIL_AT=<name>: the process throws there (after any pause at the same point;
 *   AIM_FAULT_FAIL_AFTER=n).
 *
 * The variables are read once: fault points sit on per-file paths (and on writer threads, which
 * get a copy of the environment), where reading the environment each time costs more than the
 * work around them.
 */
const env = process.env;
const config = {
  kill: env.AIM_FAULT_KILL_AT,
  killAfter: Number(env.AIM_FAULT_KILL_AFTER ?? '1'),
  pause: env.AIM_FAULT_PAUSE_DIR ? env.AIM_FAULT_PAUSE_AT : undefined,
  pauseDir: env.AIM_FAULT_PAUSE_DIR ?? '',
  pauseAfter: Number(env.AIM_FAULT_PAUSE_AFTER ?? '1'),
  pauseMatch: env.AIM_FAULT_PAUSE_MATCH,
  fail: env.AIM_FAULT_FAIL_AT,
  failAfter: Number(env.AIM_FAULT_FAIL_AFTER ?? '1'),
};
/** Times each configured point was reached (the pause counting only details that match). */
const reached = { kill: 0, pause: 0, fail: 0 };
const PAUSE_LIMIT_MS = 300_000;

function pause(name: string, detail: string): void {
  writeFileSync(join(config.pauseDir, `${name}.paused`), detail);
  const resume = join(config.pauseDir, `${name}.resume`);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + PAUSE_LIMIT_MS;
  while (!existsSync(resume)) {
    if (Date.now() > deadline) throw new InternalError(`fault point ${name}: nobody resumed the paused process`);
    Atomics.wait(nap, 0, 0, 20);
  }
  rmSync(resume, { force: true });
}

/** A fault point named `name`; `detail` (what is being done there) is matched and shown to a pausing test. */
export function faultPoint(name: string, detail?: string): void {
  if (name === config.kill && ++reached.kill >= config.killAfter) process.kill(process.pid, 'SIGKILL');
  if (name === config.pause && (!config.pauseMatch || detail?.includes(config.pauseMatch)) && ++reached.pause === config.pauseAfter) {
    pause(name, detail ?? String(process.pid));
  }
  if (name === config.fail && ++reached.fail === config.failAfter) throw new InternalError(`injected fault at ${name}`);
}
