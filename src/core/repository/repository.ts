import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, NotFoundError, errnoCode } from '../../lib/errors.js';
import { systemError } from '../../lib/system-errors.js';
import { FsBlobStore } from './fs-blob-store.js';
import { acquireGcLock, acquireWriteLock, type Lock } from './locks.js';
import type { SpaceGuard } from './space-guard.js';
import { SqliteCatalog } from './sqlite-catalog.js';
import type { BlobStore, Catalog } from './types.js';

const MARKER = 'aim-repo.json';
const FORMAT = { format: 'aim-repository', version: 1 };

/** An opened repository: the blob store and catalog every stage reads and writes. */
export interface Repository {
  root: string;
  blobs: BlobStore & { scratchDir(): Promise<string>; disposeScratch(): Promise<void>; readonly created: Set<string>; guard: SpaceGuard | undefined };
  catalog: Catalog;
  lockForWrite(waitMs?: number): Promise<Lock>;
  lockForGc(waitMs?: number): Promise<Lock>;
  tmpRoot: string;
  /** Aim's scratch space for ship builds made without --out: `<root>/ship-builds/<publication id>/` (see ship-builds.ts). */
  shipBuildsRoot: string;
  /**
   * After a failed write: removes the blobs this process added that no committed image
   * references, so the repository is as before. Decided under an exclusive lease: while another
   * writer is live (it may count on one of them before it commits) nothing is removed, and gc
   * collects them later. A blob another import reused and committed meanwhile stays.
   */
  rollbackBlobs(lock: Lock): Promise<number>;
  close(): Promise<void>;
}

/** --repo flag > AIM_REPO > $XDG_DATA_HOME/aim/repo > ~/.local/share/aim/repo. */
export function defaultRepoPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.AIM_REPO) return resolve(env.AIM_REPO);
  const data = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'aim', 'repo');
}

function layout(root: string) {
  return {
    objects: join(root, 'objects'),
    tmp: join(root, 'tmp'),
    locks: join(root, 'locks'),
    shipBuilds: join(root, 'ship-builds'),
    catalog: join(root, 'catalog.db'),
    marker: join(root, MARKER),
  };
}

/** A repository path that exists but is not a directory gets one clear error, not a raw ENOTDIR/EEXIST. */
function refuseNonDirectory(root: string, doing: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(root).isDirectory();
  } catch {
    return; // missing (init creates it; open says there is no repository) or unreadable (reported where it is read)
  }
  if (!isDir) throw new ConfigError(`${root} is a file, not a repository directory (${doing})`, { hint: 'pass --repo a directory (aim repo init creates it), or move the file away' });
}

export async function initRepository(dir: string): Promise<{ root: string; created: boolean }> {
  const root = resolve(dir);
  const l = layout(root);
  refuseNonDirectory(root, 'aim repo init');
  if (existsSync(l.marker)) {
    await openRepository(root).then((r) => r.close());
    return { root, created: false };
  }
  await mkdir(root, { recursive: true });
  await FsBlobStore.create(l.objects, l.tmp);
  await mkdir(l.locks, { recursive: true });
  const catalog = new SqliteCatalog(l.catalog);
  catalog.migrate();
  await catalog.close();
  // The marker is written last: a directory without it is not a repository yet.
  await writeFile(l.marker, JSON.stringify(FORMAT, null, 2) + '\n');
  return { root, created: true };
}

export async function openRepository(dir: string): Promise<Repository> {
  const root = resolve(dir);
  const l = layout(root);
  refuseNonDirectory(root, 'opening the repository');
  let marker: { format?: string; version?: number };
  try {
    marker = JSON.parse(await readFile(l.marker, 'utf8')) as typeof marker;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') {
      throw new NotFoundError(`no aim repository at ${root}`, { hint: `create one with: aim repo init --repo ${root}` });
    }
    throw systemError(e) ?? new ConfigError(`${l.marker} is unreadable: ${(e as Error).message}`);
  }
  if (marker.format !== FORMAT.format || marker.version !== FORMAT.version) {
    throw new ConfigError(`${root} holds an unsupported repository format (${marker.format} v${marker.version})`);
  }
  const catalog = new SqliteCatalog(l.catalog);
  catalog.migrate();
  const blobs = new FsBlobStore(l.objects, l.tmp, (hash) => catalog.blobUsers(hash, 6));
  return {
    root,
    blobs,
    catalog,
    tmpRoot: l.tmp,
    shipBuildsRoot: l.shipBuilds,
    lockForWrite: (waitMs) => acquireWriteLock(l.locks, waitMs),
    lockForGc: (waitMs) => acquireGcLock(l.locks, waitMs),
    async rollbackBlobs(lock) {
      // First: writer threads finish what they were given, so `created` lists every blob written.
      await blobs.disposeScratch();
      const created = [...blobs.created];
      blobs.created.clear();
      if (created.length === 0) return 0;
      const alone = await lock.exclusive();
      if (!alone) return 0;
      try {
        const kept = await catalog.referencedAmong(created);
        const garbage = created.filter((h) => !kept.has(h));
        for (const hash of garbage) await blobs.remove(hash);
        return garbage.length;
      } finally {
        await alone.release();
      }
    },
    async close() {
      await blobs.disposeScratch();
      await catalog.close();
    },
  };
}
