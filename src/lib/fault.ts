import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Crash points for the tests that prove a killed import leaves the repository consistent:
 * with AIM_FAULT_KILL_AT=<name> the process sends itself SIGKILL when it reaches that point
 * (AIM_FAULT_KILL_AFTER=n: on the n-th time). Off unless that variable is set.
 */
const counts = new Map<string, number>();

export function faultPoint(name: string): void {
  if (process.env.AIM_FAULT_KILL_AT !== name) return;
  const n = (counts.get(name) ?? 0) + 1;
  counts.set(name, n);
  if (n >= Number(process.env.AIM_FAULT_KILL_AFTER ?? '1')) process.kill(process.pid, 'SIGKILL');
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
  writeFileSync(join(dir, `${name}.paused`), detail);
  const resume = join(dir, `${name}.resume`);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 600_000;
  while (!existsSync(resume) && Date.now() < deadline) Atomics.wait(nap, 0, 0, 10);
  rmSync(resume, { force: true });
}
