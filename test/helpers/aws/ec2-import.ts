import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { newId, type AwsState, type ImportTaskRecord, type SnapshotRecord } from './aws-state.js';
import { EBS_BLOCK_SIZE } from './block-store.js';
import { Ec2Error, invalidValue, missingParameter } from './ec2-error.js';
import { matchesFilters, page, type Filter } from './ec2-filters.js';
import { idempotent } from './ec2-images.js';
import type { Ec2Handler } from './ec2-server.js';
import { tagSet, tagSpecifications, type TagSpecificationInput } from './ec2-tags.js';
import { sleep } from './faults.js';

/**
 * VM Import's ImportSnapshot: the disk (RAW, stream-optimized VMDK, VHD or VHDX) is read from the
 * S3 server, converted and stored as a snapshot, while DescribeImportSnapshotTasks shows the task
 * moving through its states as AWS reports them: active ("pending", "validating", "validated",
 * "downloading/converting" with a rising Progress) to completed with a SnapshotId, or to
 * deleting/deleted with AWS's reason ("ClientError: Disk validation failed [...]"). The service
 * role and the S3 object are checked when the task is created, as AWS does (InvalidParameter).
 */

export interface ImportOptions {
  /** Milliseconds each step of an import task takes (tests shorten it). */
  stepMs: number;
  /** Where downloads and conversions happen. */
  workDir: string;
  /** Client of the S3 server the disks are read from (absent: ImportSnapshot is refused). */
  s3?: S3Client;
}

const FORMATS = ['RAW', 'VMDK', 'VHD', 'VHDX'];
const ZERO_BLOCK = Buffer.alloc(EBS_BLOCK_SIZE);

class TaskFailure extends Error {}

export function describeImportTask(t: ImportTaskRecord): Record<string, unknown> {
  return {
    ImportTaskId: t.id,
    ...(t.description === undefined ? {} : { Description: t.description }),
    SnapshotTaskDetail: {
      ...(t.description === undefined ? {} : { Description: t.description }),
      ...(t.diskImageSize === undefined ? {} : { DiskImageSize: t.diskImageSize }),
      Encrypted: t.encrypted,
      ...(t.kmsKeyId ? { KmsKeyId: t.kmsKeyId } : {}),
      Format: t.format,
      ...(t.progress === undefined ? {} : { Progress: String(t.progress) }),
      ...(t.snapshotId ? { SnapshotId: t.snapshotId } : {}),
      Status: t.status,
      ...(t.statusMessage ? { StatusMessage: t.statusMessage } : {}),
      UserBucket: { S3Bucket: t.bucket, S3Key: t.key },
    },
    Tags: tagSet(t.tags) ?? [],
  };
}

