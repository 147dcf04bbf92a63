import { IntegrityError } from '../../lib/errors.js';

/**
 * Sparse files. A regular file's content is its apparent `size` bytes; runs of zeros in it may be
 * holes. An entry whose content has holes lists its data extents in `Entry.sparse`, and its blob
 * holds only the bytes of those extents, one after the other. The map is part of the canonical
 * manifest, so the image id covers it.
 *
 * Where the holes are is decided by the content alone, never by the source: a hole is a run of
 * zero bytes made of whole 4 KiB blocks (aligned to 4 KiB in the file; the last block may be
 * short) that is at least MIN_HOLE long. So the same content gives the same entry whether it came
 * from a sparse file, a tar with a GNU sparse map, an ext4 image's unallocated blocks or a
 * stream of zeros, and the image id stays a function of the content. Real holes are merely
 * cheaper to read: they are never read at all.
 */

/** [offset, length]: a run of data bytes of a sparse file. */
export type DataExtent = [offset: number, length: number];

/** Holes are made of aligned blocks of this size. */
export const HOLE_BLOCK = 4096;
/** Runs of zero blocks shorter than this stay data (small runs are not worth a map entry). */
export const MIN_HOLE = 64 * 1024;
/**
 * At most this many data extents per file; once reached, later zero runs stay data. Keeps the
 * map (held in memory and in the manifest) bounded for any input.
 */
export const MAX_EXTENTS = 65_536;

/** A run of `hole` zero bytes a reader knows of without reading it (a hole of its source). */
export interface Hole {
  hole: number;
}

/** File content as readers produce it: data chunks, and holes they know of. */
export type ContentChunk = Buffer | Hole;

export const isHole = (c: ContentChunk): c is Hole => !Buffer.isBuffer(c);

const ZERO = Buffer.alloc(MIN_HOLE);

function isZero(b: Buffer, start: number, end: number): boolean {
  // Most data blocks fail at their first bytes; compare() is a native memcmp.
  return b[start] === 0 && b[end - 1] === 0 && b.compare(ZERO, 0, end - start, start, end) === 0;
}

/** Pushes `n` zero bytes as slices of one shared zero buffer. */
function pushZeros(out: Buffer[], n: number): void {
  while (n > 0) {
    const k = Math.min(n, ZERO.length);
    out.push(ZERO.subarray(0, k));
    n -= k;
  }
}

/**
 * Turns content (data chunks and known holes, in order) into the canonical sparse form: the data
 * bytes to store and, when there is a hole, the data extents. Synchronous and pure: the caller
 * reads, hashes and writes. Memory is bounded: at most one partial block is copied, zero runs are
 * counted (never held) and a known hole of any length costs O(1).
 *
 * Each call appends the bytes to store to `out` (slices of the given chunks or of a shared zero
 * buffer: the caller must consume them before it reuses the chunk's memory).
 */
export class SparsePacker {
  /** Apparent bytes consumed so far, up to the block being filled (always a block boundary until finish). */
  private offset = 0;
  /** Bytes handed out to store so far. */
  stored = 0;
  private readonly carry = Buffer.alloc(HOLE_BLOCK);
  private carryLen = 0;
  /** Start of the current run of zero blocks, or -1. Its bytes have not been handed out. */
  private runStart = -1;
  /** Start of the current data extent, or -1. */
  private dataStart = -1;
  private readonly extents: DataExtent[] = [];
  private holes = 0;

  /** Data bytes at the current offset. */
  data(chunk: Buffer, out: Buffer[]): void {
    let p = 0;
    const n = chunk.length;
    if (this.carryLen > 0) {
      const take = Math.min(HOLE_BLOCK - this.carryLen, n);
      chunk.copy(this.carry, this.carryLen, 0, take);
      this.carryLen += take;
      p = take;
      if (this.carryLen < HOLE_BLOCK) return;
      this.carryLen = 0;
      if (isZero(this.carry, 0, HOLE_BLOCK)) this.zeroBlocks(HOLE_BLOCK);
      else this.dataBytes(Buffer.from(this.carry), out);
    }
    // Whole blocks from p on are aligned: coalesce neighbouring data blocks into one slice.
    let from = p;
    while (p + HOLE_BLOCK <= n) {
      if (isZero(chunk, p, p + HOLE_BLOCK)) {
        if (from < p) this.dataBytes(chunk.subarray(from, p), out);
        this.zeroBlocks(HOLE_BLOCK);
        from = p + HOLE_BLOCK;
      }
      p += HOLE_BLOCK;
    }
    if (from < p) this.dataBytes(chunk.subarray(from, p), out);
    if (p < n) {
      chunk.copy(this.carry, 0, p, n);
      this.carryLen = n - p;
    }
  }

