import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand, type EBSClient } from '@aws-sdk/client-ebs';
import { DescribeSnapshotsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { EBS_BLOCK_SIZE } from './block-store.js';

/** Small client-side steps the fake's own tests take with the real SDK clients. */

export const sha256b64 = (data: Buffer) => createHash('sha256').update(data).digest('base64');

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function putBlock(ebs: EBSClient, snapshotId: string, index: number, data: Buffer) {
  return ebs.send(new PutSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: index, BlockData: data, DataLength: data.length, Checksum: sha256b64(data), ChecksumAlgorithm: 'SHA256' }));
}

/** A block of 512 KiB filled with one byte value. */
export const block = (fill: number) => Buffer.alloc(EBS_BLOCK_SIZE, fill);

/** The state EC2 shows for a snapshot once it is no longer pending. */
export async function settledSnapshot(ec2: EC2Client, snapshotId: string) {
  return until(`snapshot ${snapshotId} settles`, async () => {
    const s = (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))).Snapshots?.[0];
    return s && s.State !== 'pending' ? s : undefined;
  });
}

/**
 * Uploads a raw disk as a new snapshot the way coldsnap does: StartSnapshot, a PutSnapshotBlock per
 * non-zero 512 KiB block, CompleteSnapshot with the count; waits for EC2 to show it completed.
 */
export async function uploadDisk(ebs: EBSClient, ec2: EC2Client, path: string): Promise<{ snapshotId: string; blocks: number; volumeSize: number }> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const volumeSize = Math.max(1, Math.ceil(size / 2 ** 30));
    const started = await ebs.send(new StartSnapshotCommand({ VolumeSize: volumeSize, Description: 'aim fake test upload' }));
    const snapshotId = started.SnapshotId!;
    const zero = Buffer.alloc(EBS_BLOCK_SIZE);
    let blocks = 0;
    for (let index = 0; index * EBS_BLOCK_SIZE < size; index++) {
      const data = Buffer.alloc(EBS_BLOCK_SIZE);
      await fh.read(data, 0, EBS_BLOCK_SIZE, index * EBS_BLOCK_SIZE);
      if (data.equals(zero)) continue;
      await putBlock(ebs, snapshotId, index, data);
      blocks++;
    }
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: snapshotId, ChangedBlocksCount: blocks }));
    const settled = await settledSnapshot(ec2, snapshotId);
    if (settled.State !== 'completed') throw new Error(`snapshot ${snapshotId} is ${settled.State}: ${settled.StateMessage}`);
    return { snapshotId, blocks, volumeSize };
  } finally {
    await fh.close();
  }
}