export function importActions(state: AwsState, options: ImportOptions): Record<string, Ec2Handler> {
  const cancelled = new Set<string>();

  async function run(task: ImportTaskRecord): Promise<void> {
    const step = async (message: string, progress: number) => {
      if (cancelled.has(task.id)) throw new TaskFailure('User cancelled the import task');
      task.statusMessage = message;
      task.progress = progress;
      await sleep(options.stepMs);
    };
    const disk = join(options.workDir, `${task.id}.disk`);
    const raw = join(options.workDir, `${task.id}.raw`);
    try {
      await step('pending', 0);
      await step('validating', 3);
      await step('validated', 10);
      task.statusMessage = 'downloading/converting';
      task.progress = 19;
      const size = await download(task, disk, (done, total) => (task.progress = 19 + Math.floor((60 * done) / Math.max(1, total))));
      task.diskImageSize = size;
      await convert(task.format, disk, raw);
      await step('downloading/converting', 85);
      const snapshot = await storeSnapshot(state, task, task.format === 'RAW' ? disk : raw);
      if (cancelled.has(task.id)) throw new TaskFailure('User cancelled the import task');
      state.snapshots.set(snapshot.id, snapshot);
      task.snapshotId = snapshot.id;
      task.status = 'completed';
      delete task.statusMessage;
      delete task.progress;
    } catch (e) {
      task.status = 'deleting';
      (task.passed ??= []).push('deleting');
      task.statusMessage = e instanceof TaskFailure ? e.message : `ServerError: ${(e as Error).message}`;
      delete task.progress;
      await sleep(options.stepMs);
      task.status = 'deleted';
    } finally {
      await rm(disk, { force: true });
      await rm(raw, { force: true });
    }
  }

  async function download(task: ImportTaskRecord, to: string, progress: (done: number, total: number) => void): Promise<number> {
    let body: Readable;
    let total = 0;
    try {
      const got = await options.s3!.send(new GetObjectCommand({ Bucket: task.bucket, Key: task.key }));
      body = got.Body as Readable;
      total = got.ContentLength ?? 0;
    } catch {
      throw new TaskFailure('ClientError: Disk validation failed [Invalid S3 source location]');
    }
    let done = 0;
    body.on('data', (c: Buffer) => progress((done += c.length), total));
    await pipeline(body, createWriteStream(to));
    return done;
  }

  return {
    ImportSnapshot(call) {
      const { input, region } = call;
      if (!options.s3) throw new Ec2Error('Unsupported', 'The fake EC2 has no S3 server to import from');
      const container = input.DiskContainer as { Format?: string; Url?: string; UserBucket?: { S3Bucket?: string; S3Key?: string }; Description?: string } | undefined;
      if (!container) throw missingParameter('DiskContainer');
      const format = container.Format?.toUpperCase();
      if (format === undefined) throw missingParameter('DiskContainer.Format');
      if (!FORMATS.includes(format)) throw invalidValue('format', container.Format, `Valid values: ${FORMATS.join(', ')}`);
      let bucket = container.UserBucket?.S3Bucket;
      let key = container.UserBucket?.S3Key;
      if (container.Url !== undefined) {
        const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(container.Url);
        if (!m) throw new Ec2Error('Unsupported', 'The fake EC2 imports from s3:// URLs and UserBucket only');
        [bucket, key] = [m[1], m[2]];
      }
      if (!bucket || !key) throw new Ec2Error('InvalidParameter', 'The disk container needs a UserBucket (S3Bucket and S3Key) or a Url');
      const role = input.RoleName ?? 'vmimport';
      if (!state.roles.has(role)) throw new Ec2Error('InvalidParameter', `The service role <${role}> provided does not exist or does not have sufficient permissions`);
      const tags = tagSpecifications(input.TagSpecifications as TagSpecificationInput[] | undefined, ['import-snapshot-task']);
      const active = [...state.importTasks.values()].filter((t) => t.region === region && (t.status === 'active' || t.status === 'deleting'));
      if (active.length >= 20) throw new Ec2Error('ResourceCountLimitExceeded', 'You have reached the limit of 20 concurrent import snapshot tasks in this Region');
      return checkObject(options.s3, bucket, key).then(() => {
        const id = idempotent(state, call, input.ClientToken, () => {
          const task: ImportTaskRecord = {
            id: newId('import-snap'),
            region,
            ...(input.Description === undefined ? {} : { description: input.Description }),
            format,
            bucket: bucket!,
            key: key!,
            roleName: role,
            encrypted: input.Encrypted === true,
            ...(input.KmsKeyId ? { kmsKeyId: input.KmsKeyId } : {}),
            status: 'active',
            statusMessage: 'pending',
            progress: 0,
            tags: tags.get('import-snapshot-task') ?? new Map(),
          };
          state.importTasks.set(task.id, task);
          void run(task);
          return task.id;
        });
        // a repeated request answers with the task as it is now
        return describeImportTask(state.importTasks.get(id)!);
      });
    },

    DescribeImportSnapshotTasks({ input, region }) {
      const ids = input.ImportTaskIds as string[] | undefined;
      for (const id of ids ?? []) {
        const t = state.importTasks.get(id);
        if (!t || t.region !== region) throw new Ec2Error('InvalidConversionTaskId.Malformed', `The import task ID '${id}' does not exist.`);
      }
      const tasks = [...state.importTasks.values()].filter(
        (t) =>
          t.region === region &&
          (!ids?.length || ids.includes(t.id)) &&
          matchesFilters(input.Filters as Filter[] | undefined, t.tags, { 'task-state': () => t.status, 'import-task-id': () => t.id }),
      );
      const p = page(tasks, input, [1, 500]);
      return { ImportSnapshotTasks: p.items.map(describeImportTask), ...(p.NextToken ? { NextToken: p.NextToken } : {}) };
    },

    CancelImportTask({ input, region }) {
      const id = input.ImportTaskId as string | undefined;
      const t = id === undefined ? undefined : state.importTasks.get(id);
      if (!t || t.region !== region) throw new Ec2Error('InvalidConversionTaskId.Malformed', `The import task ID '${String(id)}' does not exist.`);
      if (t.status !== 'active') throw new Ec2Error('IncorrectState', `The import task ${t.id} is ${t.status} and cannot be cancelled`);
      cancelled.add(t.id);
      const previous = t.status;
      t.status = 'deleting';
      t.statusMessage = input.CancelReason ? `User cancelled: ${input.CancelReason}` : 'User cancelled the import task';
      return { ImportTaskId: t.id, PreviousState: previous, State: 'deleting' };
    },
  };
}

