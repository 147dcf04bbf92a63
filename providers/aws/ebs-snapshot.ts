import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand, type EBSClient } from '@aws-sdk/client-ebs';
import { DescribeSnapshotsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { setMaxListeners } from 'node:events';
import { open } from 'node:fs/promises';
import { InputError, ProviderError, isAimError } from '../../src/lib/errors.js';
import { awsError, calling } from './aws-errors.js';
import { linearChecksum, type BlockPlan, type BlockWrite } from './block-plan.js';
import { EBS_BLOCK_SIZE, readBlock, sha256, type BlockMap } from './disk-blocks.js';
import { abortReason, pollUntil, withRetry, type RetryOptions } from './retry.js';

const ZERO_BLOCK = Buffer.alloc(EBS_BLOCK_SIZE);
const ZERO_SHA256 = sha256(ZERO_BLOCK);

export interface StartInput {
  plan: BlockPlan;
  /** Same token → same snapshot (a retry, or a resume from another process). */
  clientToken: string;
  description: string;
  tags: Record<string, string>;
  encrypted: boolean;
  kmsKeyArn?: string | undefined;
}

/** Minutes EBS keeps a pending snapshot without activity (the most it allows): time for a resume. */
const SNAPSHOT_TIMEOUT_MINUTES = 60;

/** StartSnapshot, retried; the client token makes a repeat return the same snapshot. */
export async function startSnapshot(ebs: EBSClient, input: StartInput, retry: RetryOptions): Promise<string> {
  const answer = await calling('start an EBS snapshot', () =>
    withRetry(
      'StartSnapshot',
      () =>
        ebs.send(
          new StartSnapshotCommand({
            VolumeSize: input.plan.volumeGiB,
            ClientToken: input.clientToken,
            Description: input.description,
            Timeout: SNAPSHOT_TIMEOUT_MINUTES,
            Tags: Object.entries(input.tags).map(([Key, Value]) => ({ Key, Value })),
            ...(input.plan.parentSnapshotId ? { ParentSnapshotId: input.plan.parentSnapshotId } : {}),
            ...(input.encrypted && !input.plan.parentSnapshotId ? { Encrypted: true, ...(input.kmsKeyArn ? { KmsKeyArn: input.kmsKeyArn } : {}) } : {}),
          }),
          { abortSignal: retry.signal },
        ),
      retry,
    ),
  );
  if (!answer.SnapshotId) throw new ProviderError('EBS StartSnapshot answered without a snapshot id');
  return answer.SnapshotId;
}

export interface PutBlocksInput {
  snapshotId: string;
  disk: string;
  /** The disk's block map (mapDisk): each block read again must still have this digest. */
  blocks: BlockMap;
  writes: readonly BlockWrite[];
  /** Blocks a previous run already wrote (from the journal): not sent again. */
  done: ReadonlySet<number>;
  /** Parallel PutSnapshotBlock requests. */
  concurrency: number;
  /** Called once a block is written (the journal's checkpoint); awaited before the block counts as done. */
  onWritten(index: number): Promise<void>;
  onProgress?(done: number, total: number): void;
  retry: RetryOptions;
}

/**
 * Writes the planned blocks that are not done yet, `concurrency` at a time, each with its SHA256
 * checksum (EBS refuses a block whose data does not match). Throttling, 5xx and dropped
 * connections are retried with backoff (a block write is idempotent). A block whose content no
 * longer matches the map made before the upload stops everything (the disk changed).
 */
export async function putBlocks(ebs: EBSClient, input: PutBlocksInput): Promise<{ written: number; bytes: number }> {
  const pending = input.writes.filter((w) => !input.done.has(w.index));
  const total = input.writes.length;
  let finished = total - pending.length;
  let written = 0;
  let next = 0;
  const fh = await open(input.disk, 'r');
  const size = (await fh.stat()).size;
  const failure = new AbortController();
  const signal = input.retry.signal ? AbortSignal.any([input.retry.signal, failure.signal]) : failure.signal;
  // each worker's request and its retry wait listen on it: bounded by the concurrency, not a leak
  setMaxListeners(2 * input.concurrency + 10, signal);
  const worker = async () => {
    while (next < pending.length) {
      signal.throwIfAborted();
      const w = pending[next++]!;
      const data = w.zero ? ZERO_BLOCK : await readBlock(fh, w.index, size);
      const digest = w.zero ? ZERO_SHA256 : sha256(data);
      if (!w.zero && !input.blocks.get(w.index)?.equals(digest)) {
        throw new InputError('E_SOURCE_CHANGED', `block ${w.index} of ${input.disk} changed since the disk was mapped`, { hint: 'build the disk again and ship it without changing it meanwhile' });
      }
      const checksum = digest.toString('base64');
      await withRetry(
        `PutSnapshotBlock ${w.index}`,
        () =>
          ebs.send(
            new PutSnapshotBlockCommand({
              SnapshotId: input.snapshotId,
              BlockIndex: w.index,
              BlockData: data,
              DataLength: EBS_BLOCK_SIZE,
              Checksum: checksum,
              ChecksumAlgorithm: 'SHA256',
              Progress: Math.min(100, Math.floor((100 * finished) / Math.max(1, total))),
            }),
            { abortSignal: signal },
          ),
        { ...input.retry, signal },
      );
      await input.onWritten(w.index);
      written++;
      finished++;
      input.onProgress?.(finished, total);
    }
  };
  let first: unknown;
  try {
    const workers = Array.from({ length: Math.max(1, Math.min(input.concurrency, pending.length)) }, () =>
      worker().catch((e: unknown) => {
        // the first failure stops the other workers; theirs (aborts) are not the cause
        first ??= e;
        failure.abort(e);
      }),
    );
    await Promise.all(workers);
  } finally {
    await fh.close();
  }
  if (first !== undefined) {
    if (isAimError(first) || input.retry.signal?.aborted) throw input.retry.signal?.aborted ? abortReason(input.retry.signal) : first;
    throw awsError(first, `write blocks to snapshot ${input.snapshotId}`);
  }
  return { written, bytes: written * EBS_BLOCK_SIZE };
}

/** The digest of each planned write, in index order: what the LINEAR aggregate checksum covers. */
export function writeDigests(plan: BlockPlan, blocks: BlockMap): Buffer[] {
  return plan.writes.map((w) => (w.zero ? ZERO_SHA256 : blocks.get(w.index)!));
}

/** CompleteSnapshot with the count of blocks written and their aggregate checksum (retried; a repeat reports the state). */
export async function completeSnapshot(ebs: EBSClient, snapshotId: string, plan: BlockPlan, blocks: BlockMap, retry: RetryOptions): Promise<void> {
  const checksum = linearChecksum(writeDigests(plan, blocks));
  await calling(`complete snapshot ${snapshotId}`, () =>
    withRetry(
      'CompleteSnapshot',
      () =>
        ebs.send(
          new CompleteSnapshotCommand({ SnapshotId: snapshotId, ChangedBlocksCount: plan.writes.length, Checksum: checksum, ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }),
          { abortSignal: retry.signal },
        ),
      retry,
    ),
  );
}

/** What EC2 says about a snapshot: its state and message, or undefined when it does not exist. */
export async function describeSnapshot(ec2: EC2Client, snapshotId: string, signal?: AbortSignal): Promise<{ state: string; message?: string; tags: Record<string, string> } | undefined> {
  try {
    const s = (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }), { abortSignal: signal })).Snapshots?.[0];
    if (!s) return undefined;
    return { state: s.State ?? 'unknown', ...(s.StateMessage ? { message: s.StateMessage } : {}), tags: Object.fromEntries((s.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])) };
  } catch (e) {
    if ((e as { name?: string }).name === 'InvalidSnapshot.NotFound') return undefined;
    throw e;
  }
}

/** Waits until EC2 shows the snapshot completed; an error state becomes a ProviderError with AWS's message. */
export async function waitSnapshotCompleted(ec2: EC2Client, snapshotId: string, signal: AbortSignal, timeoutMs = 30 * 60_000): Promise<void> {
  const settled = await calling(`wait for snapshot ${snapshotId}`, () =>
    pollUntil(
      async () => {
        const s = await describeSnapshot(ec2, snapshotId, signal);
        return s && s.state !== 'pending' ? s : undefined;
      },
      { timeoutMs, firstMs: 200, maxMs: 10_000, signal },
    ),
  );
  if (!settled) throw new ProviderError(`snapshot ${snapshotId} is still pending after ${Math.round(timeoutMs / 60_000)} minutes`, { hint: 'aim ship resume <publication> waits again' });
  if (settled.state !== 'completed') throw new ProviderError(`snapshot ${snapshotId} failed: ${settled.message ?? settled.state}`, { hint: 'aim ship rm <publication> removes it; ship again' });
}
