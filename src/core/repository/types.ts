import type { PublicationStore } from './catalog-publications.js';
import type { PxeStore } from './catalog-pxe.js';
import type { ChannelStore } from './catalog-channels.js';
import type { Readable } from 'node:stream';
import type { ListedStatus } from '../../lib/listed-file.js';
import type { Entry } from '../model/entry.js';
import type { ImpactStore } from './catalog-impact.js';
import type { HoldData } from './holds.js';
import type { LineageStore } from './catalog-lineage.js';
import type { LocalContent, StoredBlob, StoredContent } from '../import/source.js';
import type { ProbeResult } from '../profile/probes.js';
import type { WorkloadSpec } from '../profile/profile-run.js';
import type { PathEvidence } from '../profile/strace-parser.js';

/**
 * Content-addressed blob storage. The embedded backend keeps files under objects/; an S3 backend
 * can satisfy the same interface. Callers never learn which one is in use, except through the
 * optional `localPath` that lets fast paths hardlink or reflink blobs.
 */
export interface BlobStore {
  /** Streams content in; complete and visible when the promise resolves, durable after flush(). */
  put(content: Readable | AsyncIterable<Buffer>): Promise<StoredBlob>;
  putBuffer(content: Buffer): Promise<StoredBlob>;
  /**
   * Stores a file on the local filesystem, or a byte range of one (a member of a tar), reading it
   * once. The fast path of directory and tar imports; a remote backend streams the same bytes.
   * Long runs of zeros become holes (model/sparse.ts): the result then carries the data extents
   * and the blob holds only the data.
   */
  putLocal<T = never>(file: LocalContent, options?: PutLocalOptions<T>): Promise<LocalBlob<T>>;
  /**
   * Local stores only: lists the file `name` of the directory open as `dirFd`, opens it without
   * following anything, checks it is what was listed (E_SOURCE_CHANGED otherwise) and stores it
   * like putLocal (lib/listed-file.ts). The directory reader's fast path: the store can do this
   * where it writes (on its writer threads).
   */
  putListed?<T = never>(dirFd: number, name: Buffer, label: string, options?: PutLocalOptions<T>): Promise<ListedBlob<T>>;
  has(hash: string): Promise<boolean>;
  /** Size in bytes, or undefined when absent. */
  size(hash: string): Promise<number | undefined>;
  /** The whole blob, verified like createReadStream. */
  read(hash: string): Promise<Buffer>;
  /** A byte range, not verified: for analysers peeking into blobs, never for output. */
  readRange(hash: string, offset: number, length: number): Promise<Buffer>;
  /**
   * The blob as a stream that verifies it as it flows: it fails with E_CORRUPT_BLOB (naming the
   * blob and the images using it) before the end of content that does not hash to the blob's
   * name or, when given, is not `expectedSize` bytes long, and with E_MISSING_BLOB when it is
   * absent. Every reader that writes blobs out (export, build, sandbox, ship) reads through it.
   */
  createReadStream(hash: string, expectedSize?: number): Readable;
  /** Every stored blob, in no particular order. */
  list(): AsyncIterable<StoredBlob>;
  remove(hash: string): Promise<void>;
  /** Makes every blob put so far durable (one filesystem sync); call before committing a catalog change. */
  flush(): Promise<void>;
  /** Path of the blob on the local filesystem, when the backend has one. */
  localPath?(hash: string): string;
}

export interface PutLocalOptions<T> {
  /**
   * Called with the whole content when it was small enough to be read in one go (up to 1 MiB)
   * and has no holes,
   * before putLocal resolves; its result is returned as `inspected`. The buffer is only valid
   * until the returned promise settles (ingest parses small ELF files this way, without a copy).
   */
  inspect?: (content: Buffer) => T | Promise<T>;
  /**
   * Only contents starting with these bytes are shown to `inspect` (the ELF magic): a store that
   * reads on other threads sends only those back.
   */
  inspectMagic?: Buffer;
  /**
   * `inspect` as a synchronous export of a module (its URL and the export's name), returning
   * plain data: a store that reads on other threads runs it there, on the content it has just
   * read, and sends back only the result instead of the content.
   */
  inspectModule?: InspectorModule;
}

/** A synchronous `(content: Uint8Array) => plain data` exported by a module. */
export interface InspectorModule {
  url: string;
  name: string;
}

export interface ListedBlob<T = never> {
  /** What was listed and opened. */
  status: ListedStatus;
  /** The stored content, when it is a regular file without holes. */
  stored?: LocalBlob<T>;
  /** A regular file with holes, opened and checked but not read: the caller reads it around its holes and closes this. */
  holesFd?: number;
}

export interface LocalBlob<T = never> extends StoredContent {
  /** The first bytes of the content (up to 64). */
  head: Buffer;
  /** What `inspect` returned, when it was called. */
  inspected?: T;
}

export interface ImageRecord {
  id: string;
  createdAt: string;
  /** Where the image came from: a path, "mmdebstrap bookworm minbase +nginx", "slim of …". */
  source: string;
  sourceKind: string;
  entryCount: number;
  fileCount: number;
  /** Sum of regular file sizes (hardlinks counted once). */
  totalSize: number;
  distro?: string;
  osRelease?: Record<string, string>;
}

