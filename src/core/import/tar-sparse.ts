import type { ContentChunk } from '../model/sparse.js';

/**
 * GNU sparse members of tar archives, in every format GNU tar wrote: the old GNU header ('S',
 * what `tar -S` writes by default), and pax versions 0.0 (GNU.sparse.offset/numbytes records),
 * 0.1 (GNU.sparse.map) and 1.0 (the map at the start of the member's data). The map lists the
 * regions of data; everything else of the file is a hole. Every number is checked against the
 * data the archive holds, so a map can neither make a reader loop nor claim data it lacks.
 */

/** At most this many regions in one map (16 bytes each in memory). */
export const MAX_SPARSE_REGIONS = 1 << 20;
/** Largest 1.0 map text read (a map of MAX_SPARSE_REGIONS regions fits). */
export const MAX_MAP_TEXT = 48 << 20;

export interface SparseMap {
  /** The file's apparent size. */
  realSize: number;
  /** offset, length, offset, length…: the regions of data in file order. */
  regions: number[];
}

/** What the headers say about a sparse member before its data is read. */
export interface SparseHeader {
  realSize: number;
  /** Known from the headers (old GNU, pax 0.0 and 0.1); undefined for 1.0 (the map starts the data). */
  regions?: number[];
}

/** A problem with the map; the caller wraps it into its error with the archive and offset. */
export class SparseMapError extends Error {}

function safe(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new SparseMapError(`${what} ${v} is not a valid size`);
  return v;
}

/** Sparse information from pax records, or undefined when the member is not sparse. */
export function paxSparse(records: Map<string, Buffer>, pairs: number[], decimal: (v: Buffer, what: string) => number): SparseHeader | undefined {
  const major = records.get('GNU.sparse.major');
  if (major !== undefined) {
    const minor = records.get('GNU.sparse.minor');
    if (major.toString('latin1') !== '1' || minor?.toString('latin1') !== '0') {
      throw new SparseMapError(`GNU sparse format ${major.toString('latin1')}.${minor?.toString('latin1') ?? '?'} is unknown`);
    }
    const real = records.get('GNU.sparse.realsize');
    if (real === undefined) throw new SparseMapError('GNU sparse 1.0 member without GNU.sparse.realsize');
    return { realSize: decimal(real, 'GNU.sparse.realsize') };
  }
  const size = records.get('GNU.sparse.size');
  const map = records.get('GNU.sparse.map');
  if (size === undefined) {
    if (map !== undefined || pairs.length > 0 || records.has('GNU.sparse.numblocks')) throw new SparseMapError('GNU sparse map without GNU.sparse.size');
    return undefined;
  }
  const realSize = decimal(size, 'GNU.sparse.size');
  let regions: number[];
  if (map !== undefined) {
    const text = map.toString('latin1');
    regions = text === '' ? [] : text.split(',').map((n) => (/^\d+$/.test(n) ? Number(n) : NaN));
  } else regions = pairs;
  const numblocks = records.get('GNU.sparse.numblocks');
  if (numblocks !== undefined && decimal(numblocks, 'GNU.sparse.numblocks') * 2 !== regions.length) {
    throw new SparseMapError(`GNU.sparse.numblocks says ${numblocks.toString('latin1')} regions, the map has ${regions.length / 2}`);
  }
  return { realSize, regions };
}

/**
 * Parses the map text that starts a 1.0 member's data ("count\n" then "offset\nlength\n" per
 * region), fed block by block (sync or async callers alike).
 */
export class MapTextParser {
  private readonly numbers: number[] = [];
  private want = -1;
  private digits = '';
  /** Bytes (whole blocks) the map took so far. */
  bytes = 0;

  constructor(private readonly dataSize: number) {}

