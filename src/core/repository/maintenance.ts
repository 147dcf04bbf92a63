import { sha256File } from '../../lib/fs.js';
import { readdir, realpath, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { IntegrityError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { RepairReport } from './repair.js';
import { checkExtents, dataLength } from '../model/sparse.js';
import { parseManifest } from '../model/manifest.js';
import type { ImpactStaleRows } from './catalog-impact.js';
import { holdsOf } from './holds.js';
import { unmountUnder } from '../../lib/mounts.js';
import { orphanTrees, removeTree, treeCacheDir } from './tree-cache.js';
import { isDeadOtherProcess } from '../../lib/file-mutex.js';
import { orphanShipBuilds, removeOrphanShipBuilds } from './ship-builds.js';
import { CorruptBlobError, usedBy } from './verify.js';
import type { Repository } from './repository.js';

export interface RepoStats {
  root: string;
  images: number;
  tags: number;
  /** Sum over images of their regular file bytes: what the images would take stored apart. */
  logicalBytes: number;
  logicalFiles: number;
  /** Unique blobs referenced by images, and their bytes (content stored once). */
  uniqueBlobs: number;
  uniqueBytes: number;
  /** Everything in the object store (incl. manifests and unreferenced garbage). */
  storedBlobs: number;
  storedBytes: number;
  /** Bytes the object store occupies on disk (allocated blocks). */
  diskBytes: number;
  /** logicalBytes / uniqueBytes: how many times deduplication shrinks the images. */
  dedupRatio: number;
}

export async function repoStats(repo: Repository): Promise<RepoStats> {
  const images = await repo.catalog.listImages();
  const referenced = await repo.catalog.referencedBlobs();
  let logicalBytes = 0;
  let logicalFiles = 0;
  for (const img of images) {
    logicalBytes += img.totalSize;
    logicalFiles += img.fileCount;
  }
  const manifestIds = new Set(images.map((i) => i.id));
  let storedBlobs = 0;
  let storedBytes = 0;
  let uniqueBlobs = 0;
  let uniqueBytes = 0;
  let diskBytes = 0;
  for await (const b of repo.blobs.list()) {
    storedBlobs++;
    storedBytes += b.size;
    if (referenced.has(b.hash) && !manifestIds.has(b.hash)) {
      uniqueBlobs++;
      uniqueBytes += b.size;
    }
    if (repo.blobs.localPath) {
      const st = await stat(repo.blobs.localPath(b.hash)).catch(() => undefined);
      if (st) diskBytes += st.blocks * 512;
    }
  }
  const tags = images.reduce((n, i) => n + i.tags.length, 0);
  return {
    root: repo.root,
    images: images.length,
    tags,
    logicalBytes,
    logicalFiles,
    uniqueBlobs,
    uniqueBytes,
    storedBlobs,
    storedBytes,
    diskBytes,
    dedupRatio: uniqueBytes > 0 ? Math.round((logicalBytes / uniqueBytes) * 1000) / 1000 : 1,
  };
}

export interface FsckProblem {
  kind: 'corrupt-blob' | 'missing-blob' | 'bad-manifest' | 'catalog-mismatch';
  blob?: string;
  image?: string;
  path?: string;
  /** The size the image's manifest gives the blob, when it differs from the stored one. */
  expectedSize?: number;
  message: string;
}

export interface FsckReport {
  ok: boolean;
  imagesChecked: number;
  blobsChecked: number;
  bytesHashed: number;
  problems: FsckProblem[];
  /** Not errors: garbage that `aim repo gc` removes. */
  unreferencedBlobs: number;
  staleScratchDirs: number;
  /** Build directories in ship-builds/ that no publication's run or journal needs any more. */
  orphanShipBuilds: number;
  /** Rows of the impact index that outlived their images or profiles (gc removes them). */
  staleImpactRows: ImpactStaleRows;
  /** Images the catalog lacks that a channel, PXE assignment or publication still names (removed with --force); gc keeps their objects. */
  danglingImages: string[];
  /** With --repair: what was done; `ok` then says whether the repository is whole again. */
  repair?: RepairReport;
}

/** fsck found damage (and --repair, if given, could not mend all of it); carries the whole report. */
export class RepositoryDamagedError extends IntegrityError {
  constructor(readonly report: FsckReport) {
    const left = report.repair ? report.repair.unrepaired.length : report.problems.length;
    super(
      report.repair ? `${left} damaged blob(s) could not be restored (${report.problems.length} problem(s) found)` : `${left} integrity problem(s) found`,
      {
        hint: report.repair
          ? 're-import the sources of the affected images listed above (aim image import SOURCE), or give them to aim repo fsck --repair --source SOURCE'
          : 'run aim repo fsck --repair (with --source SOURCE to restore content from a source)',
      },
    );
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), report: this.report };
  }
}


