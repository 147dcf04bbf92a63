import { EBSClient } from '@aws-sdk/client-ebs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { open, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ownImage, registerImage, removeImage, waitImageAvailable } from '../../providers/aws/ami.js';
import { planBlocks, type BlockPlan } from '../../providers/aws/block-plan.js';
import { EBS_BLOCK_SIZE, mapDisk, sha256, type BlockMap } from '../../providers/aws/disk-blocks.js';
import { completeSnapshot, putBlocks, startSnapshot, waitSnapshotCompleted } from '../../providers/aws/ebs-snapshot.js';
import { startImport, waitImport } from '../../providers/aws/import-snapshot.js';
import { TAG } from '../../providers/aws/names.js';
import { partSizeFor, removeObject, uploadMultipart, type UploadedPart } from '../../providers/aws/s3-multipart.js';
import { startAwsFake, type AwsFake } from '../helpers/aws/aws-fake.js';
import { assembleVolume } from '../helpers/aws/disk-assembly.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * The EC2 provider's upload steps against the fake AWS, with the real SDK clients: block uploads
 * with and without a parent (checked by assembling the volume EC2 would create and comparing it
 * with the disk byte for byte), faults retried, AMI registration and its adoption, the S3
 * multipart upload resumed from the parts S3 holds, and ImportSnapshot's success and failures.
 */

const REGION = 'eu-west-1';
let tmp: Awaited<ReturnType<typeof tempDir>>;
let fake: AwsFake;
let ec2: EC2Client;
let ebs: EBSClient;
let s3: S3Client;
const signal = new AbortController().signal;
const retry = { signal, baseMs: 5, maxMs: 50 };

beforeAll(async () => {
  tmp = await tempDir('aim-aws-steps-');
  fake = await startAwsFake({ buckets: ['images'], importStepMs: 20, sealDelayMs: 20, registerDelayMs: 20 });
  const common = { region: REGION, credentials: fake.credentials };
  ec2 = new EC2Client({ ...common, endpoint: fake.endpoints.ec2 });
  ebs = new EBSClient({ ...common, endpoint: fake.endpoints.ebs, maxAttempts: 1 });
  s3 = new S3Client({ ...common, endpoint: fake.endpoints.s3, forcePathStyle: true });
});
afterAll(async () => {
  for (const c of [ec2, ebs, s3]) c?.destroy();
  await fake?.stop();
  await tmp?.cleanup();
});
beforeEach(() => {
  fake.ec2.faults.clear();
  fake.ebs.faults.clear();
  fake.resetTraffic();
});

/** A sparse disk of `mib` MiB with a pattern of bytes at the given offsets. */
async function disk(name: string, mib: number, writes: [number, string | Buffer][]): Promise<string> {
  const path = join(tmp.dir, name);
  await writeFile(path, '');
  await truncate(path, mib * 1024 * 1024);
  const fh = await open(path, 'r+');
  for (const [at, data] of writes) {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    await fh.write(b, 0, b.length, at);
  }
  await fh.close();
  return path;
}

const at = (block: number, offset = 0) => block * EBS_BLOCK_SIZE + offset;

async function upload(path: string, blocks: BlockMap, plan: BlockPlan, token: string, done = new Set<number>()) {
  const snapshotId = await startSnapshot(ebs, { plan, clientToken: token, description: 'aim test', tags: { [TAG.name]: 'test' }, encrypted: false }, retry);
  const indexes: number[] = [];
  const r = await putBlocks(ebs, { snapshotId, disk: path, blocks, writes: plan.writes, done, concurrency: 4, onWritten: async (i) => void indexes.push(i), retry });
  await completeSnapshot(ebs, snapshotId, plan, blocks, retry);
  await waitSnapshotCompleted(ec2, snapshotId, signal);
  return { snapshotId, indexes, ...r };
}

/** The volume EC2 would make from the snapshot equals the disk (zeros past its end). */
async function expectVolumeIs(snapshotId: string, path: string) {
  const snapshot = fake.state.snapshots.get(snapshotId)!;
  const volume = join(tmp.dir, `${snapshotId}.vol`);
  await assembleVolume(fake.state, snapshot, snapshot.volumeSize, volume);
  const size = (await stat(path)).size;
  await execa('cmp', ['-n', String(size), path, volume]);
  // and zeros after the disk's end: no block there, or a block of zeros
  const zero = sha256(Buffer.alloc(EBS_BLOCK_SIZE)).toString('hex');
  for (const [i, ref] of snapshot.blocks) if (i * EBS_BLOCK_SIZE >= size) expect(ref.sha256).toBe(zero);
}

