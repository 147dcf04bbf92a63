import {
  CompleteSnapshotCommand,
  GetSnapshotBlockCommand,
  ListChangedBlocksCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
  type EBSClient,
} from '@aws-sdk/client-ebs';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsFake, type AwsFake } from '../helpers/aws/aws-fake.js';
import { EBS_BLOCK_SIZE } from '../helpers/aws/block-store.js';
import { fakeClients } from '../helpers/aws/clients.js';
import { assembleVolume } from '../helpers/aws/disk-assembly.js';
import { block, putBlock, settledSnapshot, sha256b64 } from '../helpers/aws/sdk-steps.js';
import { tempDir } from '../helpers/tmp.js';

let fake: AwsFake;
let ebs: EBSClient;
let ec2: EC2Client;
let tmp: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  tmp = await tempDir('aim-fake-ebs-');
  fake = await startAwsFake({ sealDelayMs: 20, minuteMs: 200 });
  ({ ebs, ec2 } = fakeClients(fake, 'eu-west-1'));
});
afterAll(async () => {
  await fake?.stop();
  await tmp?.cleanup();
});

/** The SDK's error for a call that must fail (name, HTTP status, the Reason member). */
async function failure(p: Promise<unknown>): Promise<{ name: string; status: number | undefined; reason: string | undefined; message: string; attempts: number | undefined }> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { $metadata?: { httpStatusCode?: number; attempts?: number }; Reason?: string };
    return { name: err.name, status: err.$metadata?.httpStatusCode, reason: err.Reason, message: err.message, attempts: err.$metadata?.attempts };
  }
  throw new Error('the call succeeded');
}

async function startWith(blocks: Record<number, Buffer>, extra: Partial<ConstructorParameters<typeof StartSnapshotCommand>[0]> = {}): Promise<string> {
  const s = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ...extra }));
  for (const [i, data] of Object.entries(blocks)) await putBlock(ebs, s.SnapshotId!, Number(i), data);
  await ebs.send(new CompleteSnapshotCommand({ SnapshotId: s.SnapshotId!, ChangedBlocksCount: Object.keys(blocks).length }));
  expect((await settledSnapshot(ec2, s.SnapshotId!)).State).toBe('completed');
  return s.SnapshotId!;
}

/** Blocks [from, to) of a volume file (volumes are 1 GiB sparse files: never read whole). */
async function volumeBlocks(path: string, from: number, to: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const out = Buffer.alloc((to - from) * EBS_BLOCK_SIZE);
    await fh.read(out, 0, out.length, from * EBS_BLOCK_SIZE);
    return out;
  } finally {
    await fh.close();
  }
}

async function readBlock(snapshotId: string, index: number): Promise<Buffer> {
  const list = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId }));
  const b = list.Blocks!.find((x) => x.BlockIndex === index);
  if (!b) throw new Error(`block ${index} is not in ${snapshotId}`);
  const got = await ebs.send(new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: index, BlockToken: b.BlockToken }));
  const data = Buffer.from(await got.BlockData!.transformToByteArray());
  expect(got.Checksum).toBe(sha256b64(data));
  expect(got.DataLength).toBe(data.length);
  return data;
}

