import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { mkdir, open, readdir, rm, stat, unlink, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { errnoCode } from '../../lib/errors.js';
import { runTool } from '../../lib/exec.js';
import type { LocalContent, StoredBlob } from '../import/source.js';
import type { ListedStatus } from '../../lib/listed-file.js';
import { BlobWorkerPool, type StoredResult, type WriteJob } from './blob-pool.js';
import { BlobWriter, blobPath, READ_BUFFER, type WrittenLocal } from './blob-writer.js';
import type { SpaceGuard } from './space-guard.js';
import type { BlobStore, ListedBlob, LocalBlob, PutLocalOptions } from './types.js';
import { CorruptBlobError, MissingBlobError, verifyBuffer, verifyChunks, type BlobUsersLookup } from './verify.js';

const HEX64 = /^[0-9a-f]{64}$/;
/** Content up to this size is hashed in memory first, so a blob already stored costs no write. */
const MEMORY_LIMIT = 1 << 20;
/** Read streams read blobs in chunks of up to this size. */
const STREAM_CHUNK = 1 << 20;
/** What a writer thread needs of `inspect`: the magic number it wants, and the inspector to run there (else the content comes back). */
function inspection(pool: BlobWorkerPool, options: PutLocalOptions<unknown>): Pick<WriteJob, 'magic' | 'inspect'> {
  if (!options.inspect) return {};
  const magic = options.inspectMagic?.toString('hex') ?? '';
  return options.inspectModule ? { magic, inspect: pool.inspector(options.inspectModule) } : { magic };
}

/**
 * Local files served in the calling thread before writer threads start, by count or by bytes
 * (small imports never start them; a tree whose first files are big, like a kernel in /boot,
 * does not read them all on one thread).
 */
const THREADS_AFTER = 256;
const THREADS_AFTER_BYTES = 8 << 20;
/** Blob bytes written between two background syncs (see wrote()). */
const WRITEBACK_EVERY = 128 << 20;

/**
 * Blobs as files: objects/sha256/ab/cdef… (two hex digits of fan-out). A blob is written to a
 * temporary file in the writer's own scratch directory, then linked into place (BlobWriter); a
 * reader therefore sees either nothing or the whole blob. Killed writers leave only their
 * scratch directory, which gc removes.
 *
 * Local files (putLocal) are stored by writer threads once an import has more than a few
 * hundred of them or a few MiB (BlobWorkerPool): reading, hashing and writing run on every core while the
 * caller walks its source.
 *
 * Durability is batched, as ostree does it: instead of one fsync per blob (which made imports
 * 40% slower here), flush() syncs the whole filesystem once, and the catalog commit that makes an
 * image visible comes only after it. After a power loss a blob linked but not yet synced can be
 * short or empty; a write therefore trusts an existing blob only when its size matches, and
 * replaces it otherwise.
 */
export class FsBlobStore implements BlobStore {
  /** Blobs this instance added to the store (not those it found already there). */
  readonly created = new Set<string>();
  /** Charged before every byte written, while a write (an import) sets it: free space and --max-size. */
  guard: SpaceGuard | undefined;
  private tmpDir: Promise<string> | undefined;
  private writer: BlobWriter | undefined;
  private pool: BlobWorkerPool | undefined;
  private localCalls = 0;
  private scratch: string | undefined;
  private localBytes = 0;
  private noPool = false;
  private unsynced = 0;
  private writeback: Promise<void> | undefined;
  private readBuffer: Buffer | undefined;

  constructor(
    readonly objectsDir: string,
    private readonly tmpRoot: string,
    /** Names the images and paths using a blob in read errors (the repository passes its catalog's). */
    private readonly usersOf: BlobUsersLookup = async () => [],
  ) {}

  static async create(objectsDir: string, tmpRoot: string): Promise<void> {
    const base = join(objectsDir, 'sha256');
    await mkdir(base, { recursive: true });
    await Promise.all(
      Array.from({ length: 256 }, (_, i) => mkdir(join(base, i.toString(16).padStart(2, '0')), { recursive: true })),
    );
    await mkdir(tmpRoot, { recursive: true });
  }

  localPath(hash: string): string {
    return blobPath(this.objectsDir, hash);
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

  /** Waits for the writer threads' outstanding work (so `created` is complete), stops them and removes the scratch directory. */
  async disposeScratch(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    this.writer = undefined;
    this.scratch = undefined;
    this.localCalls = 0;
    this.localBytes = 0;
    this.noPool = false;
    await pool?.close();
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

  private async localWriter(): Promise<BlobWriter> {
    const scratch = await this.scratchDir();
    this.writer ??= new BlobWriter(this.objectsDir, scratch, () => this.guard);
    this.scratch = scratch;
    return this.writer;
  }

  async putBuffer(content: Buffer): Promise<StoredBlob> {
    const hash = createHash('sha256').update(content).digest('hex');
    if ((await this.localWriter()).putChunks(hash, [content], content.length)) this.adopted(hash, content.length);
    return { hash, size: content.length };
  }

  /**
   * Stores a local file (or a byte range of one) in a single pass (BlobWriter.putLocal): on a
   * writer thread once the import is big enough (writerPool), else in this thread. A descriptor
   * must stay open until the returned promise settles.
   */
  async putLocal<T = never>(file: LocalContent, options: PutLocalOptions<T> = {}): Promise<LocalBlob<T>> {
    this.localCalls++;
    const writer = this.writer ?? (await this.localWriter());
    const pool = this.writerPool();
    if (pool) {
      const path = file.path === undefined || typeof file.path === 'string' ? file.path && Buffer.from(file.path).toString('latin1') : file.path.toString('latin1');
      const r = await pool.put({ fd: file.fd, path, offset: file.offset, length: file.length, ...inspection(pool, options) });
      return this.adopt(r.stored!, options);
    }
    return (await this.inThisThread(writer, options, (buf) => writer.putLocal(file, buf)))!;
  }

  /**
   * Lists, opens and stores the file `name` of the directory open as `dirFd` (BlobWriter.putListed,
   * lib/listed-file.ts), where putLocal would run it. The directory must stay open until the
   * returned promise settles; a `holesFd` in the result belongs to the caller.
   */
  async putListed<T = never>(dirFd: number, name: Buffer, label: string, options: PutLocalOptions<T> = {}): Promise<ListedBlob<T>> {
    this.localCalls++;
    const writer = this.writer ?? (await this.localWriter());
    const pool = this.writerPool();
    if (pool) {
      const r = await pool.put({ dir: dirFd, name: name.toString('latin1'), label, ...inspection(pool, options) });
      const out: ListedBlob<T> = { status: r.status! };
      if (r.holesFd !== undefined) out.holesFd = r.holesFd;
      if (r.stored) out.stored = await this.adopt(r.stored, options);
      return out;
    }
    let status: ListedStatus | undefined;
    let holesFd: number | undefined;
    const stored = await this.inThisThread(writer, options, (buf) => {
      const w = writer.putListed(dirFd, name, label, buf);
      status = w.status;
      holesFd = w.holesFd;
      return w.stored;
    });
    const out: ListedBlob<T> = { status: status! };
    if (holesFd !== undefined) out.holesFd = holesFd;
    if (stored) out.stored = stored;
    return out;
  }

  /**
   * The writer threads, decided as each call runs (with no wait between that and its write):
   * started once more than THREADS_AFTER local files were asked for (a walk asks well ahead of
   * the writes) or THREADS_AFTER_BYTES were stored in this thread; none for small imports, or
   * without threads.
   */
  private writerPool(): BlobWorkerPool | undefined {
    if (this.pool || this.noPool || (this.localCalls <= THREADS_AFTER && this.localBytes < THREADS_AFTER_BYTES)) return this.pool;
    const count = BlobWorkerPool.size();
    if (count > 0) this.pool = new BlobWorkerPool(this.objectsDir, this.scratch!, count, () => this.guard);
    else this.noPool = true;
    return this.pool;
  }

  private adopted(hash: string, size: number): void {
    this.created.add(hash);
    this.wrote(size);
  }

  /** A writer thread's result here: its new blob recorded, ELF-like content shown to `inspect`. */
  private async adopt<T>(r: StoredResult, options: PutLocalOptions<T>): Promise<LocalBlob<T>> {
    if (r.created) this.adopted(r.hash, r.size);
    const result: LocalBlob<T> = { hash: r.hash, size: r.size, head: Buffer.from(r.head, 'hex') };
    if (r.sparse) result.sparse = r.sparse;
    if (r.inspected !== undefined) result.inspected = r.inspected as T;
    else if (r.content && options.inspect) result.inspected = await options.inspect(Buffer.from(r.content.buffer, r.content.byteOffset, r.content.byteLength));
    return result;
  }

  /** Runs a write in this thread with its read buffer; `inspect` sees the content while the buffer is still lent. */
  private async inThisThread<T>(writer: BlobWriter, options: PutLocalOptions<T>, write: (buf: Buffer) => WrittenLocal | undefined): Promise<LocalBlob<T> | undefined> {
    // The buffer is lent out while `inspect` runs; a write meanwhile gets a buffer of its own.
    const buf = this.readBuffer ?? Buffer.allocUnsafe(READ_BUFFER);
    this.readBuffer = undefined;
    try {
      const w = write(buf);
      if (!w) return undefined;
      this.localBytes += w.size;
      const { content, created, ...result } = w;
      if (created) this.adopted(result.hash, result.size);
      const magic = options.inspectMagic;
      if (!content || !options.inspect || (magic && !content.subarray(0, magic.length).equals(magic))) return result;
      return { ...result, inspected: await options.inspect(content) };
    } finally {
      this.readBuffer = buf;
    }
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
      const writer = await this.localWriter();
      if (!fh) {
        if (writer.putChunks(hash, head, size)) this.adopted(hash, size);
        return { hash, size };
      }
      await fh.close();
      fh = undefined;
      const written = tmp!;
      tmp = undefined;
      if (writer.publish(written, hash, size)) this.adopted(hash, size);
      else this.guard?.refund(size); // another writer got there first
      return { hash, size };
    } finally {
      if (fh) await fh.close().catch(() => {});
      if (tmp) await unlink(tmp).catch(() => {});
    }
  }

  private async tmpName(): Promise<string> {
    return (await this.localWriter()).tmpName();
  }

  /**
   * One syncfs of the filesystem holding the objects: every blob written so far is durable. It
   * runs even when this import wrote nothing new: the blobs it found may come from a concurrent
   * import that has not synced yet, and this image must not reach the catalog before they are
   * durable. A syncfs with nothing dirty costs next to nothing.
   */
  async flush(): Promise<void> {
    await this.writeback;
    await runTool('sync', ['--file-system', this.objectsDir]);
  }

  /**
   * Blob bytes written since the last sync: every WRITEBACK_EVERY of them a sync starts in the
   * background, so the disk writes while the import still reads and hashes, and the flush
   * before the catalog commit finds little left to do. Only ever makes data durable sooner.
   */
  private wrote(bytes: number): void {
    this.unsynced += bytes;
    if (this.unsynced < WRITEBACK_EVERY || this.writeback) return;
    this.unsynced = 0;
    this.writeback = runTool('sync', ['--file-system', this.objectsDir])
      .then(() => {})
      .catch(() => {}) // the flush that counts is flush()'s
      .finally(() => (this.writeback = undefined));
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