describe('EBS direct uploads', () => {
  let first: { path: string; blocks: BlockMap; snapshotId: string };

  it('a first upload sends exactly the blocks holding data, and the volume is the disk', async () => {
    const path = await disk('v1.raw', 24, [[at(0, 10), 'gpt'], [at(3, 100), 'kernel'], [at(7, EBS_BLOCK_SIZE - 2), 'spans'], [at(20), Buffer.alloc(8192)], [at(40, 7), 'root']]);
    const { blocks, size } = await mapDisk(path);
    expect([...blocks.keys()]).toEqual([0, 3, 7, 8, 40]);
    const plan = planBlocks({ size, blocks }, { encrypted: false });
    const r = await upload(path, blocks, plan, 'token-v1');
    expect(r.indexes.sort((a, b) => a - b)).toEqual([0, 3, 7, 8, 40]);
    const traffic = fake.traffic().ebs.actions;
    expect(traffic.PutSnapshotBlock).toMatchObject({ requests: 5, bodyBytes: 5 * EBS_BLOCK_SIZE, failed: 0 });
    await expectVolumeIs(r.snapshotId, path);
    first = { path, blocks, snapshotId: r.snapshotId };
  });

  it('throttling, 5xx and dropped connections are retried until every block is in', async () => {
    const path = await disk('faults.raw', 8, [[at(0), 'a'], [at(1), 'b'], [at(2), 'c'], [at(5), 'd'], [at(9), 'e'], [at(12), 'f']]);
    const { blocks, size } = await mapDisk(path);
    const from = fake.ebs.calls.length;
    fake.ebs.faults.add({ action: 'StartSnapshot', effect: { kind: 'throttle' } });
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 0, times: 4, effect: { kind: 'throttle' } });
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 5, times: 2, effect: { kind: 'server-error', status: 503 } });
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 9, effect: { kind: 'drop', when: 'after' } });
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 12, effect: { kind: 'drop', when: 'before' } });
    fake.ebs.faults.add({ action: 'CompleteSnapshot', effect: { kind: 'server-error' } });
    const r = await upload(path, blocks, planBlocks({ size, blocks }, { encrypted: false }), 'token-faults');
    const ours = fake.ebs.calls.slice(from);
    const calls = ours.filter((c) => c.action === 'PutSnapshotBlock');
    expect(calls.filter((c) => c.error).length).toBe(4 + 2 + 1 + 1);
    expect(new Set(calls.filter((c) => !c.error).map((c) => c.blockIndex))).toEqual(new Set([0, 1, 2, 5, 9, 12]));
    expect(ours.filter((c) => c.action === 'StartSnapshot').map((c) => c.error ?? 'ok')).toEqual(['RequestThrottledException', 'ok']);
    expect(ours.filter((c) => c.action === 'CompleteSnapshot').map((c) => c.error ?? 'ok')).toEqual(['InternalServerException', 'ok']);
    await expectVolumeIs(r.snapshotId, path);
  });

  it('on top of a parent: only changed blocks, a block zero now is written as zeros, an unchanged disk sends nothing', async () => {
    // block 3 changes, block 7/8 become zeros, block 41 is new; 0 and 40 are as before
    const path = await disk('v2.raw', 24, [[at(0, 10), 'gpt'], [at(3, 100), 'kernel 2'], [at(40, 7), 'root'], [at(41), 'new']]);
    const { blocks, size } = await mapDisk(path);
    const parent = { snapshotId: first.snapshotId, volumeGiB: 1, blocks: first.blocks, fullyWritten: false };
    const plan = planBlocks({ size, blocks }, { encrypted: false, parent });
    expect(plan.writes).toEqual([
      { index: 3, zero: false },
      { index: 7, zero: true },
      { index: 8, zero: true },
      { index: 41, zero: false },
    ]);
    const r = await upload(path, blocks, plan, 'token-v2');
    expect(fake.traffic().ebs.actions.PutSnapshotBlock!.requests).toBe(4);
    expect(fake.state.snapshots.get(r.snapshotId)!.parentId).toBe(first.snapshotId);
    await expectVolumeIs(r.snapshotId, path);
    const again = planBlocks({ size, blocks }, { encrypted: false, parent: { ...parent, snapshotId: r.snapshotId, blocks } });
    expect(again.writes).toEqual([]);
  });

  it('encrypted: every block of the volume is written, so none reads back as the noise of unwritten encrypted blocks', async () => {
    const path = await disk('encrypted.raw', 3, [[at(0), 'gpt'], [at(4), 'data']]);
    const { blocks, size } = await mapDisk(path);
    const plan = planBlocks({ size, blocks }, { encrypted: true });
    const snapshotId = await startSnapshot(ebs, { plan, clientToken: 'token-encrypted', description: 'aim test', tags: {}, encrypted: true }, retry);
    const r = await putBlocks(ebs, { snapshotId, disk: path, blocks, writes: plan.writes, done: new Set(), concurrency: 16, onWritten: async () => {}, retry });
    expect(r.written).toBe(2048);
    await completeSnapshot(ebs, snapshotId, plan, blocks, retry);
    await waitSnapshotCompleted(ec2, snapshotId, signal);
    const snapshot = fake.state.snapshots.get(snapshotId)!;
    expect(snapshot.encrypted).toBe(true);
    // the volume EC2 would make holds the disk's blocks and zeros everywhere else, and no block of
    // it is unwritten (an unwritten one would read back as noise: the fake's own test, aws-fake-ebs)
    const zero = sha256(Buffer.alloc(EBS_BLOCK_SIZE)).toString('hex');
    const volume = Array.from({ length: 2048 }, (_, i) => snapshot.blocks.get(i)?.sha256);
    expect(volume.filter((d) => d === undefined)).toHaveLength(0);
    expect(volume.map((d, i) => (d === zero ? 'zero' : d === blocks.get(i)?.toString('hex') ? 'disk' : `other ${i}`)).filter((x) => x !== 'zero')).toEqual(['disk', 'disk']);
  }, 300_000);

  it('a resume with the same client token continues the same snapshot and sends only the blocks not done', async () => {
    const path = await disk('resume.raw', 8, [[at(0), 'a'], [at(1), 'b'], [at(2), 'c'], [at(3), 'd']]);
    const { blocks, size } = await mapDisk(path);
    const plan = planBlocks({ size, blocks }, { encrypted: false });
    const id = await startSnapshot(ebs, { plan, clientToken: 'token-resume', description: 'aim test', tags: {}, encrypted: false }, retry);
    const stop = new AbortController();
    const done = new Set<number>();
    // the second block's write stalls; the run is stopped after the first one is done
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: 1, effect: { kind: 'delay', ms: 2000 } });
    const cut = putBlocks(ebs, {
      snapshotId: id, disk: path, blocks, writes: plan.writes, done: new Set(), concurrency: 1,
      onWritten: async (i) => {
        done.add(i);
        stop.abort();
      },
      retry: { ...retry, signal: stop.signal },
    });
    await expect(cut).rejects.toThrow();
    expect([...done]).toEqual([0]);
    fake.resetTraffic();
    const again = await startSnapshot(ebs, { plan, clientToken: 'token-resume', description: 'aim test', tags: {}, encrypted: false }, retry);
    expect(again).toBe(id);
    const r = await putBlocks(ebs, { snapshotId: id, disk: path, blocks, writes: plan.writes, done, concurrency: 2, onWritten: async () => {}, retry });
    expect(r.written).toBe(3);
    expect(fake.traffic().ebs.actions.PutSnapshotBlock!.requests).toBe(3);
    await completeSnapshot(ebs, id, plan, blocks, retry);
    await waitSnapshotCompleted(ec2, id, signal);
    await expectVolumeIs(id, path);
  });

  it('a block that changed after the disk was mapped stops the upload', async () => {
    const path = await disk('changing.raw', 4, [[at(0), 'a'], [at(1), 'b']]);
    const { blocks, size } = await mapDisk(path);
    const fh = await open(path, 'r+');
    await fh.write(Buffer.from('B'), 0, 1, at(1));
    await fh.close();
    const plan = planBlocks({ size, blocks }, { encrypted: false });
    const id = await startSnapshot(ebs, { plan, clientToken: 'token-changing', description: 'aim test', tags: {}, encrypted: false }, retry);
    await expect(putBlocks(ebs, { snapshotId: id, disk: path, blocks, writes: plan.writes, done: new Set(), concurrency: 1, onWritten: async () => {}, retry })).rejects.toMatchObject({ code: 'E_SOURCE_CHANGED' });
  });
});

