import type { Repository } from '../repository/repository.js';
import { SpaceGuard } from '../repository/space-guard.js';

/**
 * Runs `write` the way every import writes into the repository: holding the write lock (gc
 * cannot remove blobs it relies on) with the free-space guard (and `maxBytes`) watching what it
 * stores. When `write` fails, the blobs it added that no committed image references are removed
 * again, so the repository is as it was; the error is rethrown.
 */
export async function withImportSession<T>(repo: Repository, options: { maxBytes?: number | undefined }, write: () => Promise<T>): Promise<T> {
  const lock = await repo.lockForWrite();
  repo.blobs.guard = new SpaceGuard(repo.root, { maxBytes: options.maxBytes });
  try {
    return await write();
  } catch (e) {
    await repo.rollbackBlobs(lock);
    throw e;
  } finally {
    repo.blobs.guard = undefined;
    await lock.release();
  }
}