describe('EBS direct APIs: a snapshot written block by block', () => {
  it('StartSnapshot → PutSnapshotBlock → CompleteSnapshot; EC2 sees it pending, then completed; blocks read back', async () => {
    const s = await ebs.send(new StartSnapshotCommand({ VolumeSize: 2, Description: 'aim', Tags: [{ Key: 'aim:image-id', Value: 'abc' }] }));
    expect(s).toMatchObject({ Status: 'pending', VolumeSize: 2, BlockSize: EBS_BLOCK_SIZE, Description: 'aim', OwnerId: fake.state.accountId, Tags: [{ Key: 'aim:image-id', Value: 'abc' }] });
    expect(s.SnapshotId).toMatch(/^snap-[0-9a-f]{17}$/);
    expect(s.StartTime).toBeInstanceOf(Date);
    const put = await putBlock(ebs, s.SnapshotId!, 4095, block(9));
    expect(put.Checksum).toBe(sha256b64(block(9)));
    expect(put.ChecksumAlgorithm).toBe('SHA256');
    await putBlock(ebs, s.SnapshotId!, 0, block(1));
    const { DescribeSnapshotsCommand } = await import('@aws-sdk/client-ec2');
    const pending = (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [s.SnapshotId!] }))).Snapshots![0]!;
    expect(pending).toMatchObject({ State: 'pending', VolumeSize: 2, Description: 'aim', Encrypted: false, VolumeId: 'vol-ffffffff' });
    // a pending snapshot cannot be read yet
    expect((await failure(ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: s.SnapshotId! })))).name).toBe('ValidationException');
    const done = await ebs.send(new CompleteSnapshotCommand({ SnapshotId: s.SnapshotId!, ChangedBlocksCount: 2 }));
    expect(done.Status).toBe('pending');
    const settled = await settledSnapshot(ec2, s.SnapshotId!);
    expect(settled).toMatchObject({ State: 'completed', Progress: '100%', Tags: [{ Key: 'aim:image-id', Value: 'abc' }] });
    const list = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: s.SnapshotId! }));
    expect(list.Blocks!.map((b) => b.BlockIndex)).toEqual([0, 4095]);
    expect(list).toMatchObject({ VolumeSize: 2, BlockSize: EBS_BLOCK_SIZE });
    expect((await readBlock(s.SnapshotId!, 4095)).equals(block(9))).toBe(true);
    // a completed snapshot takes no more blocks
    expect(await failure(putBlock(ebs, s.SnapshotId!, 1, block(2)))).toMatchObject({ name: 'ValidationException', status: 400 });
  });

  it('refuses a block whose SHA-256 does not match x-amz-Checksum, a short block, and indexes past the volume', async () => {
    const s = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    const id = s.SnapshotId!;
    const bad = await failure(ebs.send(new PutSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 0, BlockData: block(1), DataLength: EBS_BLOCK_SIZE, Checksum: sha256b64(block(2)), ChecksumAlgorithm: 'SHA256' })));
    expect(bad).toMatchObject({ name: 'ValidationException', status: 400, reason: 'INVALID_PARAMETER_VALUE' });
    expect(bad.message).toMatch(/checksum/i);
    const short = Buffer.alloc(4096, 1);
    const shortPut = await failure(ebs.send(new PutSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 0, BlockData: short, DataLength: EBS_BLOCK_SIZE, Checksum: sha256b64(short), ChecksumAlgorithm: 'SHA256' })));
    expect(shortPut).toMatchObject({ name: 'ValidationException', message: 'Failed to read block data' });
    expect(await failure(putBlock(ebs, id, 2048, block(1)))).toMatchObject({ name: 'ValidationException', reason: 'INVALID_BLOCK' });
    expect(await failure(putBlock(ebs, 'snap-0123456789abcdef0', 0, block(1)))).toMatchObject({ name: 'ResourceNotFoundException', status: 404, reason: 'SNAPSHOT_NOT_FOUND' });
    // nothing was written: an empty snapshot completes with a count of 0
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 0 }));
    expect((await settledSnapshot(ec2, id)).State).toBe('completed');
  });

  it('CompleteSnapshot: a ChangedBlocksCount other than the blocks written, or a wrong aggregate checksum, puts the snapshot in error', async () => {
    const count = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    await putBlock(ebs, count.SnapshotId!, 3, block(3));
    await putBlock(ebs, count.SnapshotId!, 3, block(4)); // the same block twice counts once
    await putBlock(ebs, count.SnapshotId!, 5, block(5));
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: count.SnapshotId!, ChangedBlocksCount: 3 }));
    const wrong = await settledSnapshot(ec2, count.SnapshotId!);
    expect(wrong.State).toBe('error');
    expect(wrong.StateMessage).toMatch(/ChangedBlocksCount 3 does not match the 2 blocks written/);

    // LINEAR: SHA-256 over the blocks' SHA-256 digests in block index order
    const linear = (datas: Buffer[]) => createHash('sha256').update(Buffer.concat(datas.map((d) => createHash('sha256').update(d).digest()))).digest('base64');
    const good = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    await putBlock(ebs, good.SnapshotId!, 7, block(7));
    await putBlock(ebs, good.SnapshotId!, 2, block(2));
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: good.SnapshotId!, ChangedBlocksCount: 2, Checksum: linear([block(2), block(7)]), ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }));
    expect((await settledSnapshot(ec2, good.SnapshotId!)).State).toBe('completed');
    const bad = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    await putBlock(ebs, bad.SnapshotId!, 7, block(7));
    await putBlock(ebs, bad.SnapshotId!, 2, block(2));
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: bad.SnapshotId!, ChangedBlocksCount: 2, Checksum: linear([block(7), block(2)]), ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }));
    expect((await settledSnapshot(ec2, bad.SnapshotId!)).StateMessage).toMatch(/aggregate checksum/);
  });

  it('StartSnapshot is idempotent by ClientToken; the same token with other parameters is ConflictException (503)', async () => {
    const a = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: 'aim-token-1', Description: 'x' }));
    const b = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: 'aim-token-1', Description: 'x' }));
    expect(b.SnapshotId).toBe(a.SnapshotId);
    const other = await failure(ebs.send(new StartSnapshotCommand({ VolumeSize: 2, ClientToken: 'aim-token-1', Description: 'x' }), { requestTimeout: 5000 }));
    expect(other.name).toBe('ConflictException');
    expect(other.status).toBe(503);
    // the SDK sends a token of its own and keeps it across retries: a StartSnapshot whose answer
    // was lost (the connection dropped after it took effect) gives one snapshot, not two
    const before = fake.state.snapshots.size;
    fake.ebs.faults.add({ action: 'StartSnapshot', effect: { kind: 'drop', when: 'after' } });
    const retried = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, Description: 'retried' }));
    expect(retried.$metadata.attempts).toBe(2);
    expect(fake.state.snapshots.size).toBe(before + 1);
    expect(fake.ebs.calls.filter((c) => c.action === 'StartSnapshot').slice(-2).map((c) => [c.error, c.region])).toEqual([['dropped', 'eu-west-1'], [undefined, 'eu-west-1']]);
    // two different calls without a token of their own: the SDK gives each its own
    const c = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    const d = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    expect(c.SnapshotId).not.toBe(d.SnapshotId);
  });

  it('ParentSnapshotId: the new snapshot starts as the parent\'s blocks; writes replace them; ListChangedBlocks lists only what was written', async () => {
    const parent = await startWith({ 0: block(10), 1: block(11), 2: block(12), 3: block(13) });
    const child = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: parent }));
    expect(child.ParentSnapshotId).toBe(parent);
    await putBlock(ebs, child.SnapshotId!, 1, block(21));
    // a block that held data in the parent and is zero now is written as zeros
    await putBlock(ebs, child.SnapshotId!, 2, block(0));
    // the count is of the blocks written to the child, not of the lineage
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: child.SnapshotId!, ChangedBlocksCount: 2 }));
    expect((await settledSnapshot(ec2, child.SnapshotId!)).State).toBe('completed');
    const list = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: child.SnapshotId! }));
    expect(list.Blocks!.map((b) => b.BlockIndex)).toEqual([0, 1, 2, 3]);
    expect((await readBlock(child.SnapshotId!, 0)).equals(block(10))).toBe(true);
    expect((await readBlock(child.SnapshotId!, 1)).equals(block(21))).toBe(true);
    expect((await readBlock(child.SnapshotId!, 2)).equals(block(0))).toBe(true);
    expect((await readBlock(parent, 1)).equals(block(11))).toBe(true);
    const changed = await ebs.send(new ListChangedBlocksCommand({ FirstSnapshotId: parent, SecondSnapshotId: child.SnapshotId! }));
    expect(changed.ChangedBlocks!.map((b) => b.BlockIndex)).toEqual([1, 2]);
    expect(changed.ChangedBlocks!.every((b) => b.FirstBlockToken && b.SecondBlockToken)).toBe(true);
    // a volume assembled from the child holds the parent's blocks and the child's writes
    const disk = join(tmp.dir, 'child.raw');
    await assembleVolume(fake.state, fake.state.snapshots.get(child.SnapshotId!)!, 1, disk);
    const bytes = await volumeBlocks(disk, 0, 4);
    expect(bytes.subarray(0, EBS_BLOCK_SIZE).equals(block(10))).toBe(true);
    expect(bytes.subarray(EBS_BLOCK_SIZE, 2 * EBS_BLOCK_SIZE).equals(block(21))).toBe(true);
    expect(bytes.subarray(2 * EBS_BLOCK_SIZE, 3 * EBS_BLOCK_SIZE).equals(block(0))).toBe(true);
    expect(bytes.subarray(3 * EBS_BLOCK_SIZE, 4 * EBS_BLOCK_SIZE).equals(block(13))).toBe(true);
    // snapshots of another lineage cannot be compared; a parent must exist and be completed
    const stranger = await startWith({ 1: block(11) });
    expect(await failure(ebs.send(new ListChangedBlocksCommand({ FirstSnapshotId: stranger, SecondSnapshotId: child.SnapshotId! })))).toMatchObject({ name: 'ValidationException', reason: 'UNRELATED_SNAPSHOTS' });
    expect(await failure(ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: 'snap-0123456789abcdef0' })))).toMatchObject({ name: 'ResourceNotFoundException' });
    const open = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    expect(await failure(ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: open.SnapshotId! })))).toMatchObject({ name: 'ValidationException', reason: 'INVALID_SNAPSHOT_ID' });
  });

  it('Encrypted: the unwritten blocks of an encrypted snapshot read back as non-zero data, not zeros', async () => {
    const kms = `arn:aws:kms:eu-west-1:${fake.state.accountId}:key/0a1b2c3d-aim`;
    const enc = await startWith({ 0: block(1) }, { Encrypted: true, KmsKeyArn: kms });
    const plain = await startWith({ 0: block(1) });
    const { DescribeSnapshotsCommand } = await import('@aws-sdk/client-ec2');
    const described = (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [enc] }))).Snapshots![0]!;
    expect(described).toMatchObject({ Encrypted: true, KmsKeyId: kms });
    const read = async (id: string) => {
      const disk = join(tmp.dir, `${id}.raw`);
      await assembleVolume(fake.state, fake.state.snapshots.get(id)!, 1, disk);
      return volumeBlocks(disk, 0, 2);
    };
    const encBytes = await read(enc);
    const plainBytes = await read(plain);
    expect(encBytes.subarray(0, EBS_BLOCK_SIZE).equals(block(1))).toBe(true);
    expect(plainBytes.subarray(EBS_BLOCK_SIZE, 2 * EBS_BLOCK_SIZE).equals(block(0))).toBe(true);
    expect(encBytes.subarray(EBS_BLOCK_SIZE, 2 * EBS_BLOCK_SIZE).equals(block(0))).toBe(false);
    // a child of an encrypted snapshot stays encrypted, with its parent's key
    const child = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: enc }));
    expect(child.KmsKeyArn).toBe(kms);
    expect(await failure(ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: plain, Encrypted: true })))).toMatchObject({ name: 'ValidationException' });
  });

  it('a pending snapshot that sees no activity for its Timeout goes to error', async () => {
    // minuteMs is 200 ms in this fake: a Timeout of 10 minutes is 2 s (the default of 60, 12 s)
    const s = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 10 }));
    const settled = await settledSnapshot(ec2, s.SnapshotId!);
    expect(settled.State).toBe('error');
    expect(settled.StateMessage).toMatch(/timeout of 10 minutes/);
    expect(await failure(putBlock(ebs, s.SnapshotId!, 0, block(1)))).toMatchObject({ name: 'ValidationException' });
  });

  it('lists blocks a page at a time (MaxResults, NextToken, StartingBlockIndex)', async () => {
    const blocks: Record<number, Buffer> = {};
    for (let i = 0; i < 130; i++) blocks[i * 3] = block(i % 250 + 1);
    const id = await startWith(blocks);
    const first = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, MaxResults: 100 }));
    expect(first.Blocks).toHaveLength(100);
    expect(first.NextToken).toBeTruthy();
    const second = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, MaxResults: 100, NextToken: first.NextToken }));
    expect(second.Blocks!.map((b) => b.BlockIndex)).toEqual(Array.from({ length: 30 }, (_, k) => (100 + k) * 3));
    expect(second.NextToken).toBeUndefined();
    const from = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, StartingBlockIndex: 385 }));
    expect(from.Blocks!.map((b) => b.BlockIndex)).toEqual([387]);
    expect(await failure(ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, NextToken: 'bm90LWEtdG9rZW4=' })))).toMatchObject({ name: 'ValidationException', reason: 'INVALID_PAGE_TOKEN' });
  });
});