async function checkObject(s3: S3Client, bucket: string, key: string): Promise<void> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } catch {
    throw new Ec2Error('InvalidParameter', `User does not have access to the S3 object (${bucket}/${key}).`);
  }
}

/** Checks the disk is what its Format says (by its magic, as AWS's validation does) and converts it to raw. */
async function convert(format: string, disk: string, raw: string): Promise<void> {
  const head = Buffer.alloc(1024);
  const fh = await open(disk, 'r');
  let size: number;
  let tail = Buffer.alloc(0);
  try {
    await fh.read(head, 0, head.length, 0);
    size = (await fh.stat()).size;
    if (size >= 512) {
      tail = Buffer.alloc(512);
      await fh.read(tail, 0, 512, size - 512);
    }
  } finally {
    await fh.close();
  }
  if (size === 0) throw new TaskFailure('ClientError: Disk validation failed [Invalid disk size: the disk image is empty]');
  const unsupported = new TaskFailure('ClientError: Disk validation failed [Unsupported specified file format]');
  if (format === 'RAW') return;
  if (format === 'VMDK') {
    if (head.subarray(0, 4).toString('latin1') !== 'KDMV') throw unsupported;
    const info = await execa('qemu-img', ['info', '--output=json', '-f', 'vmdk', disk], { reject: false });
    const createType = info.exitCode === 0 ? (JSON.parse(info.stdout) as { 'format-specific'?: { data?: { 'create-type'?: string } } })['format-specific']?.data?.['create-type'] : undefined;
    if (createType !== 'streamOptimized') throw new TaskFailure('ClientError: Disk validation failed [Unsupported VMDK File Format]');
  } else if (format === 'VHD') {
    if (tail.subarray(0, 8).toString('latin1') !== 'conectix' && head.subarray(0, 8).toString('latin1') !== 'conectix') throw unsupported;
  } else if (format === 'VHDX') {
    if (head.subarray(0, 8).toString('latin1') !== 'vhdxfile') throw unsupported;
  }
  const qemuFormat = { VMDK: 'vmdk', VHD: 'vpc', VHDX: 'vhdx' }[format]!;
  const r = await execa('qemu-img', ['convert', '-f', qemuFormat, '-O', 'raw', disk, raw], { reject: false });
  if (r.exitCode !== 0) throw new TaskFailure(`ClientError: Disk validation failed [${r.stderr.trim().split('\n').pop() ?? 'the disk could not be read'}]`);
}

/** Reads a raw disk into a new completed snapshot, storing the blocks that hold data. */
async function storeSnapshot(state: AwsState, task: ImportTaskRecord, raw: string): Promise<SnapshotRecord> {
  const fh = await open(raw, 'r');
  const blocks = new Map<number, { sha256: string; writer: string }>();
  const id = newId('snap');
  let size: number;
  try {
    size = (await fh.stat()).size;
    const buf = Buffer.alloc(EBS_BLOCK_SIZE);
    for (let index = 0; index * EBS_BLOCK_SIZE < size; index++) {
      buf.fill(0);
      await fh.read(buf, 0, EBS_BLOCK_SIZE, index * EBS_BLOCK_SIZE);
      if (buf.equals(ZERO_BLOCK)) continue;
      blocks.set(index, { sha256: await state.blocks.put(Buffer.from(buf)), writer: id });
    }
  } finally {
    await fh.close();
  }
  return {
    id,
    region: task.region,
    ownerId: state.accountId,
    state: 'completed',
    sealing: false,
    volumeSize: Math.max(1, Math.ceil(size / 2 ** 30)),
    description: `Created by AWS-VMImport service for ${task.id}`,
    startTime: new Date(),
    completionTime: new Date(),
    encrypted: task.encrypted,
    ...(task.encrypted ? { kmsKeyArn: task.kmsKeyId ?? `arn:aws:kms:${task.region}:${state.accountId}:key/aws-ebs-default` } : {}),
    lineage: id,
    blocks,
    written: new Set(blocks.keys()),
    origin: 'import',
    timeoutMinutes: 60,
    lastActivity: Date.now(),
    progress: 100,
    tags: new Map(),
  };
}
