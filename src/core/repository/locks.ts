import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BusyError, errnoCode } from '../../lib/errors.js';
import { isProcessAlive } from '../../lib/file-mutex.js';

/**
 * Writers (imports) and the collector (gc) exclude each other with lock files, Dekker style: each
 * side first publishes its own file, then looks for the other's. At least one of two racing
 * processes therefore sees the other and backs off. Many writers may run at once. A lock whose
 * process is gone (killed import) is stale and ignored.
 */
export interface Lock {
  release(): Promise<void>;
  /**
   * For a write lease: excludes every other writer (and gc) for as long as the returned lock is
   * held, as gc's lock does, or undefined at once when another writer is live. Under it, nothing
   * can pick up a blob that no committed image references: a failed write's rollback runs here.
   */
  exclusive(): Promise<Lock | undefined>;
}

interface LockInfo {
  pid: number;
  kind: 'write' | 'gc';
  startedAt: string;
}

async function readLocks(dir: string): Promise<{ file: string; info: LockInfo }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw e;
  }
  const out: { file: string; info: LockInfo }[] = [];
  for (const name of names) {
    if (!name.endsWith('.lock')) continue;
    const file = join(dir, name);
    try {
      out.push({ file, info: JSON.parse(await readFile(file, 'utf8')) as LockInfo });
    } catch {
      // being written or removed right now; the writer checks again after publishing
    }
  }
  return out;
}

async function publish(dir: string, kind: LockInfo['kind']): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${kind}-${process.pid}-${randomBytes(4).toString('hex')}.lock`);
  const info: LockInfo = { pid: process.pid, kind, startedAt: new Date().toISOString() };
  await writeFile(file, JSON.stringify(info), { flag: 'wx' });
  return file;
}

/** Live locks of `kind` other than our own files (a stale one, whose process is gone, is removed). */
async function liveOthers(dir: string, kind: LockInfo['kind'], ...own: string[]): Promise<LockInfo[]> {
  const locks = await readLocks(dir);
  const live: LockInfo[] = [];
  for (const l of locks) {
    if (own.includes(l.file) || l.info.kind !== kind) continue;
    if (isProcessAlive(l.info.pid)) live.push(l.info);
    else await unlink(l.file).catch(() => {});
  }
  return live;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Taken by imports for their whole run. Waits while a gc runs (up to waitMs). */
export async function acquireWriteLock(dir: string, waitMs = 10 * 60_000): Promise<Lock> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const own = await publish(dir, 'write');
    if ((await liveOthers(dir, 'gc', own)).length === 0) {
      return {
        release: () => unlink(own).catch(() => {}),
        exclusive: () => upgrade(dir, own),
      };
    }
    await unlink(own).catch(() => {});
    if (Date.now() > deadline) throw new BusyError('the repository is being garbage-collected', { hint: 'wait for `aim repo gc` to finish, then retry' });
    await sleep(250);
  }
}

/** Taken by gc. Fails at once (or after waitMs) while any import or other gc is live. */
export async function acquireGcLock(dir: string, waitMs = 0): Promise<Lock> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const own = await publish(dir, 'gc');
    const writers = await liveOthers(dir, 'write', own);
    const collectors = await liveOthers(dir, 'gc', own);
    if (writers.length === 0 && collectors.length === 0) {
      return gcLock(own);
    }
    await unlink(own).catch(() => {});
    if (Date.now() >= deadline) {
      const who = writers.length > 0 ? `${writers.length} import(s) running (pid ${writers.map((w) => w.pid).join(', ')})` : 'another gc is running';
      throw new BusyError(`cannot collect garbage now: ${who}`, { hint: 'retry when they finish, or pass --wait SECONDS' });
    }
    await sleep(250 + Math.random() * 250);
  }
}

/** gc's lock, exclusive already: its upgrade is a no-op whose release leaves the lock held. */
function gcLock(own: string): Lock {
  const held: Lock = { release: async () => {}, exclusive: async () => held };
  return { release: () => unlink(own).catch(() => {}), exclusive: async () => held };
}

/**
 * A writer takes gc's side of the Dekker protocol while keeping its write lock: it publishes a gc
 * lock, then looks for writers other than itself. A writer starting meanwhile sees the gc lock and
 * waits (acquireWriteLock); a gc sees this writer's own write lock and backs off.
 */
async function upgrade(dir: string, ownWrite: string): Promise<Lock | undefined> {
  const own = await publish(dir, 'gc');
  const writers = await liveOthers(dir, 'write', own, ownWrite);
  const collectors = await liveOthers(dir, 'gc', own);
  if (writers.length === 0 && collectors.length === 0) return gcLock(own);
  await unlink(own).catch(() => {});
  return undefined;
}
