import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, renameSync, statSync, unlinkSync, writeSync, constants as fsc } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { IntegrityError, errnoCode } from '../../lib/errors.js';
import { runTool } from '../../lib/exec.js';
import { readFullSync } from '../../lib/fs.js';
import type { LocalContent, StoredBlob, StoredContent } from '../import/source.js';
import { MIN_HOLE, SparsePacker } from '../model/sparse.js';
import type { SpaceGuard } from './space-guard.js';
import type { BlobStore, LocalBlob, PutLocalOptions } from './types.js';
import { CorruptBlobError, MissingBlobError, verifyBuffer, verifyChunks, type BlobUsersLookup } from './verify.js';

const HEX64 = /^[0-9a-f]{64}$/;
/** Content up to this size is hashed in memory first, so a blob already stored costs no write. */
const MEMORY_LIMIT = 1 << 20;
/** putLocal reads through one reused buffer of this size: contents up to it are read with one call. */
const READ_BUFFER = 1 << 20;
/** Bytes of a blob's start putLocal hands back (enough for any magic number). */
const HEAD = 64;
/** Read streams read blobs in chunks of up to this size. */
const STREAM_CHUNK = 1 << 20;

/**
 * Blobs as files: objects/sha256/ab/cdef… (two hex digits of fan-out). A blob is written to a
 * temporary file in the writer's own tmp directory, then renamed into place; a reader therefore
 * sees either nothing or the whole blob. Killed writers leave only their tmp directory, which gc
 * removes.
 *
 * Durability is batched, as ostree does it: instead of one fsync per blob (which made imports
 * 40% slower here), flush() syncs the whole filesystem once, and the catalog commit that makes an
 * image visible comes only after it. After a power loss a blob renamed but not yet synced can be
 * short or empty; put() therefore trusts an existing blob only when its size matches, and
 * rewrites it otherwise.
 */
export class FsBlobStore implements BlobStore {
  /** Blobs were renamed into place since the last flush. */
  /** Blobs this instance added to the store (not those it found already there). */
  readonly created = new Set<string>();
  /** Charged before every byte written, while a write (an import) sets it: free space and --max-size. */
  guard: SpaceGuard | undefined;
  private tmpDir: Promise<string> | undefined;

  constructor(
    readonly objectsDir: string,
    private readonly tmpRoot: string,
    /** Names the images and paths using a blob in read errors (the repository passes its catalog's). */
    private readonly usersOf: BlobUsersLookup = async () => [],
  ) {}

  private counter = 0;
  private readBuffer: Buffer | undefined;

  static async create(objectsDir: string, tmpRoot: string): Promise<void> {
    const base = join(objectsDir, 'sha256');
    await mkdir(base, { recursive: true });
    await Promise.all(
      Array.from({ length: 256 }, (_, i) => mkdir(join(base, i.toString(16).padStart(2, '0')), { recursive: true })),
    );
    await mkdir(tmpRoot, { recursive: true });
  }

  localPath(hash: string): string {
    if (!HEX64.test(hash)) throw new IntegrityError(`not a sha256 blob id: ${hash}`);
    return join(this.objectsDir, 'sha256', hash.slice(0, 2), hash.slice(2));
  }

  /** This process's scratch directory, named by pid so gc can tell live writers from dead ones. */
  scratchDir(): Promise<string> {
    this.tmpDir ??= (async () => {
      const dir = join(this.tmpRoot, `${process.pid}-${randomBytes(4).toString('hex')}`);
      await mkdir(dir, { recursive: true });
      return dir;
    })();
    return this.tmpDir;
  }

  async disposeScratch(): Promise<void> {
    if (this.tmpDir) await rm(await this.tmpDir, { recursive: true, force: true });
    this.tmpDir = undefined;
  }

  async has(hash: string): Promise<boolean> {
    return (await this.size(hash)) !== undefined;
  }

