import { BusyError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import { manifestId, serializeManifest } from '../model/manifest.js';
import type { FsckReport } from './maintenance.js';
import type { Repository } from './repository.js';

/** An image that still lacks content after a repair: re-import its source to restore it. */
export interface AffectedImage {
  id: string;
  tags: string[];
  /** Where the image came from, as recorded at import. */
  source: string;
  /** Damaged blobs the image uses, and the paths using them (the first 20). */
  blobs: number;
  paths: string[];
}

export interface RepairReport {
  /** Corrupt copies removed from the store (a later import or --source writes them anew). */
  removedCorrupt: string[];
  /** Damaged blobs present and intact again: from a source, or manifests rebuilt from the catalog. */
  restored: string[];
  /** Damaged blobs still missing. */
  unrepaired: string[];
  affectedImages: AffectedImage[];
  /** Nothing fsck found remains (catalog mismatches are never repaired here). */
  ok: boolean;
}

export interface RepairOptions {
  /**
   * Stores the blobs of the user's sources (the import driver reads them); called under the
   * exclusive lease. Whatever it stores that no image references is removed again.
   */
  restore?: () => Promise<void>;
}

/** Whether the blob is present and verifies (at the size its images expect, when known). */
async function intact(repo: Repository, hash: string, size?: number): Promise<boolean> {
  try {
    for await (const chunk of repo.blobs.createReadStream(hash, size)) void chunk;
    return true;
  } catch {
    return false;
  }
}

/**
 * Repairs what fsck found, under an exclusive lease (no import or gc runs meanwhile): removes
 * corrupt copies, so that no reader can get them and any import of the same content writes them
 * anew; rebuilds damaged manifests from the catalog's entries when they hash to the image id;
 * stores the blobs of the given sources; and lists the images still lacking content.
 */
export async function repairRepository(repo: Repository, found: FsckReport, reporter: Reporter, options: RepairOptions = {}): Promise<RepairReport> {
  const corrupt = new Set<string>();
  /** Damaged blobs, with the size their images expect when a manifest says it. */
  const damaged = new Map<string, number | undefined>();
  for (const p of found.problems) {
    const blob = p.kind === 'bad-manifest' ? p.image : p.blob;
    if (!blob) continue;
    damaged.set(blob, p.expectedSize ?? damaged.get(blob));
    if (p.kind === 'corrupt-blob') corrupt.add(blob);
  }
  const unfixable = found.problems.some((p) => p.kind === 'catalog-mismatch');
  const report: RepairReport = { removedCorrupt: [], restored: [], unrepaired: [], affectedImages: [], ok: !unfixable };
  if (damaged.size === 0) return report;

  const lock = await repo.lockForWrite();
  try {
    const alone = await lock.exclusive();
    if (!alone) throw new BusyError('cannot repair while an import is running', { hint: 'retry when it finishes' });
    try {
      for (const hash of corrupt) {
        if (await intact(repo, hash, damaged.get(hash))) continue;
        await repo.blobs.remove(hash);
        report.removedCorrupt.push(hash);
      }
      reporter.emit({ type: 'info', message: `removed ${report.removedCorrupt.length} corrupt blob(s)` });
      for (const hash of damaged.keys()) {
        if (!(await repo.catalog.getImage(hash))) continue;
        const bytes = serializeManifest({ schemaVersion: 1, entries: await repo.catalog.entries(hash) });
        if (manifestId(bytes) === hash) await repo.blobs.putBuffer(bytes);
      }
      if (options.restore) await options.restore();
      // What the sources held beyond the damaged blobs is not wanted here.
      const created = [...repo.blobs.created];
      repo.blobs.created.clear();
      const kept = await repo.catalog.referencedAmong(created);
      for (const hash of created) if (!kept.has(hash)) await repo.blobs.remove(hash);
      await repo.blobs.flush();
    } finally {
      await alone.release();
    }
  } finally {
    await repo.blobs.disposeScratch();
    await lock.release();
  }

  for (const [hash, size] of damaged) (await intact(repo, hash, size) ? report.restored : report.unrepaired).push(hash);
  report.affectedImages = await affected(repo, report.unrepaired);
  report.ok = !unfixable && report.unrepaired.length === 0;
  return report;
}

async function affected(repo: Repository, blobs: string[]): Promise<AffectedImage[]> {
  const byImage = new Map<string, { blobs: Set<string>; paths: string[] }>();
  for (const blob of blobs) {
    for (const u of await repo.catalog.blobUsers(blob, Number.MAX_SAFE_INTEGER)) {
      let a = byImage.get(u.imageId);
      if (!a) byImage.set(u.imageId, (a = { blobs: new Set(), paths: [] }));
      a.blobs.add(blob);
      if (a.paths.length < 20) a.paths.push(u.path || '(manifest)');
    }
  }
  const out: AffectedImage[] = [];
  for (const [id, a] of byImage) {
    const img = await repo.catalog.getImage(id);
    out.push({ id, tags: await repo.catalog.tagsOf(id), source: img?.source ?? '', blobs: a.blobs.size, paths: a.paths });
  }
  return out.sort((x, y) => x.id.localeCompare(y.id));
}
