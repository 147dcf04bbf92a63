import { analyzeImage } from '../analyze/index.js';
import { faultPoint } from '../../lib/fault.js';
import type { Reporter } from '../../lib/reporter.js';
import type { Entry } from '../model/entry.js';
import { manifestId, serializeManifest } from '../model/manifest.js';
import type { Repository } from '../repository/repository.js';
import type { ImageFactsRecord } from '../repository/types.js';
import type { IngestResult } from './ingest.js';
import { indexImage, indexLater } from '../lifecycle/impact-indexer.js';

export interface CommitRequest {
  source: string;
  sourceKind: string;
  tags: string[];
}

export interface CommittedImage {
  id: string;
  created: boolean;
  tags: string[];
  entryCount: number;
  fileCount: number;
  totalSize: number;
  packageCount: number;
  elfCount: number;
  licenseCount: number;
  distro?: string;
}

/** Read access to an image's files through the blob store, for the analyzers. */
export function imageView(repo: Repository, entries: Entry[]) {
  return {
    entries: new Map(entries.map((e) => [e.path, e] as const)),
    readBlob: (blob: string) => repo.blobs.read(blob),
    readBlobRange: (blob: string, offset: number, length: number) => repo.blobs.readRange(blob, offset, length),
  };
}

/**
 * Makes ingested content an image: stores the canonical manifest as a blob (its hash is the image
 * id), makes all blobs durable while the analysers read the content, and only then adds the image
 * with its facts to the catalog in one transaction. Until that commit nothing of the import is
 * visible, and it never comes before the blobs it references are on disk.
 */
export async function commitImage(repo: Repository, ingested: IngestResult, request: CommitRequest, reporter: Reporter): Promise<CommittedImage> {
  const bytes = serializeManifest({ schemaVersion: 1, entries: ingested.entries });
  const id = manifestId(bytes);
  // The catalog's rows and its WAL take about what the manifest does, again.
  repo.blobs.guard?.require(2 * bytes.length);
  await repo.blobs.putBuffer(bytes);
  // One filesystem sync for every blob of the import. It runs while the analysers read (they
  // only read, and what they read is in the page cache), so its wait mostly disappears.
  const durable = repo.blobs.flush();
  durable.catch(() => {}); // observed below, after the analysis
  reporter.emit({ type: 'stage', stage: 'analyze', status: 'start' });
  let facts: Awaited<ReturnType<typeof analyzeImage>>;
  try {
    facts = await analyzeImage(imageView(repo, ingested.entries), { reporter, elfCandidates: ingested.elfBlobs, knownElf: ingested.elfFacts });
  } catch (e) {
    await durable.catch(() => {});
    throw e;
  }
  reporter.emit({ type: 'stage', stage: 'analyze', status: 'done', detail: `${facts.packages.length} packages, ${facts.elf.size} ELF objects` });
  faultPoint('analyzed');
  await durable;
  faultPoint('manifest-stored');

  const record: ImageFactsRecord = {
    packages: facts.packages.map((p) => ({
      name: p.name,
      version: p.version,
      arch: p.arch,
      source: p.source,
      sourceVersion: p.sourceVersion,
      status: p.status,
      manager: p.manager,
      installedSize: p.installedSize,
    })),
    owners: facts.owners,
    elf: facts.elf,
    licenses: facts.licenses.map((l) => ({
      package: l.package,
      spdx: l.spdx,
      expression: l.expression,
      declared: l.declared,
      machineReadable: l.machineReadable,
    })),
  };
  const { created } = await repo.catalog.addImage(
    {
      id,
      createdAt: new Date().toISOString(),
      source: request.source,
      sourceKind: request.sourceKind,
      entryCount: ingested.entries.length,
      fileCount: ingested.fileCount,
      totalSize: ingested.totalSize,
      distro: facts.distro,
      osRelease: facts.osRelease,
    },
    ingested.entries,
    record,
    request.tags,
  );
  // Committed: these blobs are referenced now and must survive any later rollback.
  repo.blobs.created.clear();
  if (created) {
    const byPath = new Map(ingested.entries.map((e) => [e.path, e] as const));
    await indexLater(reporter, `image ${id.slice(0, 12)}`, () => indexImage(repo.catalog, id, byPath, facts.owners, record.packages, facts.osRelease));
  }
  return {
    id,
    created,
    tags: request.tags,
    entryCount: ingested.entries.length,
    fileCount: ingested.fileCount,
    totalSize: ingested.totalSize,
    packageCount: facts.packages.length,
    elfCount: facts.elf.size,
    licenseCount: facts.licenses.length,
    distro: facts.distro,
  };
}
