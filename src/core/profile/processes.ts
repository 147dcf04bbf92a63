/**
 * What the host can learn about the sandbox's processes from /proc: parents, pid namespaces,
 * listening sockets of a network namespace. Reads only; the one writer is {@link signalPids}.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';

export interface ProcStat {
  pid: number;
  ppid: number;
  /** R, S, D, Z (zombie), T … */
  state: string;
}

/** /proc/PID/stat, or undefined once the process is gone. */
export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'latin1');
    // comm is in parentheses and may itself hold spaces and parentheses: split after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { pid, state: rest[0]!, ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

export async function listPids(): Promise<number[]> {
  const names = await readdir('/proc');
  return names.filter((n) => /^\d+$/.test(n)).map(Number);
}

/** The process and everything below it, by parent links (zombies included). */
export async function processTree(pid: number): Promise<number[]> {
  const stats = (await Promise.all((await listPids()).map(readProcStat))).filter((s): s is ProcStat => s !== undefined);
  const children = new Map<number, number[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s.pid]);
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (out.includes(p)) continue;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/** The pid namespace a process is in, as the kernel names it ("pid:[4026532300]"). */
export async function pidNamespaceOf(pid: number): Promise<string | undefined> {
  try {
    return await readlink(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/** Live (not zombie) processes in a pid namespace, by host pid. */
export async function namespaceMembers(namespace: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await listPids()) {
    if ((await pidNamespaceOf(pid)) !== namespace) continue;
    const st = await readProcStat(pid);
    if (st && st.state !== 'Z' && st.state !== 'X') out.push(pid);
  }
  return out;
}

/** The host pid of the live process that is `nsPid` in the pid namespace `namespace`. */
export async function hostPidIn(namespace: string, nsPid: number): Promise<number | undefined> {
  for (const pid of await namespaceMembers(namespace)) {
    const ids = await nsPids(pid);
    if (ids?.[ids.length - 1] === nsPid) return pid;
  }
  return undefined;
}

/** The pids a process has in nested pid namespaces ("NSpid:\t4711\t1" gives [4711, 1]). */
export async function nsPids(pid: number): Promise<number[] | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const line = status.split('\n').find((l) => l.startsWith('NSpid:'));
    return line?.slice(6).trim().split(/\s+/).map(Number);
  } catch {
    return undefined;
  }
}

/**
 * TCP ports in LISTEN state in the network namespace of `pid`: /proc/PID/net/tcp{,6} show the
 * sockets of the reader's target's namespace, so the host can watch a sandbox without entering it.
 */
export async function listeningPorts(pid: number): Promise<Set<number>> {
  const ports = new Set<number>();
  for (const file of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = await readFile(`/proc/${pid}/net/${file}`, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== '0A') continue;
      const port = cols[1]!.split(':')[1];
      if (port) ports.add(parseInt(port, 16));
    }
  }
  return ports;
}

/** Sends a signal to each pid, ignoring the ones already gone. */
export function signalPids(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds or `timeoutMs` passes; tells which. */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= end) return false;
    await sleep(Math.min(intervalMs, Math.max(1, end - Date.now())));
  }
}
