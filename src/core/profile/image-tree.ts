/**
 * The roots workloads run in (profile runs, verify). Writing an image out costs seconds to
 * minutes for a large gold tree, and the same image is run again and again (profile, then verify
 * in gold; several workloads on one gold image). So each run gets an overlay of the image's tree
 * in the repository's cache (repository/tree-cache.ts), with its own upper layer in its scratch
 * directory: what the workload writes never reaches the cached tree, and the run sees the image
 * exactly as a copy would show it. Without overlayfs (or root, or with AIM_TREE_CACHE=0) the image
 * is copied for the run as before.
 */
import { chmod, chown, mkdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { cancellationError } from '../../lib/errors.js';
import { runTool } from '../../lib/exec.js';
import { unmount } from '../../lib/mounts.js';
import { CAP, hasCapability } from '../../lib/privileges.js';
import type { Reporter } from '../../lib/reporter.js';
import { exportImage } from '../export/export-image.js';
import type { Repository } from '../repository/repository.js';
import { cachedTree, treesKept } from '../repository/tree-cache.js';

/** A root to run a workload in, and how to let go of it (before its scratch directory is removed). */
export interface RunRoot {
  root: string;
  how: 'overlay' | 'copy';
  release(): Promise<void>;
}

// overlayfs takes its directories in a comma and colon separated option string
const MOUNTABLE = /^[^,:\\\n]+$/;

/**
 * A root holding image `imageId` at `<work>/root`: an overlay of the cached tree when it can be,
 * else a copy. The caller removes `work` after release().
 */
export async function runRoot(repo: Repository, imageId: string, work: string, reporter: Reporter, signal?: AbortSignal): Promise<RunRoot> {
  const root = join(work, 'root');
  const kept = treesKept();
  // mounting needs CAP_SYS_ADMIN: without it (uid 0 with no capabilities too) the tree would be
  // written into the cache for nothing
  if (kept > 0 && hasCapability(CAP.SYS_ADMIN) && MOUNTABLE.test(work) && MOUNTABLE.test(repo.root)) {
    const lower = await cachedTree(repo, imageId, kept, reporter, signal);
    const upper = join(work, 'upper');
    const scratch = join(work, 'overlay-work');
    for (const d of [upper, scratch, root]) await mkdir(d, { recursive: true, mode: 0o700 });
    // the overlay's / is the upper directory: it must be the image's / (mode, owner, times), or a
    // daemon's unprivileged workers could not even look up a path
    const top = await stat(lower);
    await chown(upper, top.uid, top.gid);
    await chmod(upper, top.mode & 0o7777);
    await utimes(upper, top.atime, top.mtime);
    try {
      await runTool('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${scratch}`, root], signal ? { cancelSignal: signal } : {});
      let mounted = true;
      return {
        root,
        how: 'overlay',
        release: async () => {
          if (mounted) await unmount(root);
          mounted = false;
        },
      };
    } catch (e) {
      if (signal?.aborted) throw cancellationError(signal);
      reporter.emit({ type: 'info', message: `image tree not mounted as an overlay (${(e as Error).message.split('\n')[0]}): copying the image instead` });
      await rm(root, { recursive: true, force: true });
    }
  }
  await exportImage(repo, imageId, { format: 'dir', out: root, ...(signal ? { signal } : {}) }, reporter);
  return { root, how: 'copy', release: async () => undefined };
}

/**
 * Lets go of a run's root and removes its scratch directory `work`. An overlay that will not
 * unmount keeps its directory (a warning says so; gc unmounts and removes it later).
 */
export async function releaseRunRoot(held: RunRoot | undefined, work: string, reporter: Reporter): Promise<void> {
  try {
    await held?.release();
  } catch (e) {
    reporter.emit({ type: 'warn', code: 'W_OVERLAY_UNMOUNT', message: `the image root ${held?.root} did not unmount: ${(e as Error).message}` });
    return;
  }
  await rm(work, { recursive: true, force: true });
}
