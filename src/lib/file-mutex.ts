import { randomBytes } from 'node:crypto';
import { link, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
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

/** Whether `pid` names another process of this machine that no longer runs (what a name carrying a pid leaves behind). */
export function isDeadOtherProcess(pid: number): boolean {
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && !isProcessAlive(pid);
}

export interface FileMutexOptions {
  /** Stops waiting (the work never starts). */
  signal?: AbortSignal;
  /** Called once, when the lock is held by another live process and this one starts to wait. */
  onWait?: (holderPid: number | undefined) => void;
  /** How often a waiter looks again (default 500 ms). */
  pollMs?: number;
}

/** A lock file that names no pid this long after it was made is garbage (made by an older aim, whose writer died between create and write). */
const UNWRITTEN_MS = 5000;

/** The pid a lock file names; undefined when it is gone, empty or not aim's JSON. */
async function holderPid(file: string): Promise<number | undefined> {
  try {
    const pid = (JSON.parse(await readFile(file, 'utf8')) as { pid?: unknown }).pid;
    return typeof pid === 'number' ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs `work` while holding the lock file `file` (holding this process's pid): processes on this
 * machine that use the same file take turns. The lock appears whole or not at all: its content is
 * written to a file of its own first and hard-linked to `file` (EEXIST: someone holds it), so no
 * one ever reads a half-written lock. A lock whose process is gone, or that names no pid, is taken
 * over. Only this process's own lock is removed afterwards, so undoing a takeover by another
 * process is impossible.
 */
export async function withFileMutex<T>(file: string, work: () => Promise<T>, options: FileMutexOptions = {}): Promise<T> {
  const mine = JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), nonce: randomBytes(6).toString('hex') });
  const draft = `${file}.${process.pid}-${randomBytes(6).toString('hex')}.new`;
  await removeDeadDrafts(file);
  await writeFile(draft, mine, { flag: 'wx' });
  let told = false;
  try {
    for (;;) {
      throwIfCancelled(options.signal);
      try {
        await link(draft, file);
        break;
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
      }
      const pid = await holderPid(file);
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
  } finally {
    await rm(draft, { force: true });
  }
  try {
    return await work();
  } finally {
    if ((await readFile(file, 'utf8').catch(() => '')) === mine) await rm(file, { force: true });
  }
}

/** Drafts of `file` (`<file>.<pid>-<hex>.new`) whose process died between writing and linking them. */
async function removeDeadDrafts(file: string): Promise<void> {
  const prefix = `${basename(file)}.`;
  for (const name of await readdir(dirname(file)).catch(() => [] as string[])) {
    if (!name.startsWith(prefix) || !name.endsWith('.new')) continue;
    const pid = Number(/^(\d+)-[0-9a-f]+\.new$/.exec(name.slice(prefix.length))?.[1]);
    if (isDeadOtherProcess(pid)) await rm(join(dirname(file), name), { force: true });
  }
}
