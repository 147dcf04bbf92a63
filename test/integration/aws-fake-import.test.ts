import { GetSnapshotBlockCommand, ListSnapshotBlocksCommand, type EBSClient } from '@aws-sdk/client-ebs';
import {
  CancelImportTaskCommand,
  DescribeImportSnapshotTasksCommand,
  DescribeSnapshotsCommand,
  ImportSnapshotCommand,
  type EC2Client,
  type ImportSnapshotCommandInput,
  type SnapshotTaskDetail,
} from '@aws-sdk/client-ec2';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { createReadStream } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsFake, type AwsFake } from '../helpers/aws/aws-fake.js';
import { EBS_BLOCK_SIZE } from '../helpers/aws/block-store.js';
import { fakeClients } from '../helpers/aws/clients.js';
import { until } from '../helpers/aws/sdk-steps.js';
import { tempDir } from '../helpers/tmp.js';

let fake: AwsFake;
let ec2: EC2Client;
let ebs: EBSClient;
let s3: S3Client;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let raw: string;
let rawBytes: Buffer;

const BUCKET = 'aim-imports';

beforeAll(async () => {
  tmp = await tempDir('aim-fake-import-');
  fake = await startAwsFake({ importStepMs: 60 });
  ({ ec2, ebs, s3 } = fakeClients(fake, 'eu-central-1'));
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  // a disk of 2.5 MiB + 1000 bytes: data in blocks 0, 2 and the partial last block, block 1 and 3 zero
  rawBytes = Buffer.alloc(5 * EBS_BLOCK_SIZE + 1000);
  rawBytes.fill(0xa1, 0, 4096);
  rawBytes.fill(0xb2, 2 * EBS_BLOCK_SIZE + 100, 2 * EBS_BLOCK_SIZE + 9000);
  rawBytes.fill(0xc3, 5 * EBS_BLOCK_SIZE, 5 * EBS_BLOCK_SIZE + 1000);
  raw = join(tmp.dir, 'disk.raw');
  await writeFile(raw, rawBytes);
}, 60_000);
afterAll(async () => {
  await fake?.stop();
  await tmp?.cleanup();
});

async function upload(key: string, path: string): Promise<void> {
  // a stream body: the SDK sends it aws-chunked with a CRC32 trailer, as it does by default
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: createReadStream(path), ContentLength: (await stat(path)).size }));
}

async function failure(p: Promise<unknown>): Promise<{ name: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { name: (e as Error).name, message: (e as Error).message };
  }
  throw new Error('the call succeeded');
}

/** Polls the task until it ends, keeping every distinct (Status, StatusMessage, Progress) seen. */
async function follow(taskId: string): Promise<{ final: SnapshotTaskDetail; seen: SnapshotTaskDetail[] }> {
  const seen: SnapshotTaskDetail[] = [];
  const final = await until(`import task ${taskId}`, async () => {
    const t = (await ec2.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: [taskId] }))).ImportSnapshotTasks![0]!;
    const d = t.SnapshotTaskDetail!;
    const last = seen.at(-1);
    if (!last || last.Status !== d.Status || last.StatusMessage !== d.StatusMessage || last.Progress !== d.Progress) seen.push(d);
    return d.Status === 'completed' || d.Status === 'deleted' ? d : undefined;
  }, 60_000, 15);
  return { final, seen };
}

const importInput = (key: string, format: string, extra: Partial<ImportSnapshotCommandInput> = {}): ImportSnapshotCommandInput => ({
  Description: `aim ${key}`,
  DiskContainer: { Format: format, UserBucket: { S3Bucket: BUCKET, S3Key: key } },
  ...extra,
});

/** The snapshot's data as EBS direct reads it, up to `length` bytes. */
async function snapshotBytes(snapshotId: string, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  const list = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId }));
  for (const b of list.Blocks!) {
    const got = await ebs.send(new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: b.BlockIndex, BlockToken: b.BlockToken }));
    Buffer.from(await got.BlockData!.transformToByteArray()).copy(out, b.BlockIndex! * EBS_BLOCK_SIZE);
  }
  return out;
}

