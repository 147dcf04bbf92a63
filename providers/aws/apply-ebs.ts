import { ProviderError, type ApplyContext } from '../../src/api/provider.js';
import { planBlocks } from './block-plan.js';
import type { AwsClients } from './clients.js';
import { EBS_BLOCK_SIZE, decodeBlockMap, encodeBlockMap, mapDisk } from './disk-blocks.js';
import { completeSnapshot, putBlocks, startSnapshot, waitSnapshotCompleted } from './ebs-snapshot.js';
import { clientToken, TAG } from './names.js';
import type { AwsOptions } from './options.js';
import type { AwsPlan } from './plan.js';
import { KIND, findResource, fromRanges, toRanges, type SnapshotData } from './resources.js';

/** What an EBS upload did, for the result and the benchmark. */
export interface EbsUploadReport {
  snapshotId: string;
  parentSnapshotId?: string;
  /** Non-zero 512 KiB blocks of the disk. */
  dataBlocks: number;
  /** Blocks the snapshot needed written (changed ones, on a parent). */
  plannedWrites: number;
  /** Blocks this run sent (a resume sends only those not done). */
  sent: number;
  bytesSent: number;
}

/**
 * The disk as an EBS snapshot through the EBS direct APIs. The snapshot is journalled before
 * StartSnapshot (by its client token, so a resume from any process gets the same snapshot) with
 * the disk's block map; each block written is checkpointed in the journal, so a resume sends only
 * the blocks not done (ListSnapshotBlocks refuses a pending snapshot: the journal is the record).
 */
export async function snapshotByEbs(plan: AwsPlan, ctx: ApplyContext<AwsOptions>, clients: AwsClients, disk: string, tags: Record<string, string>): Promise<EbsUploadReport> {
  const { journal, reporter, signal } = ctx;
  const key = ctx.target.key;
  const token = clientToken(key, `snapshot ${plan.region}`);
  const retry = { signal, onRetry: (e: unknown) => reporter.emit({ type: 'info', message: `AWS asked to slow down or failed (${(e as Error).name}): trying again` }) };
  const prior = findResource(journal.resources(), KIND.snapshot, (d) => d.clientToken === token);
  const priorData = prior?.data as SnapshotData | undefined;
  if (prior?.state === 'created' && priorData?.completed) {
    reporter.emit({ type: 'info', message: `snapshot ${prior.id} is complete (journal): not uploaded again` });
    return { snapshotId: prior.id, ...(priorData.parentSnapshotId ? { parentSnapshotId: priorData.parentSnapshotId } : {}), dataBlocks: 0, plannedWrites: priorData.writes ?? 0, sent: 0, bytesSent: 0 };
  }
  reporter.emit({ type: 'stage', stage: 'map disk', status: 'start', detail: disk });
  const mapped = await mapDisk(disk, signal);
  reporter.emit({ type: 'stage', stage: 'map disk', status: 'done', detail: `${mapped.blocks.size} blocks of 512 KiB hold data` });
  const parent = plan.parent ? { snapshotId: plan.parent.snapshotId, volumeGiB: plan.parent.volumeGiB, blocks: decodeBlockMap(plan.parent.blocks), fullyWritten: plan.parent.fullyWritten } : undefined;
  // a resume continues the snapshot on the parent it was started on
  if (priorData && priorData.parentSnapshotId !== parent?.snapshotId) {
    throw new ProviderError(`the interrupted upload built on ${priorData.parentSnapshotId ?? 'no parent'}, this run on ${parent?.snapshotId ?? 'none'}`, { hint: `aim ship rm ${ctx.publication} removes the interrupted upload; then ship again` });
  }
  const blockPlan = planBlocks(mapped, { encrypted: plan.encrypted, parent });
  const encoded = encodeBlockMap(mapped.blocks);
  if (priorData?.blocks && (priorData.blocks.sha256 !== encoded.sha256 || priorData.blocks.deltas.join() !== encoded.deltas.join())) {
    throw new ProviderError('the disk differs from the one the interrupted run was uploading', { hint: `aim ship rm ${ctx.publication} removes the interrupted upload; then ship again` });
  }
  const data: SnapshotData = {
    clientToken: token,
    key,
    volumeGiB: blockPlan.volumeGiB,
    ...(blockPlan.parentSnapshotId ? { parentSnapshotId: blockPlan.parentSnapshotId } : {}),
    encrypted: plan.encrypted,
    fullyWritten: blockPlan.fullyWritten,
    blocks: encoded,
    writes: blockPlan.writes.length,
  };
  let resource = prior ?? (await journal.begin({ kind: KIND.snapshot, id: token, location: plan.region, data }));
  let snapshotId = resource.state === 'created' ? resource.id : undefined;
  if (!snapshotId) {
    snapshotId = await startSnapshot(clients.ebs, { plan: blockPlan, clientToken: token, description: plan.description, tags: { ...tags, [TAG.token]: token }, encrypted: plan.encrypted, kmsKeyArn: plan.kmsKeyId }, retry);
    resource = await journal.created(resource, { id: snapshotId });
  }
  const done = fromRanges((resource.data as SnapshotData).done);
  const stage = `upload blocks to ${snapshotId}`;
  reporter.emit({ type: 'stage', stage, status: 'start', detail: `${blockPlan.writes.length - done.size} of ${blockPlan.writes.length} blocks to send${parent ? ` (${blockPlan.unchanged} unchanged from ${parent.snapshotId})` : ''}` });
  // checkpoints are written one after the other, each with every block done so far
  let checkpoint = Promise.resolve();
  const result = await putBlocks(clients.ebs, {
    snapshotId,
    disk,
    blocks: mapped.blocks,
    writes: blockPlan.writes,
    done,
    concurrency: plan.parallel,
    onWritten: (index) => {
      done.add(index);
      const ranges = toRanges(done);
      checkpoint = checkpoint.then(async () => {
        resource = await journal.update(resource, { done: ranges });
      });
      return checkpoint;
    },
    onProgress: (n, total) => reporter.emit({ type: 'progress', stage, done: n, total, unit: 'blocks' }),
    retry,
  });
  reporter.emit({ type: 'stage', stage, status: 'done', detail: `${result.written} blocks, ${(result.bytes / 1048576).toFixed(1)} MiB sent` });
  await completeSnapshot(clients.ebs, snapshotId, blockPlan, mapped.blocks, retry);
  await waitSnapshotCompleted(clients.ec2, snapshotId, signal);
  await journal.update(resource, { completed: true });
  return {
    snapshotId,
    ...(blockPlan.parentSnapshotId ? { parentSnapshotId: blockPlan.parentSnapshotId } : {}),
    dataBlocks: blockPlan.dataBlocks,
    plannedWrites: blockPlan.writes.length,
    sent: result.written,
    bytesSent: result.written * EBS_BLOCK_SIZE,
  };
}
