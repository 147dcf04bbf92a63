import { readdirSync, readFileSync } from 'node:fs';

export interface ChildProcessInfo {
  pid: number;
  /** The executable's name as the kernel keeps it (/proc/PID/comm, up to 15 characters). */
  comm: string;
}

/** The live children of `parent` (by /proc/PID/stat's parent pid), zombies left out. */
export function childProcesses(parent: number): ChildProcessInfo[] {
  const out: ChildProcessInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split at the last ')'
    const close = stat.lastIndexOf(')');
    const [state, ppid] = stat.slice(close + 2).split(' ');
    if (Number(ppid) !== parent || state === 'Z') continue;
    out.push({ pid: Number(name), comm: stat.slice(stat.indexOf('(') + 1, close) });
  }
  return out;
}

/** Whether a process with this pid exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Polls `check` until it returns a value other than undefined, or fails at the deadline. */
export async function pollFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, deadlineMs: number): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