describe('AMIs', () => {
  it('registers a UEFI, ENA, IMDSv2 AMI with tags on AMI and snapshot; a repeat of the name with the key adopts it, without refuses', async () => {
    const path = await disk('ami.raw', 4, [[at(0), 'x']]);
    const { blocks, size } = await mapDisk(path);
    const { snapshotId } = await upload(path, blocks, planBlocks({ size, blocks }, { encrypted: false }), 'token-ami');
    const input = { name: 'slim/nginx-0123456789ab', description: 'test', snapshotId, architecture: 'x86_64' as const, bootMode: 'uefi' as const, tpm: true, tags: { [TAG.key]: 'k1', [TAG.name]: 'slim/nginx' }, key: 'k1' };
    fake.ec2.faults.add({ action: 'RegisterImage', effect: { kind: 'drop', when: 'after' } });
    const r = await registerImage(ec2, REGION, input, signal);
    // the answer was lost, the SDK sent it again, EC2 said the name is taken, and the AMI carried our key
    expect(r.adopted).toBe(true);
    expect([...fake.state.images.values()].filter((i) => i.name === input.name)).toHaveLength(1);
    const ami = await waitImageAvailable(ec2, REGION, r.id, signal);
    expect(ami).toMatchObject({ state: 'available', rootSnapshotId: snapshotId, tags: { [TAG.key]: 'k1', [TAG.name]: 'slim/nginx' } });
    const record = fake.state.images.get(r.id)!;
    expect(record).toMatchObject({ architecture: 'x86_64', bootMode: 'uefi', enaSupport: true, imdsSupport: 'v2.0', tpmSupport: 'v2.0', virtualizationType: 'hvm' });
    expect(Object.fromEntries(fake.state.snapshots.get(snapshotId)!.tags)).toMatchObject({ [TAG.key]: 'k1' });
    await expect(registerImage(ec2, REGION, { ...input, key: 'other' }, signal)).rejects.toMatchObject({ code: 'E_PROVIDER', message: expect.stringMatching(/is taken in eu-west-1 by ami-/) });
    const removed = await removeImage(ec2, REGION, r.id, signal);
    expect(removed).toEqual({ removed: true, snapshots: [snapshotId], kept: [] });
    expect(await ownImage(ec2, REGION, r.id)).toBeUndefined();
    expect(fake.state.snapshots.has(snapshotId)).toBe(false);
    expect(await removeImage(ec2, REGION, r.id, signal)).toEqual({ removed: false, snapshots: [], kept: [] });
  });
});