  /** `length` zero bytes the source knows to be a hole. */
  hole(length: number, out: Buffer[]): void {
    if (length <= 0) return;
    if (this.carryLen > 0) {
      const take = Math.min(HOLE_BLOCK - this.carryLen, length);
      this.data(ZERO.subarray(0, take), out);
      length -= take;
    }
    const whole = length - (length % HOLE_BLOCK);
    if (whole > 0) this.zeroBlocks(whole);
    if (length > whole) this.data(ZERO.subarray(0, length - whole), out);
  }

  /** Ends the content; the data extents when it has a hole, else undefined (a dense file). */
  finish(out: Buffer[]): DataExtent[] | undefined {
    if (this.carryLen > 0) {
      const last = this.carry.subarray(0, this.carryLen);
      this.carryLen = 0;
      if (isZero(last, 0, last.length)) this.zeroBlocks(last.length);
      else this.dataBytes(Buffer.from(last), out);
    }
    this.closeRun(out);
    if (this.dataStart >= 0) this.extents.push([this.dataStart, this.offset - this.dataStart]);
    this.dataStart = -1;
    return this.holes > 0 ? this.extents : undefined;
  }

  private zeroBlocks(n: number): void {
    if (this.runStart < 0) this.runStart = this.offset;
    this.offset += n;
  }

  private dataBytes(b: Buffer, out: Buffer[]): void {
    this.closeRun(out);
    if (this.dataStart < 0) this.dataStart = this.offset;
    out.push(b);
    this.stored += b.length;
    this.offset += b.length;
  }

  /** Decides the current zero run: a hole when long enough (and the map has room), else data. */
  private closeRun(out: Buffer[]): void {
    if (this.runStart < 0) return;
    const start = this.runStart;
    const len = this.offset - start;
    this.runStart = -1;
    if (len >= MIN_HOLE && this.extents.length < MAX_EXTENTS - 1) {
      if (this.dataStart >= 0) this.extents.push([this.dataStart, start - this.dataStart]);
      this.dataStart = -1;
      this.holes++;
      return;
    }
    if (this.dataStart < 0) this.dataStart = start;
    pushZeros(out, len);
    this.stored += len;
  }
}

/** Bytes of data a map holds (the blob's size). */
export function dataLength(extents: readonly DataExtent[]): number {
  let n = 0;
  for (const [, len] of extents) n += len;
  return n;
}

/**
 * A map is well formed for a file of `size` bytes: extents in order, not overlapping, not empty,
 * inside the file. Returns what is wrong, or undefined.
 */
export function checkExtents(extents: readonly DataExtent[], size: number): string | undefined {
  let end = 0;
  for (const [i, e] of extents.entries()) {
    if (!Array.isArray(e) || e.length !== 2) return `extent ${i} is not [offset, length]`;
    const [off, len] = e;
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len <= 0) return `extent ${i} [${off}, ${len}] is invalid`;
    if (off < end) return `extent ${i} at ${off} overlaps or is out of order`;
    if (off + len > size) return `extent ${i} [${off}, ${len}] ends past the file's ${size} bytes`;
    end = off + len;
  }
  return undefined;
}

/**
 * The whole content of a sparse file from its stored data: zeros in the holes. For consumers that
 * need every byte (a format without holes); the data stream must hold exactly the extents' bytes.
 */
export async function* expandSparse(extents: readonly DataExtent[], size: number, data: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = data[Symbol.asyncIterator]();
  let chunk: Buffer = Buffer.alloc(0);
  let pos = 0;
  const zeros = function* (n: number): Generator<Buffer> {
    while (n > 0) {
      const k = Math.min(n, ZERO.length);
      yield ZERO.subarray(0, k);
      n -= k;
    }
  };
  for (const [off, len] of extents) {
    yield* zeros(off - pos);
    let left = len;
    while (left > 0) {
      if (chunk.length === 0) {
        const r = await it.next();
        if (r.done) throw new IntegrityError(`the stored data of a sparse file ends before its map does (${dataLength(extents)} bytes expected)`);
        chunk = r.value;
      }
      const k = Math.min(left, chunk.length);
      yield chunk.subarray(0, k);
      chunk = chunk.subarray(k);
      left -= k;
    }
    pos = off + len;
  }
  yield* zeros(size - pos);
}