async function staleScratch(repo: Repository): Promise<string[]> {
  const names = await readdir(repo.tmpRoot).catch(() => [] as string[]);
  return names.filter((n) => {
    const pid = Number(n.split('-')[0]);
    return !Number.isInteger(pid) || pid <= 0 || isDeadOtherProcess(pid);
  });
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The objects of images something holds (holds.ts) that the catalog no longer has (`aim image rm
 * --force`): each one's manifest and, when it is there and readable, every blob it names. gc keeps
 * them, so pointing the channel or assignment back at the same image needs nothing re-imported.
 */
async function heldObjects(repo: Repository): Promise<{ blobs: Set<string>; images: string[] }> {
  const data = await repo.catalog.holdData();
  const blobs = new Set<string>();
  const images: string[] = [];
  for (const id of holdsOf(data).keys()) {
    if (data.images.has(id) || !HEX64.test(id)) continue;
    images.push(id);
    if (!(await repo.blobs.has(id))) continue;
    blobs.add(id);
    const bytes = await repo.blobs.read(id).catch(() => undefined);
    let entries: ReturnType<typeof parseManifest>['entries'] = [];
    try {
      if (bytes) entries = parseManifest(bytes).entries;
    } catch {
      // a damaged manifest keeps only itself
    }
    for (const e of entries) if (e.blob) blobs.add(e.blob);
  }
  return { blobs, images: images.sort() };
}

/**
 * Re-hashes every blob and checks every reference: each image's manifest hashes to its id and
 * matches the catalog, each referenced blob exists with the size the manifest says.
 */
export async function fsckRepository(repo: Repository, reporter: Reporter, options: { rehash?: boolean } = {}): Promise<FsckReport> {
  const problems: FsckProblem[] = [];
  const rehash = options.rehash ?? true;
  const sizes = new Map<string, number>();
  let bytesHashed = 0;
  let checked = 0;
  reporter.emit({ type: 'stage', stage: 'fsck-blobs', status: 'start' });
  for await (const b of repo.blobs.list()) {
    sizes.set(b.hash, b.size);
    if (rehash && repo.blobs.localPath) {
      const actual = await sha256File(repo.blobs.localPath(b.hash));
      bytesHashed += b.size;
      if (actual !== b.hash) {
        const users = await repo.catalog.blobUsers(b.hash, 6);
        problems.push({ kind: 'corrupt-blob', blob: b.hash, message: `blob ${b.hash} has content hashing to ${actual}${usedBy(users)}` });
      }
    }
    if (++checked % 2000 === 0) reporter.emit({ type: 'progress', stage: 'fsck-blobs', done: checked, unit: 'blobs' });
  }
  reporter.emit({ type: 'stage', stage: 'fsck-blobs', status: 'done', detail: `${checked} blobs` });

  const images = await repo.catalog.listImages();
  const referenced = new Set<string>();
  for (const img of images) {
    referenced.add(img.id);
    if (!sizes.has(img.id)) {
      problems.push({ kind: 'bad-manifest', image: img.id, message: `image ${img.id}: manifest blob is missing` });
      continue;
    }
    const bytes = await repo.blobs.read(img.id).catch((e: unknown) => {
      if (e instanceof CorruptBlobError) return undefined;
      throw e;
    });
    if (!bytes) {
      problems.push({ kind: 'bad-manifest', image: img.id, message: `image ${img.id}: manifest does not hash to the image id` });
      continue;
    }
    const manifest = parseManifest(bytes);
    const catalogEntries = await repo.catalog.entries(img.id);
    if (catalogEntries.length !== manifest.entries.length) {
      problems.push({
        kind: 'catalog-mismatch',
        image: img.id,
        message: `image ${img.id}: catalog has ${catalogEntries.length} entries, manifest ${manifest.entries.length}`,
      });
    }
    for (const e of manifest.entries) {
      if (e.type !== 'file' || !e.blob) continue;
      referenced.add(e.blob);
      const size = sizes.get(e.blob);
      // A file with holes stores only the data of its extents.
      const stored = e.sparse ? dataLength(e.sparse) : e.size;
      const badMap = e.sparse && checkExtents(e.sparse, e.size ?? 0);
      if (badMap) problems.push({ kind: 'bad-manifest', image: img.id, path: e.path, message: `image ${img.id}: ${e.path} has a bad sparse map: ${badMap}` });
      if (size === undefined) problems.push({ kind: 'missing-blob', image: img.id, blob: e.blob, path: e.path, message: `image ${img.id}: ${e.path} needs missing blob ${e.blob}` });
      else if (size !== stored) problems.push({ kind: 'corrupt-blob', image: img.id, blob: e.blob, path: e.path, expectedSize: stored, message: `image ${img.id}: ${e.path} expects ${stored} bytes, blob has ${size}` });
    }
  }
  const held = await heldObjects(repo);
  for (const h of held.blobs) referenced.add(h);
  let unreferenced = 0;
  for (const h of sizes.keys()) if (!referenced.has(h)) unreferenced++;
  return {
    ok: problems.length === 0,
    imagesChecked: images.length,
    blobsChecked: checked,
    bytesHashed,
    problems,
    unreferencedBlobs: unreferenced,
    staleScratchDirs: (await staleScratch(repo)).length,
    orphanShipBuilds: (await orphanShipBuilds(repo)).length,
    staleImpactRows: await repo.catalog.impact.stale(),
    danglingImages: held.images,
  };
}

export interface GcReport {
  dryRun: boolean;
  removedBlobs: number;
  removedBytes: number;
  keptBlobs: number;
  removedScratchDirs: number;
  /** Cached image trees (cache/trees) of images the catalog no longer holds: removed (or, with dryRun, that would be). */
  removedTrees: number;
  /** Orphaned ship build directories (ship-builds/<publication>) removed; those of pending or interrupted publications stay. */
  removedShipBuilds: number;
  /** Rows of the impact index nothing live reaches: removed (or, with dryRun, that would be). */
  impactRows: ImpactStaleRows;
  /** Images the catalog lacks that something still names: their objects were kept. */
  danglingImages: string[];
}

/**
 * Removes blobs no image references, scratch directories of dead processes, and ship build
 * directories no publication needs (ship-builds.ts). Takes the gc lock, so it never runs while an
 * import is writing blobs the catalog does not know yet. The objects of an image a channel, PXE
 * assignment or live publication names are never collected, even when the image was removed from
 * the catalog with --force; impact index rows that outlived their images go too.
 */
export async function gcRepository(repo: Repository, reporter: Reporter, options: { dryRun?: boolean; waitMs?: number } = {}): Promise<GcReport> {
  const lock = await repo.lockForGc(options.waitMs ?? 0);
  try {
    const referenced = await repo.catalog.referencedBlobs();
    const held = await heldObjects(repo);
    for (const h of held.blobs) referenced.add(h);
    let removedBlobs = 0;
    let removedBytes = 0;
    let keptBlobs = 0;
    for await (const b of repo.blobs.list()) {
      if (referenced.has(b.hash)) {
        keptBlobs++;
        continue;
      }
      removedBlobs++;
      removedBytes += b.size;
      if (!options.dryRun) await repo.blobs.remove(b.hash);
    }
    const stale = await staleScratch(repo);
    if (!options.dryRun) {
      for (const d of stale) {
        // a process killed while a workload ran leaves its overlay mounted in its scratch directory
        const dir = join(repo.tmpRoot, d);
        await unmountUnder(await realpath(dir).catch(() => dir));
        await rm(dir, { recursive: true, force: true });
      }
    }
    const trees = await orphanTrees(repo, async (id) => held.images.includes(id) || (await repo.catalog.getImage(id)) !== undefined);
    let removedTrees = 0;
    for (const t of trees) if (options.dryRun || (await removeTree(treeCacheDir(repo), t))) removedTrees++;
    const shipBuilds = await removeOrphanShipBuilds(repo, { dryRun: options.dryRun });
    const impactRows = options.dryRun ? await repo.catalog.impact.stale() : await repo.catalog.impact.prune();
    reporter.emit({ type: 'info', message: `${options.dryRun ? 'would remove' : 'removed'} ${removedBlobs} blobs (${removedBytes} bytes)` });
    if (held.images.length > 0) {
      reporter.emit({ type: 'warn', code: 'W_GC_DANGLING', message: `kept the objects of ${held.images.length} image(s) removed with --force that channels, PXE assignments or publications still name: ${held.images.map((i) => i.slice(0, 12)).join(', ')}` });
    }
    return { dryRun: options.dryRun ?? false, removedBlobs, removedBytes, keptBlobs, removedScratchDirs: stale.length, removedTrees, removedShipBuilds: shipBuilds.length, impactRows, danglingImages: held.images };
  } finally {
    await lock.release();
  }
}
