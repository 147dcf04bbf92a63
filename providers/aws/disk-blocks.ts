import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { InputError } from '../../src/lib/errors.js';
import { runTool } from '../../src/lib/exec.js';

/** The EBS direct APIs move a volume in blocks of 512 KiB. */
export const EBS_BLOCK_SIZE = 512 * 1024;
export const GIB = 1024 ** 3;
export const BLOCKS_PER_GIB = GIB / EBS_BLOCK_SIZE;
const ZERO_BLOCK = Buffer.alloc(EBS_BLOCK_SIZE);

/** A run of bytes of a file that holds data (not a hole). */
export interface Extent {
  start: number;
  length: number;
}

/**
 * Where a raw disk file holds data, from `qemu-img map` (which asks the filesystem with
 * SEEK_DATA/SEEK_HOLE): holes are never read, so an 8 GiB disk with 30 MiB of data costs 30 MiB
 * of reading. Adjacent extents are merged.
 */
export async function dataExtents(path: string, signal?: AbortSignal): Promise<Extent[]> {
  const { stdout } = await runTool('qemu-img', ['map', '--output=json', '-f', 'raw', path], signal ? { cancelSignal: signal } : {});
  const rows = JSON.parse(stdout) as { start: number; length: number; data: boolean; zero: boolean }[];
  const out: Extent[] = [];
  for (const r of rows) {
    if (!r.data || r.zero || r.length <= 0) continue;
    const last = out.at(-1);
    if (last && last.start + last.length === r.start) last.length += r.length;
    else out.push({ start: r.start, length: r.length });
  }
  return out;
}

/** The 512 KiB block indexes that overlap the extents, ascending, each once. */
export function blocksOf(extents: readonly Extent[]): number[] {
  const out: number[] = [];
  for (const e of extents) {
    const first = Math.floor(e.start / EBS_BLOCK_SIZE);
    const last = Math.floor((e.start + e.length - 1) / EBS_BLOCK_SIZE);
    for (let i = Math.max(first, (out.at(-1) ?? -1) + 1); i <= last; i++) out.push(i);
  }
  return out;
}

/** Index → sha256 (32 bytes) of every block of a disk that is not all zeros. */
export type BlockMap = Map<number, Buffer>;

export const isZeroBlock = (data: Buffer) => data.equals(ZERO_BLOCK);
export const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();

/** One block of a disk, read: its bytes (zero-padded past the end of the file) and sha256. */
export interface DiskBlock {
  index: number;
  data: Buffer;
  sha256: Buffer;
}

/** Reads block `index` of an open disk (zero-padded at the end of the file). */
export async function readBlock(fh: FileHandle, index: number, size: number): Promise<Buffer> {
  const data = Buffer.alloc(EBS_BLOCK_SIZE);
  const start = index * EBS_BLOCK_SIZE;
  const want = Math.min(EBS_BLOCK_SIZE, size - start);
  let got = 0;
  while (got < want) {
    const { bytesRead } = await fh.read(data, got, want - got, start + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  if (got < want) throw new InputError('E_SOURCE_CHANGED', `the disk shrank while it was read (block ${index})`, { hint: 'build the disk again and ship it without changing it meanwhile' });
  return data;
}

/**
 * The blocks of a raw disk that hold data, hashed: only the blocks under data extents are read,
 * and of those only the ones that are not all zeros are kept (mke2fs and sfdisk write zeros too).
 */
export async function mapDisk(path: string, signal?: AbortSignal): Promise<{ size: number; blocks: BlockMap }> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const blocks: BlockMap = new Map();
    for (const index of blocksOf(await dataExtents(path, signal))) {
      signal?.throwIfAborted();
      const data = await readBlock(fh, index, size);
      if (!isZeroBlock(data)) blocks.set(index, sha256(data));
    }
    return { size, blocks };
  } finally {
    await fh.close();
  }
}

/**
 * A block map in a compact JSON form for the journal: the indexes as ascending deltas and the
 * digests concatenated in base64 (36 bytes a block, about 75 KiB of JSON per GiB of data).
 */
export interface EncodedBlockMap {
  deltas: number[];
  sha256: string;
}

export function encodeBlockMap(map: BlockMap): EncodedBlockMap {
  const indexes = [...map.keys()].sort((a, b) => a - b);
  return { deltas: indexes.map((i, n) => (n === 0 ? i : i - indexes[n - 1]!)), sha256: Buffer.concat(indexes.map((i) => map.get(i)!)).toString('base64') };
}

export function decodeBlockMap(encoded: EncodedBlockMap): BlockMap {
  const digests = Buffer.from(encoded.sha256, 'base64');
  if (digests.length !== encoded.deltas.length * 32) throw new InputError('E_BAD_JOURNAL', 'a journalled block map is damaged (digest count does not match its indexes)');
  const map: BlockMap = new Map();
  let index = 0;
  encoded.deltas.forEach((d, n) => {
    index = n === 0 ? d : index + d;
    map.set(index, digests.subarray(n * 32, n * 32 + 32));
  });
  return map;
}

/** Whole GiB an EBS volume needs for `bytes` (at least 1). */
export const volumeGiB = (bytes: number) => Math.max(1, Math.ceil(bytes / GIB));
