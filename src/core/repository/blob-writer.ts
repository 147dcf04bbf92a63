import { createHash } from 'node:crypto';
import { closeSync, fstatSync, linkSync, openSync, renameSync, statSync, unlinkSync, writeSync, constants as fsc } from 'node:fs';
import { IntegrityError, errnoCode } from '../../lib/errors.js';
import { readFullSync } from '../../lib/fs.js';
import { listAt, openListedFile, sourceChanged, type ListedStatus } from '../../lib/listed-file.js';
import type { LocalContent, StoredContent } from '../import/source.js';
import { MIN_HOLE, SparsePacker } from '../model/sparse.js';
import type { SpaceGuard } from './space-guard.js';

const HEX64 = /^[0-9a-f]{64}$/;
/** Bytes of a blob's start putLocal hands back (enough for any magic number). */
export const HEAD = 64;
/** putLocal reads through a buffer of this size: contents up to it are read with one call. */
export const READ_BUFFER = 1 << 20;

/** Removes a scratch file that may be gone already (its error is not the one to report). */
function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone, or the directory is: the scratch directory is removed as a whole later
  }
}

/** The path of a blob under an object store's directory: objects/sha256/ab/cdef… */
export function blobPath(objectsDir: string, hash: string): string {
  if (!HEX64.test(hash)) throw new IntegrityError(`not a sha256 blob id: ${hash}`);
  // Not path.join: this runs for every file, and the parts need no normalising.
  return `${objectsDir}/sha256/${hash.slice(0, 2)}/${hash.slice(2)}`;
}

export interface WrittenLocal extends StoredContent {
  head: Buffer;
  /** The whole content (a view of the read buffer) when it fitted the buffer and has no holes. */
  content?: Buffer;
  /** This writer added the blob (it was not stored already). */
  created: boolean;
}

export interface WrittenListed {
  status: ListedStatus;
  stored?: WrittenLocal;
  holesFd?: number;
}

/**
 * Writes blobs with synchronous calls, for one thread: the main thread's FsBlobStore has one, and
 * so has each blob writer thread (blob-worker.ts). On a page-cache write each call takes a few
 * microseconds, less than the promise and thread-pool round trip of the async API.
 *
 * A new blob is written to a temporary file in this writer's own scratch directory, then linked
 * to its name and the temporary name removed: a reader sees nothing or the whole blob, and link()
 * never replaces a blob that is there already, so a blob another import made durable and
 * committed is never swapped for one that is not durable yet. (A rename across directories would
 * also take the filesystem's one rename lock, which every writer thread then waits for.) Node
 * cannot open with O_TMPFILE and link the descriptor (link(2) does not follow /proc/self/fd, and
 * linkat with AT_SYMLINK_FOLLOW is not exposed), so the name in scratch is needed.
 *
 * Nothing here is synced: the blob store's flush() makes every blob durable with one syncfs
 * before the catalog commit that references them. A blob that a crash cut short is caught by its
 * size: an existing blob is trusted only when its size is right, and replaced otherwise.
 */
export class BlobWriter {
  private counter = 0;

  constructor(
    private readonly objectsDir: string,
    /** A directory of this writer's own (another thread's writer uses another). */
    private readonly scratch: string,
    private readonly guard: () => SpaceGuard | undefined,
  ) {}

