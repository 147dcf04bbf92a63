/**
 * Aim's own scratch space for ship builds: `<repo>/ship-builds/<publication id>/`. A ship without
 * --out builds there, each build journalled as a "build" resource like any other; the builds go
 * once the publication is published, on rollback, and with `aim ship rm`. A directory there is
 * kept while a run holds its publication's lease or its journal holds a build in it (pending or
 * created: `aim ship resume` continues from it); anything else is an orphan `aim repo gc` removes.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { newLeaseOwner, ownerAlive, type PublicationStore } from './catalog-publications.js';
import type { Repository } from './repository.js';

/** The scratch directory of one publication's builds. */
export function shipBuildDir(repo: Pick<Repository, 'shipBuildsRoot'>, publication: string): string {
  return join(repo.shipBuildsRoot, publication);
}

/**
 * Whether `path` lies in the scratch directory of `publication`, matched on the path's tail so
 * that the repository reached by another spelling of its path (a symlink) still counts.
 */
export function inShipBuildDir(path: string, publication: string): boolean {
  return path.includes(`${sep}ship-builds${sep}${publication}${sep}`);
}

/** Whether `dir` is the scratch directory of `publication` (by its tail, as inShipBuildDir). */
export function isShipBuildDir(dir: string, publication: string): boolean {
  return dir.endsWith(`${sep}ship-builds${sep}${publication}`);
}

/** Whether the journal of `publication` holds a build (pending or created) in its scratch directory. */
async function holdsScratchBuild(store: PublicationStore, publication: string): Promise<boolean> {
  return (await store.resources(publication)).some((r) => r.kind === 'build' && r.state !== 'removed' && inShipBuildDir(r.id, publication));
}

/** Names in ship-builds/ that no run and no journal needs. */
export async function orphanShipBuilds(repo: Repository): Promise<string[]> {
  const store = repo.catalog.publications;
  const orphans: string[] = [];
  for (const name of await readdir(repo.shipBuildsRoot).catch(() => [] as string[])) {
    const p = (await stat(join(repo.shipBuildsRoot, name)).catch(() => undefined))?.isDirectory() ? await store.get(name) : undefined;
    if (p && (ownerAlive(p.owner) || (await holdsScratchBuild(store, name)))) continue;
    orphans.push(name);
  }
  return orphans;
}

/**
 * Removes the orphans of ship-builds/ (with dryRun, only names them). One whose publication exists
 * is removed under that publication's lease and checked again there, so a resume cannot start
 * building into it meanwhile; one whose publication is held by a run is left.
 */
export async function removeOrphanShipBuilds(repo: Repository, options: { dryRun?: boolean } = {}): Promise<string[]> {
  const orphans = await orphanShipBuilds(repo);
  if (options.dryRun) return orphans;
  const store = repo.catalog.publications;
  const removed: string[] = [];
  for (const name of orphans) {
    const dir = join(repo.shipBuildsRoot, name);
    if (!(await store.get(name))) {
      await rm(dir, { recursive: true, force: true });
      removed.push(name);
      continue;
    }
    const owner = newLeaseOwner();
    const claim = await store.claimId(name, owner);
    if (!claim || claim.busy) continue;
    try {
      if (await holdsScratchBuild(store, name)) continue;
      await rm(dir, { recursive: true, force: true });
      removed.push(name);
    } finally {
      await store.release(name, owner);
    }
  }
  return removed;
}