export interface PackageRecord {
  name: string;
  version: string;
  arch: string;
  source?: string;
  sourceVersion?: string;
  status?: string;
  manager: string;
  installedSize?: number;
}

export interface LicenseRecord {
  package: string;
  spdx: string[];
  expression?: string;
  declared: string[];
  machineReadable: boolean;
}

export interface ImageFactsRecord {
  packages: PackageRecord[];
  /** Image path → owning package names. */
  owners: Map<string, string[]>;
  /** Blob → ELF facts (JSON-serialisable). */
  elf: Map<string, unknown>;
  licenses: LicenseRecord[];
}

/** A named profile: what a workload used in an image, over one or more traced runs. */
export interface ProfileRecord {
  name: string;
  imageId: string;
  createdAt: string;
  updatedAt: string;
  /** `units`: the systemd units whose runtime directories the run created first. */
  runs: (WorkloadSpec & {
    command: string;
    results: ProbeResult[];
    /** Time to ready and the probe tries it took (runs recorded before readiness was measured have none). */
    ready?: { ms: number; tries: number; line?: string };
    /** TCP ports the workload listened on once ready (runs recorded before aim kept them have none). */
    ports?: number[];
    at: string;
  })[];
  /** Every path any run used, with its evidence (syscalls, success, exec, first process). */
  paths: PathEvidence[];
  /** User and group ids the workload switched to or gave files (set*id, setgroups, chown), sorted. */
  uids?: number[];
  gids?: number[];
}

export interface TagRecord {
  name: string;
  imageId: string;
  updatedAt: string;
}

/**
 * The catalog: images, tags, entries and facts. The embedded backend is SQLite; a PostgreSQL
 * backend can satisfy the same interface.
 */
export interface Catalog {
  /** The indexes impact analysis queries (catalog-impact.ts). */
  readonly impact: ImpactStore;
  /** Adds an image with its entries and facts atomically (no-op when the id exists) and sets tags. */
  addImage(record: ImageRecord, entries: Entry[], facts: ImageFactsRecord | undefined, tags: string[]): Promise<{ created: boolean }>;
  getImage(id: string): Promise<ImageRecord | undefined>;
  listImages(): Promise<(ImageRecord & { tags: string[] })[]>;
  /** Resolves "name:tag", a full id or a unique id prefix (at least 8 hex digits). */
  resolve(ref: string): Promise<string | undefined>;
  /** Ids starting with the prefix. */
  findIdsByPrefix(prefix: string): Promise<string[]>;
  setTag(name: string, imageId: string): Promise<void>;
  removeTag(name: string): Promise<boolean>;
  tagsOf(imageId: string): Promise<string[]>;
  /** Every tag whose name starts with the prefix ("core/kernel:"), with the time it was last set. */
  listTags(prefix?: string): Promise<TagRecord[]>;
  /**
   * Removes an image and everything that hangs off it (not its blobs), and the impact index rows
   * nothing live reaches any more. `guard` runs inside the same transaction, on what holds images
   * then: throwing from it removes nothing.
   */
  removeImage(id: string, options?: { guard?: (holds: HoldData) => void }): Promise<void>;
  /** What holds images (holds.ts), read in one snapshot. */
  holdData(): Promise<HoldData>;
  entries(imageId: string): Promise<Entry[]>;
  packages(imageId: string): Promise<PackageRecord[]>;
  owners(imageId: string): Promise<Map<string, string[]>>;
  licenses(imageId: string): Promise<LicenseRecord[]>;
  elfFacts(blobs: string[]): Promise<Map<string, unknown>>;
  putProfile(profile: ProfileRecord): Promise<void>;
  /** The report a slim image carries (what was removed, by package and size). */
  putSlimReport(imageId: string, report: unknown): Promise<void>;
  getSlimReport(imageId: string): Promise<unknown>;
  getProfile(name: string): Promise<ProfileRecord | undefined>;
  listProfiles(): Promise<Pick<ProfileRecord, 'name' | 'imageId' | 'createdAt' | 'updatedAt'>[]>;
  /** Every blob referenced by any image (entries and manifests). */
  referencedBlobs(): Promise<Set<string>>;
  /** Those of `blobs` that some image references (as an entry's content or as its manifest). */
  referencedAmong(blobs: Iterable<string>): Promise<Set<string>>;
  /** Where images use a blob: up to `limit` (image, path) pairs, the manifest itself as path "". */
  blobUsers(blob: string, limit: number): Promise<{ imageId: string; path: string }[]>;
  /** What `aim ship` published, and the journal of the resources each publication created. */
  readonly publications: PublicationStore;
  /** How images were made from others (aim update) and what was built of them. */
  readonly lineage: LineageStore;
  /** PXE assignments (what machines boot) and the boot events of `aim pxe serve`. */
  readonly pxe: PxeStore;
  /** Channels (what each serves), their history and AMI pointers, and qualifications. */
  readonly channels: ChannelStore;
  close(): Promise<void>;
}
