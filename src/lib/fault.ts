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
