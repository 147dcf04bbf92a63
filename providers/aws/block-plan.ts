import { createHash } from 'node:crypto';
import { BLOCKS_PER_GIB, volumeGiB, type BlockMap } from './disk-blocks.js';

/** The snapshot a new one builds on: its volume and the block map aim recorded when it uploaded it. */
export interface ParentSnapshot {
  snapshotId: string;
  volumeGiB: number;
  blocks: BlockMap;
  /** Every block of its volume was written (encrypted lineages): none reads back as noise. */
  fullyWritten: boolean;
}

/** One PutSnapshotBlock: the block's index and whether it is written as zeros. */
export interface BlockWrite {
  index: number;
  zero: boolean;
}

/** Which blocks a snapshot upload writes, computed from block maps alone (pure). */
export interface BlockPlan {
  volumeGiB: number;
  parentSnapshotId?: string;
  /** Ascending by index. */
  writes: BlockWrite[];
  /** Blocks of the disk that hold data. */
  dataBlocks: number;
  /** Blocks taken from the parent as they are. */
  unchanged: number;
  /** Every block of the volume is written (encrypted: unwritten blocks would read back as noise). */
  fullyWritten: boolean;
}

/**
 * The writes that make a snapshot read back exactly the disk (zeros past its end):
 * - no parent: every block holding data; encrypted, every block of the volume, zeros too
 *   (unwritten blocks of an encrypted snapshot read back as noise, not zeros: coldsnap #395);
 * - with a parent: only blocks whose content differs from the parent's, and a block that is zero
 *   now but held data in the parent is written as zeros, never skipped. The volume is never smaller
 *   than the parent's; encrypted, blocks past the parent's volume are written even when zero.
 */
export function planBlocks(disk: { size: number; blocks: BlockMap }, options: { encrypted: boolean; parent?: ParentSnapshot | undefined }): BlockPlan {
  const parent = options.parent;
  const gib = Math.max(volumeGiB(disk.size), parent?.volumeGiB ?? 0);
  const total = gib * BLOCKS_PER_GIB;
  const writes: BlockWrite[] = [];
  let unchanged = 0;
  if (!parent) {
    if (options.encrypted) for (let i = 0; i < total; i++) writes.push({ index: i, zero: !disk.blocks.has(i) });
    else for (const i of [...disk.blocks.keys()].sort((a, b) => a - b)) writes.push({ index: i, zero: false });
    return { volumeGiB: gib, writes, dataBlocks: disk.blocks.size, unchanged: 0, fullyWritten: options.encrypted };
  }
  // inside the parent's volume, a block absent from its map reads back as zeros (unencrypted, or
  // encrypted and written whole); past it, only an unencrypted volume reads zeros unwritten
  const parentBlocks = parent.volumeGiB * BLOCKS_PER_GIB;
  const indexes = new Set<number>([...disk.blocks.keys(), ...parent.blocks.keys()]);
  if (options.encrypted) for (let i = parentBlocks; i < total; i++) indexes.add(i);
  for (const i of [...indexes].sort((a, b) => a - b)) {
    const now = disk.blocks.get(i);
    const before = parent.blocks.get(i);
    if (now && before?.equals(now)) unchanged++;
    else if (now) writes.push({ index: i, zero: false });
    else if (before || (options.encrypted && i >= parentBlocks)) writes.push({ index: i, zero: true });
  }
  return { volumeGiB: gib, parentSnapshotId: parent.snapshotId, writes, dataBlocks: disk.blocks.size, unchanged, fullyWritten: options.encrypted && parent.fullyWritten };
}

/**
 * The aggregate checksum CompleteSnapshot takes (algorithm SHA256, aggregation LINEAR): sha256 over
 * the raw 32-byte digests of the blocks written, in ascending index order (as coldsnap sends it).
 */
export function linearChecksum(digests: readonly Buffer[]): string {
  const h = createHash('sha256');
  for (const d of digests) h.update(d);
  return h.digest('base64');
}
