import { lstat, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConfigError, InputError, NotFoundError, errnoCode } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { Repository } from '../repository/repository.js';
import { withImportSession } from './write-session.js';
import { commitImage, type CommittedImage } from './commit.js';
import { dirSource } from './dir-reader.js';
import { diskSource, isDiskImage } from './disk/disk-reader.js';
import { INSPECT_ELF, ingestSource } from './ingest.js';
import { detectArchiveKind, dockerArchiveSource, ociSource } from './oci-reader.js';
import type { Source, SourceReader } from './source.js';
import { storeContent } from './store-content.js';
import { parseTag } from './tags.js';
import { tarSource } from './tar-reader.js';

export const SOURCE_KINDS = ['auto', 'dir', 'tar', 'oci', 'docker-archive', 'disk'] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

const READERS: Record<Exclude<SourceKind, 'auto'>, SourceReader> = {
  dir: dirSource,
  tar: tarSource,
  oci: ociSource,
  'docker-archive': dockerArchiveSource,
  disk: diskSource,
};

export interface ImportRequest {
  source: string;
  kind?: SourceKind;
  tags?: string[];
  /** Disk images: the partition holding the root filesystem (default: found automatically). */
  partition?: number;
  /** OCI layouts and docker archives holding several images: which one (name or name:tag). */
  ref?: string;
  /** OCI image indexes: the platform to pick, "os/arch[/variant]" (default linux/amd64). */
  platform?: string;
  /** Most bytes of new content the import may add to the repository (E_MAX_SIZE beyond). */
  maxBytes?: number;
}

export interface ImportResult extends CommittedImage {
  source: string;
  sourceKind: string;
  skipped: { path: string; reason: string }[];
  durationMs: number;
}

/** Works out what a source path holds, by content and never by file name. */
export async function detectSourceKind(path: string): Promise<Exclude<SourceKind, 'auto'>> {
  const st = await stat(path).catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${path} does not exist`);
    throw e;
  });
  // lstat: an oci-layout that is a symlink still marks a layout (whose reader then refuses it).
  if (st.isDirectory()) return (await lstat(join(path, 'oci-layout')).catch(() => undefined)) ? 'oci' : 'dir';
  if (!st.isFile()) throw new InputError('E_UNSUPPORTED_SOURCE', `${path} is neither a directory nor a file`);
  if (st.size === 0) throw new InputError('E_EMPTY_INPUT', `${path} is empty`);
  if (await isDiskImage(path)) return 'disk';
  return detectArchiveKind(path);
}

/**
 * Imports a source into the repository as one image. Holds the repository's write lock (so gc
 * cannot remove blobs this import relies on); on any failure the catalog is untouched and the
 * blobs it wrote are removed again (or left to gc while other imports run).
 */
export async function importImage(repo: Repository, request: ImportRequest, reporter: Reporter): Promise<ImportResult> {
  const started = Date.now();
  const tags = (request.tags ?? []).map(parseTag);
  const source = resolve(request.source);
  const kind = request.kind && request.kind !== 'auto' ? request.kind : await detectSourceKind(source);
  if (request.partition !== undefined && kind !== 'disk') throw new ConfigError('--partition applies to disk images only');
  if ((request.ref || request.platform) && kind !== 'oci' && kind !== 'docker-archive') {
    throw new ConfigError('--ref and --platform apply to OCI layouts and docker archives only');
  }
  return withImportSession(repo, { maxBytes: request.maxBytes }, async () => {
    const entries = await openSource(repo, source, kind, request, reporter);
    const result = await importSource(repo, entries, { source, sourceKind: kind, tags }, reporter);
    return { ...result, durationMs: Date.now() - started };
  });
}

async function openSource(repo: Repository, source: string, kind: Exclude<SourceKind, 'auto'>, request: ImportRequest, reporter: Reporter): Promise<Source> {
  reporter.emit({ type: 'stage', stage: 'import', status: 'start', detail: `${kind} ${source}` });
  return READERS[kind].read(source, {
    reporter,
    scratchDir: await repo.blobs.scratchDir(),
    storeBlob: (content) => storeContent(repo.blobs, content),
    storeListed: repo.blobs.putListed && ((dirFd, name, label) => repo.blobs.putListed!(dirFd, name, label, INSPECT_ELF)),
    partition: request.partition,
    ref: request.ref,
    platform: request.platform,
  });
}

/**
 * Stores the contents of a source as blobs without making an image of it: `aim repo fsck --repair
 * --source` restores damaged blobs this way. The caller holds the write lease and removes what no
 * image needs.
 */
export async function storeSourceBlobs(repo: Repository, request: Omit<ImportRequest, 'tags'>, reporter: Reporter): Promise<{ files: number }> {
  const source = resolve(request.source);
  const kind = request.kind && request.kind !== 'auto' ? request.kind : await detectSourceKind(source);
  const ingested = await ingestSource(await openSource(repo, source, kind, request, reporter), { blobs: repo.blobs, reporter, label: source });
  reporter.emit({ type: 'stage', stage: 'import', status: 'done', detail: `${ingested.fileCount} files read` });
  return { files: ingested.fileCount };
}

/** Ingests and commits any source stream (used by import and by gold builds). Caller holds the write lock. */
export async function importSource(
  repo: Repository,
  entries: Source,
  meta: { source: string; sourceKind: string; tags: string[] },
  reporter: Reporter,
): Promise<Omit<ImportResult, 'durationMs'>> {
  const ingested = await ingestSource(entries, { blobs: repo.blobs, reporter, label: meta.source });
  reporter.emit({ type: 'stage', stage: 'import', status: 'done', detail: `${ingested.entries.length} entries, ${ingested.fileCount} files` });
  const committed = await commitImage(repo, ingested, meta, reporter);
  return { ...committed, source: meta.source, sourceKind: meta.sourceKind, skipped: ingested.skipped };
}