describe('S3 multipart upload and ImportSnapshot', () => {
  let vmdk: string;
  let raw: string;

  beforeAll(async () => {
    raw = await disk('import.raw', 40, [[at(0), 'first'], [at(30), Buffer.alloc(3 * EBS_BLOCK_SIZE, 7)], [at(79), 'last']]);
    vmdk = join(tmp.dir, 'import.vmdk');
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
  });

  it('an interrupted upload resumes from the parts S3 holds; the object is whole', async () => {
    const size = 40 * 1024 * 1024;
    const partSize = 5 * 1024 * 1024;
    const parts: UploadedPart[] = [];
    let uploadId: string | undefined;
    const stop = new AbortController();
    const base = { bucket: 'images', key: 'aim/raw-resume.raw', file: raw, size, partSize, concurrency: 2 };
    await expect(
      uploadMultipart(s3, {
        ...base,
        concurrency: 1,
        onCreated: async (id) => void (uploadId = id),
        onPart: async (p) => {
          parts.push(p);
          if (parts.length === 3) stop.abort();
        },
        retry: { ...retry, signal: stop.signal },
      }),
    ).rejects.toThrow();
    expect(uploadId).toBeDefined();
    fake.resetTraffic();
    const r = await uploadMultipart(s3, { ...base, uploadId, parts, onCreated: async () => {}, onPart: async (p) => void parts.push(p), retry });
    expect(r.uploadId).toBe(uploadId);
    expect(r.sent).toBe(8 - 3);
    expect(fake.traffic().s3.actions.UploadPart!.requests).toBe(5);
    const back = join(tmp.dir, 'back.raw');
    const got = await s3.send(new (await import('@aws-sdk/client-s3')).GetObjectCommand({ Bucket: 'images', Key: base.key }));
    await writeFile(back, Buffer.from(await got.Body!.transformToByteArray()));
    await execa('cmp', [raw, back]);
    await removeObject(s3, 'images', base.key, undefined, signal);
    expect(partSizeFor(100 * 1024 ** 3)).toBeGreaterThanOrEqual((100 * 1024 ** 3) / 10_000);
  });

  it('an upload given up is aborted: S3 no longer knows it, so a resume starts a new one', async () => {
    const parts: UploadedPart[] = [];
    let uploadId: string | undefined;
    const stop = new AbortController();
    const base = { bucket: 'images', key: 'aim/given-up.raw', file: raw, size: 40 * 1024 * 1024, partSize: 5 * 1024 * 1024, concurrency: 1 };
    await expect(uploadMultipart(s3, { ...base, onCreated: async (id) => void (uploadId = id), onPart: async (p) => { parts.push(p); stop.abort(); }, retry: { ...retry, signal: stop.signal } })).rejects.toThrow();
    await removeObject(s3, 'images', base.key, uploadId, signal);
    // resuming it now starts a new upload (S3 says NoSuchUpload for the old one)
    const r = await uploadMultipart(s3, { ...base, uploadId, parts, onCreated: async () => {}, onPart: async () => {}, retry });
    expect(r.uploadId).not.toBe(uploadId);
    expect(r.sent).toBe(8);
    await removeObject(s3, 'images', base.key, undefined, signal);
  });

  it('ImportSnapshot of a stream-optimized VMDK gives a snapshot whose volume is the raw disk, AWS status messages as progress', async () => {
    const key = 'aim/import.vmdk';
    const size = (await stat(vmdk)).size;
    await uploadMultipart(s3, { bucket: 'images', key, file: vmdk, size, partSize: partSizeFor(size), concurrency: 2, onCreated: async () => {}, onPart: async () => {}, retry });
    const statuses: string[] = [];
    const task = await startImport(ec2, { bucket: 'images', key, format: 'VMDK', roleName: 'vmimport', clientToken: 'import-1', description: 'aim test', tags: { [TAG.key]: 'k-import' }, encrypted: false }, signal);
    const again = await startImport(ec2, { bucket: 'images', key, format: 'VMDK', roleName: 'vmimport', clientToken: 'import-1', description: 'aim test', tags: { [TAG.key]: 'k-import' }, encrypted: false }, signal);
    expect(again).toBe(task);
    const snapshotId = await waitImport(ec2, task, { signal, firstMs: 20, maxMs: 100, onStatus: (m) => statuses.push(m) });
    expect(statuses).toContain('downloading/converting');
    await expectVolumeIs(snapshotId, raw);
  });

  it('a failed import is an error with AWS’s reason; a missing role names itself and the policies to create', async () => {
    const key = 'aim/not-a-vmdk.raw';
    await uploadMultipart(s3, { bucket: 'images', key, file: raw, size: 40 * 1024 * 1024, partSize: 16 * 1024 * 1024, concurrency: 2, onCreated: async () => {}, onPart: async () => {}, retry });
    const task = await startImport(ec2, { bucket: 'images', key, format: 'VMDK', roleName: 'vmimport', clientToken: 'import-bad', description: 'aim test', tags: {}, encrypted: false }, signal);
    await expect(waitImport(ec2, task, { signal, firstMs: 20, maxMs: 100 })).rejects.toMatchObject({ code: 'E_AWS_IMPORT_FAILED', message: expect.stringMatching(/ClientError: Disk validation failed \[Unsupported specified file format\]/) });
    const role = startImport(ec2, { bucket: 'images', key, format: 'RAW', roleName: 'no-such-role', clientToken: 'import-role', description: 'aim test', tags: {}, encrypted: false }, signal);
    await expect(role).rejects.toMatchObject({ code: 'E_AWS_VMIMPORT_ROLE', message: expect.stringMatching(/"no-such-role" is missing or lacks rights/) });
    const hint = ((await role.catch((e: unknown) => e)) as { hint: string }).hint;
    expect(hint).toContain('"Service": "vmie.amazonaws.com"');
    expect(hint).toContain('arn:aws:s3:::images/*');
  });
});
