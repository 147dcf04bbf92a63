import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { errnoCode, throwIfCancelled } from './errors.js';

/** Whether a process with this pid runs on this machine (EPERM: it does, as another user). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
}

export interface FileMutexOptions {
  /** Stops waiting (the work never starts). */
  signal?: AbortSignal;
  /** Called once, when the lock is held by another live process and this one starts to wait. */
  onWait?: (holderPid: number | undefined) => void;
  /** How often a waiter looks again (default 500 ms). */
  pollMs?: number;
}

/** A lock file that names no pid this long after it was made is garbage (its writer died between create and write). */
const UNWRITTEN_MS = 5000;

/**
 * Runs `work` while holding the lock file `file` (created with O_EXCL, holding this process's
 * pid): processes on this machine that use the same file take turns. A lock whose process is
 * gone, or that never got its pid written, is taken over. Only this process's own lock is removed
 * afterwards, so undoing a takeover by another process is impossible.
 */
export async function withFileMutex<T>(file: string, work: () => Promise<T>, options: FileMutexOptions = {}): Promise<T> {
  const mine = JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() });
  let told = false;
  for (;;) {
    throwIfCancelled(options.signal);
    try {
      await writeFile(file, mine, { flag: 'wx' });
      break;
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
    const holder = await readFile(file, 'utf8').then((s) => (JSON.parse(s) as { pid?: unknown }).pid, () => undefined);
    const pid = typeof holder === 'number' ? holder : undefined;
    const garbage = pid === undefined && Date.now() - ((await stat(file).catch(() => undefined))?.mtimeMs ?? Date.now()) > UNWRITTEN_MS;
    if ((pid !== undefined && !isProcessAlive(pid)) || garbage) {
      await rm(file, { recursive: true, force: true });
      continue;
    }
    if (!told) {
      options.onWait?.(pid);
      told = true;
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
  }
  try {
    return await work();
  } finally {
    if ((await readFile(file, 'utf8').catch(() => '')) === mine) await rm(file, { force: true });
  }
}
