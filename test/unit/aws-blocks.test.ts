import { open, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linearChecksum, planBlocks, type ParentSnapshot } from '../../providers/aws/block-plan.js';
import { BLOCKS_PER_GIB, EBS_BLOCK_SIZE, blocksOf, dataExtents, decodeBlockMap, encodeBlockMap, mapDisk, sha256, type BlockMap } from '../../providers/aws/disk-blocks.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-aws-blocks-');
});
afterAll(async () => tmp?.cleanup());

/** A sparse file of `size` bytes with `writes` laid down at their offsets. */
async function sparse(name: string, size: number, writes: [number, Buffer][]): Promise<string> {
  const path = join(tmp.dir, name);
  await writeFile(path, '');
  await truncate(path, size);
  const fh = await open(path, 'r+');
  try {
    for (const [at, data] of writes) await fh.write(data, 0, data.length, at);
  } finally {
    await fh.close();
  }
  return path;
}

const digest = (fill: number) => sha256(Buffer.alloc(EBS_BLOCK_SIZE, fill));
const map = (entries: [number, number][]): BlockMap => new Map(entries.map(([i, fill]) => [i, digest(fill)]));

describe('reading a raw disk sparsely', () => {
  it('reads only the blocks under data extents, drops blocks of written zeros, and hashes the rest', async () => {
    const GiB = 1024 ** 3;
    // 3 GiB apparent size; data in blocks 0, 7 (spanning into 8) and the very last one; block 20 written with zeros
    const path = await sparse('disk.raw', 3 * GiB, [
      [100, Buffer.from('boot')],
      [8 * EBS_BLOCK_SIZE - 3, Buffer.from('across')],
      [20 * EBS_BLOCK_SIZE, Buffer.alloc(4096)],
      [3 * GiB - 10, Buffer.from('the end')],
    ]);
    const extents = await dataExtents(path);
    expect(extents.reduce((n, e) => n + e.length, 0)).toBeLessThan(64 * 1024 * 1024);
    expect(blocksOf(extents)).toEqual(expect.arrayContaining([0, 7, 8, 20, 3 * BLOCKS_PER_GIB - 1]));
    const disk = await mapDisk(path);
    expect(disk.size).toBe(3 * GiB);
    expect([...disk.blocks.keys()].sort((a, b) => a - b)).toEqual([0, 7, 8, 3 * BLOCKS_PER_GIB - 1]);
    const first = Buffer.alloc(EBS_BLOCK_SIZE);
    first.write('boot', 100);
    expect(disk.blocks.get(0)).toEqual(sha256(first));
  });

  it('blocksOf lists each overlapped block once, in order', () => {
    expect(blocksOf([{ start: 0, length: 1 }, { start: 10, length: EBS_BLOCK_SIZE }, { start: 3 * EBS_BLOCK_SIZE + 5, length: 1 }])).toEqual([0, 1, 3]);
  });

  it('a block map survives its journal encoding', () => {
    const m = map([[0, 1], [5, 2], [4096, 3]]);
    const back = decodeBlockMap(JSON.parse(JSON.stringify(encodeBlockMap(m))) as ReturnType<typeof encodeBlockMap>);
    expect([...back.keys()]).toEqual([0, 5, 4096]);
    expect(back.get(4096)).toEqual(digest(3));
    expect(() => decodeBlockMap({ deltas: [1, 2], sha256: Buffer.alloc(32).toString('base64') })).toThrow(/damaged/);
  });
});

describe('planning the block writes', () => {
  const disk = { size: 10 * EBS_BLOCK_SIZE, blocks: map([[0, 1], [3, 2], [9, 3]]) };

  it('a first ship writes the blocks holding data and nothing else', () => {
    const plan = planBlocks(disk, { encrypted: false });
    expect(plan.writes).toEqual([0, 3, 9].map((index) => ({ index, zero: false })));
    expect(plan).toMatchObject({ volumeGiB: 1, dataBlocks: 3, unchanged: 0, fullyWritten: false });
  });

  it('encrypted: every block of the volume, zeros included (unwritten blocks read back as noise)', () => {
    const plan = planBlocks(disk, { encrypted: true });
    expect(plan.writes).toHaveLength(BLOCKS_PER_GIB);
    expect(plan.writes.filter((w) => !w.zero).map((w) => w.index)).toEqual([0, 3, 9]);
    expect(plan.fullyWritten).toBe(true);
  });

  it('with a parent: changed blocks only, and a block zero now but data before is written as zeros', () => {
    const parent: ParentSnapshot = { snapshotId: 'snap-1', volumeGiB: 1, blocks: map([[0, 1], [3, 7], [5, 4]]), fullyWritten: false };
    const plan = planBlocks(disk, { encrypted: false, parent });
    expect(plan.writes).toEqual([
      { index: 3, zero: false },
      { index: 5, zero: true },
      { index: 9, zero: false },
    ]);
    expect(plan).toMatchObject({ parentSnapshotId: 'snap-1', unchanged: 1 });
  });

  it('an unchanged disk writes nothing; the volume never shrinks below its parent', () => {
    const parent: ParentSnapshot = { snapshotId: 'snap-1', volumeGiB: 4, blocks: new Map(disk.blocks), fullyWritten: false };
    const plan = planBlocks(disk, { encrypted: false, parent });
    expect(plan.writes).toEqual([]);
    expect(plan.volumeGiB).toBe(4);
    expect(plan.unchanged).toBe(3);
  });

  it('encrypted with a parent: blocks past the parent volume are written, zeros too', () => {
    const big = { size: 2 * 1024 ** 3, blocks: disk.blocks };
    const parent: ParentSnapshot = { snapshotId: 'snap-1', volumeGiB: 1, blocks: new Map(disk.blocks), fullyWritten: true };
    const plan = planBlocks(big, { encrypted: true, parent });
    expect(plan.writes).toHaveLength(BLOCKS_PER_GIB);
    expect(plan.writes[0]).toEqual({ index: BLOCKS_PER_GIB, zero: true });
  });

  it('the LINEAR aggregate checksum is sha256 over the raw block digests in order', () => {
    const a = digest(1);
    const b = digest(2);
    expect(linearChecksum([a, b])).toBe(sha256(Buffer.concat([a, b])).toString('base64'));
    expect(linearChecksum([a, b])).not.toBe(linearChecksum([b, a]));
  });
});
