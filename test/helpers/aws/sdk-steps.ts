import { PutSnapshotBlockCommand, type EBSClient } from '@aws-sdk/client-ebs';
import { DescribeSnapshotsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
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