  async size(hash: string): Promise<number | undefined> {
    try {
      return (await stat(this.localPath(hash))).size;
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  async putBuffer(content: Buffer): Promise<StoredBlob> {
    const hash = createHash('sha256').update(content).digest('hex');
    this.commitSync(hash, [content], content.length, await this.scratchDir());
    return { hash, size: content.length };
  }

  /**
   * Stores a local file (or a byte range of one) in a single pass: synchronous positional reads
   * into one reused buffer, each chunk hashed and, for contents larger than the buffer, written
   * to the scratch file at once. Contents that fit the buffer are written only when their blob is
   * not stored yet, so importing a second image costs little more than hashing it. What is stored
   * is exactly what was hashed, even if the file changes meanwhile (a copy by path could not
   * promise that). Synchronous on purpose: see commitSync.
   */
  async putLocal<T = never>(file: LocalContent, options: PutLocalOptions<T> = {}): Promise<LocalBlob<T>> {
    const scratch = await this.scratchDir();
    // The buffer is lent out while `inspect` runs; a putLocal meanwhile gets a buffer of its own.
    const buf = this.readBuffer ?? Buffer.allocUnsafe(READ_BUFFER);
    this.readBuffer = undefined;
    try {
      const stored = this.putLocalSync(file, buf, scratch);
      const { content, ...result } = stored;
      if (!content || !options.inspect) return result;
      return { ...result, inspected: await options.inspect(content) };
    } finally {
      this.readBuffer = buf;
    }
  }

  /**
   * The work of putLocal; `content` is the whole content when it fitted `buf` (a view of it) and
   * has no holes. Content long enough to hold a hole goes through a SparsePacker: what is hashed
   * and written is then only the data, and `sparse` maps it.
   */
  private putLocalSync(file: LocalContent, buf: Buffer, scratch: string): StoredContent & { head: Buffer; content?: Buffer } {
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
            this.commitSync(hash, [data], data.length, scratch);
            return { hash, size: n, sparse, head };
          }
        }
        const hash = hasher.update(content).digest('hex');
        this.commitSync(hash, [content], n, scratch);
        return { hash, size: n, head, content };
      }
      tmp = join(scratch, String(++this.counter));
      out = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444);
      const pieces: Buffer[] = [];
      let stored = 0;
      const store = (chunk: Buffer) => {
        hasher.update(chunk);
        this.guard?.charge(chunk.length);
        for (let off = 0; off < chunk.length; ) off += writeSync(out!, chunk, off, chunk.length - off);
        stored += chunk.length;
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
      const dest = this.localPath(hash);
      if (statSync(dest, { throwIfNoEntry: false })?.size === stored) {
        unlinkSync(tmp);
        this.guard?.refund(stored);
      } else {
        renameSync(tmp, dest);
        this.created.add(hash);
      }
      tmp = undefined;
      return sparse ? { hash, size, sparse, head } : { hash, size, head };
    } finally {
      if (file.fd === undefined) closeSync(fd);
      if (out !== undefined) closeSync(out);
      if (tmp !== undefined) unlinkSync(tmp);
    }
  }

  /**
   * Small blobs are written with synchronous calls: on a page-cache write each syscall takes a
   * few microseconds, less than the promise and thread-pool round trip of the async API, which
   * made small-file imports CPU-bound on two cores.
   */
  private commitSync(hash: string, chunks: Buffer[], size: number, scratch: string): void {
    const dest = this.localPath(hash);
    if (statSync(dest, { throwIfNoEntry: false })?.size === size) return;
    this.guard?.charge(size);
    const tmp = join(scratch, String(++this.counter));
    const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444);
    try {
      for (const chunk of chunks) {
        for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
      }
    } finally {
      closeSync(fd);
    }
    if (statSync(dest, { throwIfNoEntry: false })?.size === size) {
      unlinkSync(tmp); // another writer got there first
      this.guard?.refund(size);
      return;
    }
    renameSync(tmp, dest);
    this.created.add(hash);
  }

  async put(content: Readable | AsyncIterable<Buffer>): Promise<StoredBlob> {
    const hasher = createHash('sha256');
    const head: Buffer[] = [];
    let size = 0;
    let fh: FileHandle | undefined;
    let tmp: string | undefined;
    try {
      for await (const chunk of content as AsyncIterable<Buffer>) {
        hasher.update(chunk);
        size += chunk.length;
        if (!fh) {
          head.push(chunk);
          if (size > MEMORY_LIMIT) {
            this.guard?.charge(size);
            tmp = await this.tmpName();
            fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444);
            await writeAll(fh, head);
            head.length = 0;
          }
        } else {
          this.guard?.charge(chunk.length);
          await fh.write(chunk);
        }
      }
      const hash = hasher.digest('hex');
      if (!fh) {
        this.commitSync(hash, head, size, await this.scratchDir());
        return { hash, size };
      }
      await fh.close();
      fh = undefined;
      await this.place(tmp!, hash, size);
      tmp = undefined;
      return { hash, size };
    } finally {
      if (fh) await fh.close().catch(() => {});
      if (tmp) await unlink(tmp).catch(() => {});
    }
  }

  private async tmpName(): Promise<string> {
    return join(await this.scratchDir(), String(++this.counter));
  }

  private async place(tmp: string, hash: string, size: number): Promise<void> {
    const dest = this.localPath(hash);
    if ((await this.size(hash)) === size) {
      // another writer got there first
      await unlink(tmp);
      this.guard?.refund(size);
      return;
    }
    await rename(tmp, dest);
    this.created.add(hash);
  }

  /**
   * One syncfs of the filesystem holding the objects: every blob written so far is durable. It
   * runs even when this import wrote nothing new: the blobs it found may come from a concurrent
   * import that has not synced yet, and this image must not reach the catalog before they are
   * durable. A syncfs with nothing dirty costs next to nothing.
   */
  async flush(): Promise<void> {
    await runTool('sync', ['--file-system', this.objectsDir]);
  }

  /** The whole blob, verified against its hash (E_CORRUPT_BLOB, E_MISSING_BLOB). */
  async read(hash: string): Promise<Buffer> {
    let content: Buffer;
    try {
      content = await readFile(this.localPath(hash));
    } catch (e) {
      throw await this.readFailed(hash, e);
    }
    return verifyBuffer(hash, content, (actual) => this.corrupt(hash, actual));
  }

  /** Not verified (a range cannot be): for analysers peeking into blobs, never for output. */
  async readRange(hash: string, offset: number, length: number): Promise<Buffer> {
    const fh = await open(this.localPath(hash), 'r');
    try {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  /**
   * The blob as a stream, verified as it flows: a blob that does not hash to its name ends in an
   * E_CORRUPT_BLOB error before its last chunk. Opened lazily on the first read, so a stream that
   * is never read never fails.
   */
  createReadStream(hash: string, expectedSize?: number): Readable {
    const verified = verifyChunks(hash, this.chunks(hash, expectedSize), (actual) => this.corrupt(hash, actual));
    return Readable.from(verified, { objectMode: false, highWaterMark: STREAM_CHUNK });
  }

  /** The stored bytes of a blob, unverified, in chunks of up to 1 MiB; none when its size is wrong. */
  private async *chunks(hash: string, expectedSize: number | undefined): AsyncGenerator<Buffer> {
    let fh: FileHandle;
    try {
      fh = await open(this.localPath(hash), 'r');
    } catch (e) {
      throw await this.readFailed(hash, e);
    }
    try {
      const { size } = await fh.stat();
      if (expectedSize !== undefined && size !== expectedSize) throw await this.corrupt(hash, { size, expectedSize });
      // Up to the size found at open: the hash then vouches for exactly what was passed on.
      for (let position = 0; position < size; ) {
        const buf = Buffer.allocUnsafe(Math.min(STREAM_CHUNK, size - position));
        const { bytesRead } = await fh.read(buf, 0, buf.length, position);
        if (bytesRead === 0) break; // shrunk meanwhile: the hash will not match
        position += bytesRead;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }

  private async corrupt(hash: string, actual: CorruptBlobError['actual']): Promise<CorruptBlobError> {
    return new CorruptBlobError(hash, actual, await this.usersOf(hash).catch(() => []));
  }

  private async readFailed(hash: string, e: unknown): Promise<unknown> {
    if (errnoCode(e) !== 'ENOENT') return e;
    return new MissingBlobError(hash, await this.usersOf(hash).catch(() => []), e);
  }

  async *list(): AsyncIterable<StoredBlob> {
    const base = join(this.objectsDir, 'sha256');
    for (const fan of (await readdir(base)).sort()) {
      let names: string[];
      try {
        names = await readdir(join(base, fan));
      } catch {
        continue;
      }
      for (const name of names) {
        const hash = fan + name;
        if (!HEX64.test(hash)) continue;
        const st = await stat(join(base, fan, name)).catch(() => undefined);
        if (st) yield { hash, size: st.size };
      }
    }
  }

  async remove(hash: string): Promise<void> {
    await unlink(this.localPath(hash)).catch((e: unknown) => {
      if (errnoCode(e) !== 'ENOENT') throw e;
    });
  }
}

async function writeAll(fh: FileHandle, chunks: Buffer[]): Promise<void> {
  if (chunks.length === 1) await fh.write(chunks[0]!);
  else if (chunks.length > 1) await fh.writev(chunks);
}