describe('ImportSnapshot from the S3 server', () => {
  it('a RAW disk: active (pending → validating → validated → downloading/converting, rising progress) → completed; the snapshot holds the disk', async () => {
    await upload('disk.raw', raw);
    const started = await ec2.send(new ImportSnapshotCommand(importInput('disk.raw', 'RAW', { TagSpecifications: [{ ResourceType: 'import-snapshot-task', Tags: [{ Key: 'aim:publication', Value: 'p7' }] }] })));
    expect(started.ImportTaskId).toMatch(/^import-snap-[0-9a-f]{17}$/);
    expect(started.SnapshotTaskDetail).toMatchObject({ Status: 'active', StatusMessage: 'pending', Format: 'RAW', UserBucket: { S3Bucket: BUCKET, S3Key: 'disk.raw' } });
    expect(started.Tags).toEqual([{ Key: 'aim:publication', Value: 'p7' }]);
    const { final, seen } = await follow(started.ImportTaskId!);
    expect(final).toMatchObject({ Status: 'completed', DiskImageSize: rawBytes.length, Format: 'RAW' });
    expect(final.StatusMessage).toBeUndefined();
    const messages = [...new Set(seen.filter((s) => s.Status === 'active').map((s) => s.StatusMessage))];
    const order = ['pending', 'validating', 'validated', 'downloading/converting'];
    expect(messages.every((m, i) => i === 0 || order.indexOf(m!) > order.indexOf(messages[i - 1]!))).toBe(true);
    expect(messages).toContain('downloading/converting');
    const progress = seen.filter((s) => s.Status === 'active').map((s) => Number(s.Progress));
    expect(progress.every((p, i) => Number.isInteger(p) && (i === 0 || p >= progress[i - 1]!))).toBe(true);
    const snap = (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [final.SnapshotId!] }))).Snapshots![0]!;
    expect(snap).toMatchObject({ State: 'completed', VolumeSize: 1, Description: `Created by AWS-VMImport service for ${started.ImportTaskId}` });
    const list = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: final.SnapshotId! }));
    expect(list.Blocks!.map((b) => b.BlockIndex)).toEqual([0, 2, 5]);
    expect((await snapshotBytes(final.SnapshotId!, rawBytes.length)).equals(rawBytes)).toBe(true);
  });

  it('a stream-optimized VMDK is converted; a monolithic sparse VMDK or a disk that is not what Format says ends deleted with AWS\'s reason', async () => {
    const vmdk = join(tmp.dir, 'disk.vmdk');
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
    await upload('disk.vmdk', vmdk);
    const ok = await ec2.send(new ImportSnapshotCommand(importInput('disk.vmdk', 'vmdk')));
    const done = await follow(ok.ImportTaskId!);
    expect(done.final).toMatchObject({ Status: 'completed', Format: 'VMDK', DiskImageSize: (await stat(vmdk)).size });
    // qemu-img rounds a VMDK's size up to whole sectors
    const sectors = Math.ceil(rawBytes.length / 512) * 512;
    expect((await snapshotBytes(done.final.SnapshotId!, sectors)).subarray(0, rawBytes.length).equals(rawBytes)).toBe(true);

    const sparse = join(tmp.dir, 'sparse.vmdk');
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', raw, sparse]);
    await upload('sparse.vmdk', sparse);
    const notStreamId = (await ec2.send(new ImportSnapshotCommand(importInput('sparse.vmdk', 'VMDK')))).ImportTaskId!;
    const notStream = await follow(notStreamId);
    expect(notStream.final).toMatchObject({ Status: 'deleted', StatusMessage: 'ClientError: Disk validation failed [Unsupported VMDK File Format]' });
    // 'deleting' lasts one step: a poller may miss it on a loaded machine, the fake's record does not
    expect(fake.state.importTasks.get(notStreamId)?.passed).toEqual(['deleting']);
    expect(notStream.final.SnapshotId).toBeUndefined();

    const lie = await follow((await ec2.send(new ImportSnapshotCommand(importInput('disk.raw', 'VHD')))).ImportTaskId!);
    expect(lie.final).toMatchObject({ Status: 'deleted', StatusMessage: 'ClientError: Disk validation failed [Unsupported specified file format]' });
  });

  it('checks the service role and the S3 object when the task is created (InvalidParameter), and fails a task whose object went away', async () => {
    fake.state.roles.delete('vmimport');
    try {
      expect(await failure(ec2.send(new ImportSnapshotCommand(importInput('disk.raw', 'RAW'))))).toEqual({
        name: 'InvalidParameter',
        message: 'The service role <vmimport> provided does not exist or does not have sufficient permissions',
      });
    } finally {
      fake.state.roles.add('vmimport');
    }
    expect(await failure(ec2.send(new ImportSnapshotCommand(importInput('disk.raw', 'RAW', { RoleName: 'aim-import' }))))).toMatchObject({ name: 'InvalidParameter' });
    expect(await failure(ec2.send(new ImportSnapshotCommand(importInput('missing.raw', 'RAW'))))).toEqual({
      name: 'InvalidParameter',
      message: `User does not have access to the S3 object (${BUCKET}/missing.raw).`,
    });
    await upload('gone.raw', raw);
    const task = await ec2.send(new ImportSnapshotCommand(importInput('gone.raw', 'RAW')));
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'gone.raw' }));
    const { final } = await follow(task.ImportTaskId!);
    expect(final).toMatchObject({ Status: 'deleted', StatusMessage: 'ClientError: Disk validation failed [Invalid S3 source location]' });
  });

  it('is idempotent by ClientToken; CancelImportTask ends an active task', async () => {
    const input = importInput('disk.raw', 'RAW', { ClientToken: 'aim-import-1' });
    const a = await ec2.send(new ImportSnapshotCommand(input));
    const b = await ec2.send(new ImportSnapshotCommand(input));
    expect(b.ImportTaskId).toBe(a.ImportTaskId);
    expect(await failure(ec2.send(new ImportSnapshotCommand({ ...input, Description: 'other' })))).toMatchObject({ name: 'IdempotentParameterMismatch' });
    const cancelled = await ec2.send(new CancelImportTaskCommand({ ImportTaskId: a.ImportTaskId }));
    expect(cancelled).toMatchObject({ PreviousState: 'active', State: 'deleting' });
    const { final } = await follow(a.ImportTaskId!);
    expect(final.Status).toBe('deleted');
    expect(await failure(ec2.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: ['import-snap-0123456789abcdef0'] })))).toMatchObject({ name: 'InvalidConversionTaskId.Malformed' });
  });
});

