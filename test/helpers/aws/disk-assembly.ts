import { open } from 'node:fs/promises';
import type { AwsState, SnapshotRecord } from './aws-state.js';
import { BLOCKS_PER_GIB, EBS_BLOCK_SIZE, encryptedNoise } from './block-store.js';

/**
 * The volume EC2 would create from a snapshot, as a raw disk file of the volume's size: every block
 * the snapshot's lineage holds (a snapshot started from a parent holds the parent's blocks, then
 * its own writes) at its offset, zeros elsewhere; or, for a lineage EBS created encrypted, noise
 * in the snapshot's unwritten blocks (what AWS returns there, coldsnap issue #395).
 */
export async function assembleVolume(state: AwsState, snapshot: SnapshotRecord, volumeSizeGiB: number, path: string): Promise<{ blocks: number; noiseBlocks: number }> {
  if (volumeSizeGiB < snapshot.volumeSize) throw new Error(`a ${volumeSizeGiB} GiB volume cannot hold snapshot ${snapshot.id} of ${snapshot.volumeSize} GiB`);
  const fh = await open(path, 'w');
  let noiseBlocks = 0;
  try {
    await fh.truncate(volumeSizeGiB * 2 ** 30);
    const indexes = [...snapshot.blocks.keys()].sort((a, b) => a - b);
    for (const i of indexes) {
      const data = await state.blocks.read(snapshot.blocks.get(i)!.sha256);
      await fh.write(data, 0, data.length, i * EBS_BLOCK_SIZE);
    }
    if (snapshot.noiseKey) {
      for (let i = 0; i < snapshot.volumeSize * BLOCKS_PER_GIB; i++) {
        if (snapshot.blocks.has(i)) continue;
        await fh.write(encryptedNoise(snapshot.noiseKey, i), 0, EBS_BLOCK_SIZE, i * EBS_BLOCK_SIZE);
        noiseBlocks++;
      }
    }
  } finally {
    await fh.close();
  }
  return { blocks: snapshot.blocks.size, noiseBlocks };
}