  /**
   * Stores a local file or a byte range of one in a single pass: positional reads into `buf`,
   * each chunk hashed and, for contents larger than `buf`, written to the scratch file at once.
   * Contents that fit `buf` are written only when their blob is not stored yet. What is stored is
   * exactly what was hashed, even if the file changes meanwhile. Content long enough to hold a
   * hole goes through a SparsePacker: only its data is hashed and written, and `sparse` maps it.
   */
  putLocal(file: LocalContent, buf: Buffer): WrittenLocal {
    // O_NONBLOCK: a FIFO put where a file was listed must not block the open.
    const fd = file.fd ?? openSync(file.path!, fsc.O_RDONLY | fsc.O_NOCTTY | fsc.O_NONBLOCK);
    let tmp: string | undefined;
    let out: number | undefined;
    try {
      const start = file.offset ?? 0;
      const length = file.length ?? fstatSync(fd).size;
      const packer = length >= MIN_HOLE ? new SparsePacker() : undefined;
      const hasher = createHash('sha256');
      let n = readFullSync(fd, buf, Math.min(buf.length, length), start);
      const head = Buffer.from(buf.subarray(0, Math.min(n, HEAD)));
      if (n < buf.length || n === length) {
        // The whole content is in the buffer; for a whole file, a read short of the buffer is its end.
        const content = buf.subarray(0, n);
        if (packer) {
          const pieces: Buffer[] = [];
          packer.data(content, pieces);
          const sparse = packer.finish(pieces);
          if (sparse) {
            const data = Buffer.concat(pieces);
            const hash = hasher.update(data).digest('hex');
            return { hash, size: n, sparse, head, created: this.putChunks(hash, [data], data.length) };
          }
        }
        const hash = hasher.update(content).digest('hex');
        return { hash, size: n, head, content, created: this.putChunks(hash, [content], n) };
      }
      tmp = this.tmpName();
      out = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444);
      const guard = this.guard();
      const pieces: Buffer[] = [];
      let stored = 0;
      const store = (chunk: Buffer) => {
        hasher.update(chunk);
        guard?.charge(chunk.length);
        stored += chunk.length;
        for (let off = 0; off < chunk.length; ) off += writeSync(out!, chunk, off, chunk.length - off);
      };
      let size = 0;
      while (n > 0) {
        const chunk = buf.subarray(0, n);
        if (packer) {
          packer.data(chunk, pieces);
          for (const p of pieces) store(p);
          pieces.length = 0;
        } else store(chunk);
        size += n;
        // A byte range ends at its length; a whole file at its end, even if it grew since it was listed.
        const want = file.length === undefined ? buf.length : Math.min(buf.length, length - size);
        n = want > 0 ? readFullSync(fd, buf, want, start + size) : 0;
      }
      const sparse = packer?.finish(pieces);
      for (const p of pieces) store(p);
      closeSync(out);
      out = undefined;
      const hash = hasher.digest('hex');
      const written = tmp;
      tmp = undefined;
      const created = this.publish(written, hash, stored);
      if (!created) guard?.refund(stored);
      return sparse ? { hash, size, sparse, head, created } : { hash, size, head, created };
    } finally {
      if (file.fd === undefined) closeSync(fd);
      if (out !== undefined) closeSync(out);
      if (tmp !== undefined) removeQuietly(tmp);
    }
  }

  /**
   * Stores the regular file `name` of the directory open as `dirFd` (lib/listed-file.ts): lists
   * it, opens it without following anything and checks it is what was listed (E_SOURCE_CHANGED
   * otherwise), then stores it like putLocal. Something else than a regular file is only listed;
   * a file with holes is opened and checked, and its descriptor handed back unread (holesFd).
   */
  putListed(dirFd: number, name: Buffer, label: string, buf: Buffer): WrittenListed {
    const status = listAt(dirFd, name, label);
    if (status.type !== 'file') return { status };
    const fd = openListedFile(dirFd, name, label, status);
    // Fewer bytes allocated than a hole's worth of the size: the caller reads around the holes.
    if (status.size >= MIN_HOLE && status.size - status.allocated >= MIN_HOLE) return { status, holesFd: fd };
    let stored: WrittenLocal;
    try {
      stored = this.putLocal({ fd, length: status.size }, buf);
    } finally {
      closeSync(fd);
    }
    // The open file matched its listing, then shrank while it was read.
    if (stored.size !== status.size) throw sourceChanged(label, `${stored.size} bytes read, ${status.size} listed`);
    return { status, stored };
  }

  /** Stores content held in memory under its (already computed) hash, unless it is stored already. True when this call added it. */
  putChunks(hash: string, chunks: Buffer[], size: number): boolean {
    if (this.has(hash, size)) return false;
    const guard = this.guard();
    guard?.charge(size);
    const tmp = this.tmpName();
    let created: boolean;
    try {
      const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444);
      try {
        for (const chunk of chunks) {
          for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
        }
      } finally {
        closeSync(fd);
      }
      created = this.publish(tmp, hash, size);
    } catch (e) {
      removeQuietly(tmp);
      guard?.refund(size);
      throw e;
    }
    if (!created) guard?.refund(size); // another writer got there first
    return created;
  }

  /** The blob is stored already with this size. */
  private has(hash: string, size: number): boolean {
    return statSync(blobPath(this.objectsDir, hash), { throwIfNoEntry: false })?.size === size;
  }

  /**
   * Gives the scratch file `tmp` its blob name, consuming `tmp`. True when it added the blob;
   * false when a whole blob of that name was there already.
   */
  publish(tmp: string, hash: string, size: number): boolean {
    const dest = blobPath(this.objectsDir, hash);
    try {
      linkSync(tmp, dest);
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') {
        removeQuietly(tmp);
        throw e;
      }
      if (statSync(dest, { throwIfNoEntry: false })?.size !== size) {
        // Cut short by a crash before it was synced (never referenced then): replaced.
        renameSync(tmp, dest);
        return true;
      }
      unlinkSync(tmp);
      return false;
    }
    unlinkSync(tmp);
    return true;
  }

  /** A new name in this writer's scratch directory. */
  tmpName(): string {
    return `${this.scratch}/${++this.counter}`;
  }
}