describe('EBS faults: throttling, server errors and dropped connections', () => {
  it('the SDK retries a throttled and a failed PutSnapshotBlock; the requests and bytes are counted', async () => {
    const s = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    const throttle = fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 1, times: 2, effect: { kind: 'throttle' } });
    const broken = fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 2, times: 1, effect: { kind: 'server-error' } });
    fake.resetTraffic();
    for (const i of [0, 1, 2]) await putBlock(ebs, s.SnapshotId!, i, block(i + 1));
    expect(throttle.hits).toBe(2);
    expect(broken.hits).toBe(1);
    const traffic = fake.traffic().ebs;
    expect(traffic.actions.PutSnapshotBlock).toEqual({ requests: 6, bodyBytes: 6 * EBS_BLOCK_SIZE, failed: 3 });
    expect(traffic.wire.bytesIn).toBeGreaterThan(6 * EBS_BLOCK_SIZE);
    // without retries, the error reaches the caller with AWS's names
    const noRetry = fakeClients(fake, 'eu-west-1', { maxAttempts: 1 }).ebs;
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 3, effect: { kind: 'throttle' } });
    expect(await failure(putBlock(noRetry, s.SnapshotId!, 3, block(4)))).toMatchObject({ name: 'RequestThrottledException', status: 400, reason: 'ACCOUNT_THROTTLED' });
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 3, effect: { kind: 'server-error' } });
    expect(await failure(putBlock(noRetry, s.SnapshotId!, 3, block(4)))).toMatchObject({ name: 'InternalServerException', status: 500 });
  });

  it('a connection dropped before or after the block was stored: the retry stores it once', async () => {
    const s = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    const before = fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 0, effect: { kind: 'drop', when: 'before' } });
    const after = fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 1, effect: { kind: 'drop', when: 'after' } });
    const first = await putBlock(ebs, s.SnapshotId!, 0, block(1));
    const second = await putBlock(ebs, s.SnapshotId!, 1, block(2));
    expect([before.hits, after.hits]).toEqual([1, 1]);
    expect(first.$metadata.attempts).toBe(2);
    expect(second.$metadata.attempts).toBe(2);
    expect([...fake.state.snapshots.get(s.SnapshotId!)!.written].sort()).toEqual([0, 1]);
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: s.SnapshotId!, ChangedBlocksCount: 2 }));
    expect((await settledSnapshot(ec2, s.SnapshotId!)).State).toBe('completed');
  });

  it('refuses requests without a well-formed SigV4 Authorization, and regions the account has not enabled', async () => {
    const unsigned = await fetch(`${fake.endpoints.ebs}/snapshots`, { method: 'POST', body: '{"VolumeSize":1}', headers: { 'content-type': 'application/json' } });
    expect(unsigned.status).toBe(403);
    expect(unsigned.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
    const optIn = fakeClients(fake, 'af-south-1', { maxAttempts: 1 }).ebs;
    expect(await failure(optIn.send(new StartSnapshotCommand({ VolumeSize: 1 })))).toMatchObject({ name: 'UnrecognizedClientException', status: 403 });
  });
});