  /** Feeds the next block; true once the map is complete. */
  push(block: Buffer): boolean {
    if (this.bytes + block.length > this.dataSize || this.bytes >= MAX_MAP_TEXT) throw new SparseMapError("the sparse map runs past its member's data");
    this.bytes += block.length;
    for (const c of block) {
      if (this.done()) break;
      if (c === 0x0a) {
        if (this.digits === '') throw new SparseMapError('empty number in the sparse map');
        this.numbers.push(Number(this.digits));
        this.digits = '';
        if (this.numbers.length === 1) {
          this.want = safe(this.numbers[0]!, 'region count');
          if (this.want > MAX_SPARSE_REGIONS) throw new SparseMapError(`the sparse map has ${this.want} regions, more than ${MAX_SPARSE_REGIONS}`);
        }
      } else if (c >= 0x30 && c <= 0x39 && this.digits.length < 20) this.digits += String.fromCharCode(c);
      else throw new SparseMapError('the sparse map is not a list of decimal numbers');
    }
    return this.done();
  }

  private done(): boolean {
    return this.want >= 0 && this.numbers.length === 1 + 2 * this.want;
  }

  get regions(): number[] {
    return this.numbers.slice(1);
  }
}

/**
 * The regions of an old GNU sparse header ('S'): four in the header, 21 in each extension block
 * that follows while the "isextended" flag is set. `number` parses one 12-byte field.
 */
export class OldGnuSparseParser {
  readonly regions: number[] = [];
  readonly realSize: number;
  /** Another extension block follows. */
  more: boolean;
  extensionBlocks = 0;

  constructor(header: Buffer, private readonly number: (b: Buffer, off: number, len: number, what: string) => number) {
    this.take(header, 386, 4);
    this.realSize = number(header, 483, 12, 'sparse real size');
    this.more = header[482] !== 0;
  }

  push(block: Buffer): void {
    if (this.regions.length / 2 > MAX_SPARSE_REGIONS) throw new SparseMapError(`the sparse map has more than ${MAX_SPARSE_REGIONS} regions`);
    this.extensionBlocks++;
    this.take(block, 0, 21);
    this.more = block[504] !== 0;
  }

  private take(b: Buffer, at: number, count: number): void {
    for (let i = 0; i < count; i++) {
      const off = at + i * 24;
      if (b[off] === 0 && b[off + 12] === 0) continue; // unused slot
      this.regions.push(this.number(b, off, 12, 'sparse offset'), this.number(b, off + 12, 12, 'sparse length'));
    }
  }
}

/**
 * Checks a map against the file's size and the data the archive holds for it: regions in order,
 * not overlapping, inside the file, their lengths adding up to the data exactly.
 */
export function checkSparseMap(map: SparseMap, dataBytes: number): void {
  safe(map.realSize, 'real size');
  const { regions } = map;
  if (regions.length % 2 !== 0) throw new SparseMapError('the sparse map has an odd count of numbers');
  if (regions.length / 2 > MAX_SPARSE_REGIONS) throw new SparseMapError(`the sparse map has more than ${MAX_SPARSE_REGIONS} regions`);
  let end = 0;
  let total = 0;
  for (let i = 0; i < regions.length; i += 2) {
    const off = safe(regions[i]!, 'region offset');
    const len = safe(regions[i + 1]!, 'region length');
    if (off < end) throw new SparseMapError(`region ${i / 2} at ${off} overlaps or precedes the one before`);
    if (off + len > map.realSize) throw new SparseMapError(`region ${i / 2} [${off}, ${len}] ends past the file's ${map.realSize} bytes`);
    if (len > 0) end = off + len;
    total += len;
  }
  if (total !== dataBytes) throw new SparseMapError(`the sparse map lists ${total} bytes of data but the member holds ${dataBytes}`);
}

/**
 * A sparse member's content: holes between the regions, data read in order by `read` (which must
 * return exactly the bytes asked for, at most `max` at a time, or fewer only at the end of input).
 */
export async function* sparseChunks(map: SparseMap, read: (n: number) => Promise<Buffer>, max: number): AsyncGenerator<ContentChunk> {
  let pos = 0;
  const { regions } = map;
  for (let i = 0; i < regions.length; i += 2) {
    const off = regions[i]!;
    let left = regions[i + 1]!;
    if (left === 0) continue;
    if (off > pos) yield { hole: off - pos };
    pos = off + left;
    while (left > 0) {
      const b = await read(Math.min(left, max));
      left -= b.length;
      yield b;
    }
  }
  if (map.realSize > pos) yield { hole: map.realSize - pos };
}