describe('S3 server', () => {
  it('stores aws-chunked uploads decoded and refuses one whose CRC32 trailer does not match (BadDigest)', async () => {
    const put = async (key: string, data: Buffer, crc: Buffer) => {
      const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
      const body = Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from(`\r\n0\r\nx-amz-checksum-crc32:${crc.toString('base64')}\r\n\r\n`)]);
      return fetch(`${fake.endpoints.s3}/${BUCKET}/${key}`, {
        method: 'PUT',
        body,
        headers: {
          authorization: `AWS4-HMAC-SHA256 Credential=S3RVER/${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${'b'.repeat(64)}`,
          'x-amz-date': amzDate,
          'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
          'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': String(data.length),
          'x-amz-trailer': 'x-amz-checksum-crc32',
        },
      });
    };
    const data = Buffer.from('hello, chunked world');
    const good = Buffer.alloc(4);
    good.writeUInt32BE(crc32(data));
    expect((await put('chunked.txt', data, good)).status).toBe(200);
    const back = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'chunked.txt' }));
    expect(Buffer.from(await back.Body!.transformToByteArray()).equals(data)).toBe(true);
    const bad = await put('bad.txt', data, Buffer.from([0, 0, 0, 0]));
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('<Code>BadDigest</Code>');
    const counted = fake.traffic().s3.actions.PutObject!;
    expect(counted.failed).toBeGreaterThanOrEqual(1);
  });
});
