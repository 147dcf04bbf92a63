import type { Readable } from 'node:stream';
import type { ListedStatus } from '../../lib/listed-file.js';
import type { Reporter } from '../../lib/reporter.js';
import type { ElfFacts } from '../analyze/elf.js';
import type { EntryType } from '../model/entry.js';
import type { ContentChunk, DataExtent } from '../model/sparse.js';

/**
 * What every source reader (directory, tar, OCI, disk image) yields: entries in source order with
 * names as raw bytes exactly as the source stores them. The ingest step (ingest.ts) normalises and
 * validates names, rejects unsafe ones and stores content; readers only decode their format.
 */
export interface SourceEntry {
  /** Raw name as stored in the source ("./etc/passwd", "etc/passwd", "/etc/passwd", "" for the root). */
  name: Buffer;
  type: EntryType | 'socket';
  /** Permission bits incl. setuid/setgid/sticky (type bits are ignored). */
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec?: number;
  /** Regular files: declared content length. */
  size?: number;
  /** Symlink text, or for hardlinks the raw name of the entry linked to. */
  linkName?: Buffer;
  devMajor?: number;
  devMinor?: number;
  /** Extended attributes with binary values (security.capability is binary). */
  xattrs?: Record<string, Buffer>;
  /**
   * Regular files: the content, data chunks and the holes the reader knows of (a GNU sparse map,
   * unallocated blocks). Streaming readers (tar) require it to be consumed before the next entry
   * is requested; ingest always consumes it.
   */
  content?: Readable | AsyncIterable<ContentChunk>;
  /**
   * Regular files whose content is a local file, or a byte range of one (an uncompressed tar's
   * member): ingest stores it with BlobStore.putLocal, without going through `content`.
   */
  local?: LocalContent;
  /**
   * Regular files whose content the reader already stored through `SourceReadOptions.storeBlob`
   * (readers that must look at all input before they know the final tree, such as OCI layers)
   * or `storeListed` (the directory reader), with the content's first bytes and ELF facts when
   * the store gave them.
   */
  blob?: StoredContent & { head?: Buffer; inspected?: ElfFacts };
}

export interface LocalContent {
  /** Path of the file (bytes, so names that are not UTF-8 work); ignored when `fd` is given. */
  path?: string | Buffer;
  /**
   * An open file descriptor to read instead (positional reads). The reader keeps and closes it,
   * unless it gives `release`: then the consumer calls release() once it no longer reads the
   * descriptor, which lets it store many files at once.
   */
  fd?: number;
  /** Hands the descriptor back to the reader to close; safe to call more than once. */
  release?: () => void;
  /** Where the content starts (default 0). */
  offset?: number;
  /** Length of the content (default: up to the end of the file). */
  length?: number;
}

export interface StoredBlob {
  hash: string;
  size: number;
}

/**
 * Content stored as a blob. `size` is the content's (apparent) size; content with holes carries
 * its data extents in `sparse` and its blob holds only those bytes (see model/sparse.ts).
 */
export interface StoredContent {
  hash: string;
  size: number;
  sparse?: DataExtent[];
}

/**
 * What a reader yields, in order. A reader may also deliver extended attributes after its entries
 * (the directory reader reads them with one getfattr run beside its walk, instead of before it).
 */
export type Source = AsyncIterable<SourceEntry> & {
  /** Called once every entry was consumed: raw name → extended attributes, for entries that have any. */
  lateXattrs?: () => Promise<Iterable<[name: Buffer, xattrs: Record<string, Buffer>]>>;
};

/** A source reader: opens a path and yields its entries. Throws InputError on bad input. */
export interface SourceReader {
  /** Short name for messages and JSON ("dir", "tar", "oci", "docker-archive", "disk"). */
  readonly kind: string;
  read(path: string, options: SourceReadOptions): Source;
}

/** A file of a directory source as the blob store listed, opened and stored it (BlobStore.putListed). */
export interface ListedFile {
  /** What the store found (lstat, then fstat of what it opened: the same object). */
  status: ListedStatus;
  /** The stored content, when it is a regular file without holes. */
  stored?: StoredContent & { head: Buffer; inspected?: ElfFacts };
  /** A regular file with holes, opened and checked but not read: the caller reads it around its holes and closes this. */
  holesFd?: number;
}

/** Lists, opens (checked against the listing) and stores the file `name` of the directory open as `dirFd`; `label` names it in messages. */
export type ListedFileStore = (dirFd: number, name: Buffer, label: string) => Promise<ListedFile>;

export interface SourceReadOptions {
  reporter?: Reporter;
  /** Scratch directory inside the repository for readers that must stage data. */
  scratchDir?: string;
  /** Stores content in the repository's blob store (holes kept as holes) and returns what it stored. */
  storeBlob?: (content: Readable | AsyncIterable<ContentChunk>) => Promise<StoredContent>;
  /** Local blob stores: stores a file of a directory source where it lies (the directory reader's fast path). */
  storeListed?: ListedFileStore;
  /** Disk images: the partition number holding the root filesystem. */
  partition?: number;
  /** Multi-image archives (OCI, docker): the image name[:tag] to read. */
  ref?: string;
  /** OCI image indexes: "os/arch[/variant]". */
  platform?: string;
}
