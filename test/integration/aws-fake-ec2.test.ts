import { CompleteSnapshotCommand, StartSnapshotCommand, type EBSClient } from '@aws-sdk/client-ebs';
import {
  CopyImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeRegionsCommand,
  DescribeSnapshotsCommand,
  DescribeTagsCommand,
  ModifyImageAttributeCommand,
  paginateDescribeImages,
  RegisterImageCommand,
  RunInstancesCommand,
  waitUntilImageAvailable,
  type EC2Client,
  type RegisterImageCommandInput,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsFake, type AwsFake } from '../helpers/aws/aws-fake.js';
import { fakeClients } from '../helpers/aws/clients.js';
import { block, putBlock, settledSnapshot } from '../helpers/aws/sdk-steps.js';

let fake: AwsFake;
let ec2: EC2Client;
let ebs: EBSClient;

beforeAll(async () => {
  // no capacity for instances: RunInstances is checked here without booting anything (test/integration/ship-aws.test.ts boots aim's AMI)
  fake = await startAwsFake({ registerDelayMs: 300, copyDelayMs: 300, sealDelayMs: 10, instances: { maxRunning: 0 } });
  ({ ec2, ebs } = fakeClients(fake, 'us-east-1'));
});
afterAll(async () => fake?.stop());

async function failure(p: Promise<unknown>): Promise<{ name: string; status: number | undefined; message: string; attempts: number | undefined }> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { $metadata?: { httpStatusCode?: number; attempts?: number } };
    return { name: err.name, status: err.$metadata?.httpStatusCode, message: err.message, attempts: err.$metadata?.attempts };
  }
  throw new Error('the call succeeded');
}

async function snapshot(client = ebs, gib = 1): Promise<string> {
  const s = await client.send(new StartSnapshotCommand({ VolumeSize: gib }));
  await putBlock(client, s.SnapshotId!, 0, block(1));
  await client.send(new CompleteSnapshotCommand({ SnapshotId: s.SnapshotId!, ChangedBlocksCount: 1 }));
  expect((await settledSnapshot(ec2, s.SnapshotId!)).State).toBe('completed');
  return s.SnapshotId!;
}

let names = 0;
function registration(snapshotId: string, extra: Partial<RegisterImageCommandInput> = {}): RegisterImageCommandInput {
  return {
    Name: `aim-test-${++names} (slim)`,
    Architecture: 'x86_64',
    BootMode: 'uefi',
    EnaSupport: true,
    ImdsSupport: 'v2.0',
    VirtualizationType: 'hvm',
    RootDeviceName: '/dev/xvda',
    BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: snapshotId, DeleteOnTermination: true, VolumeType: 'gp3' } }],
    ...extra,
  };
}

/** A POST with a well-formed but unchecked SigV4 header (the fake checks its shape, not the signature). */
async function rawEc2(params: Record<string, string>, opts: { service?: string; auth?: boolean } = {}) {
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'x-amz-date': amzDate };
  if (opts.auth !== false) headers.authorization = `AWS4-HMAC-SHA256 Credential=AKIDFAKE/${amzDate.slice(0, 8)}/us-east-1/${opts.service ?? 'ec2'}/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'a'.repeat(64)}`;
  const res = await fetch(fake.endpoints.ec2, { method: 'POST', body: new URLSearchParams({ Version: '2016-11-15', ...params }), headers });
  const text = await res.text();
  return { status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(text)?.[1], message: /<Message>([^<]*)<\/Message>/.exec(text)?.[1], text };
}

describe('RegisterImage and DescribeImages', () => {
  it('registers an EBS-backed AMI with its boot flags; pending, then available (the SDK waiter sees it)', async () => {
    const snap = await snapshot(ebs, 2);
    const input = registration(snap, { TpmSupport: 'v2.0', Description: 'slim nginx', TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'aim:image-id', Value: 'sha256:abc' }] }, { ResourceType: 'snapshot', Tags: [{ Key: 'aim:publication', Value: 'p1' }] }] });
    const { ImageId } = await ec2.send(new RegisterImageCommand(input));
    expect(ImageId).toMatch(/^ami-[0-9a-f]{17}$/);
    const pending = (await ec2.send(new DescribeImagesCommand({ ImageIds: [ImageId!] }))).Images![0]!;
    expect(pending.State).toBe('pending');
    await waitUntilImageAvailable({ client: ec2, maxWaitTime: 30, minDelay: 1 }, { ImageIds: [ImageId!] });
    const image = (await ec2.send(new DescribeImagesCommand({ ImageIds: [ImageId!] }))).Images![0]!;
    expect(image).toMatchObject({
      ImageId,
      Name: input.Name,
      Description: 'slim nginx',
      State: 'available',
      OwnerId: fake.state.accountId,
      Public: false,
      Architecture: 'x86_64',
      BootMode: 'uefi',
      TpmSupport: 'v2.0',
      ImdsSupport: 'v2.0',
      EnaSupport: true,
      VirtualizationType: 'hvm',
      RootDeviceType: 'ebs',
      RootDeviceName: '/dev/xvda',
      ImageType: 'machine',
      Tags: [{ Key: 'aim:image-id', Value: 'sha256:abc' }],
    });
    // the volume size defaults to the snapshot's
    expect(image.BlockDeviceMappings).toEqual([{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: snap, VolumeSize: 2, VolumeType: 'gp3', DeleteOnTermination: true, Encrypted: false } }]);
    expect(image.CreationDate).toMatch(/^\d{4}-\d\d-\d\dT/);
    const tagged = (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snap] }))).Snapshots![0]!;
    expect(tagged.Tags).toEqual([{ Key: 'aim:publication', Value: 'p1' }]);
    // filters: owner self, tag, name wildcard
    const byTag = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'tag:aim:image-id', Values: ['sha256:*'] }] }));
    expect(byTag.Images!.map((i) => i.ImageId)).toEqual([ImageId]);
    const byName = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: ['aim-test-? (slim)'] }] }));
    expect(byName.Images!.map((i) => i.ImageId)).toContain(ImageId);
    const none = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'tag:aim:image-id', Values: ['sha256:zzz'] }] }));
    expect(none.Images).toEqual([]);
  });

  it('an AMI name is unique in its region: a second RegisterImage of it is InvalidAMIName.Duplicate; RegisterImage has no ClientToken', async () => {
    const snap = await snapshot();
    const input = registration(snap);
    const { ImageId } = await ec2.send(new RegisterImageCommand(input));
    const again = await failure(ec2.send(new RegisterImageCommand(input)));
    expect(again).toMatchObject({ name: 'InvalidAMIName.Duplicate', status: 400 });
    expect(again.message).toBe(`AMI name ${input.Name} is already in use by AMI ${ImageId}`);
    // the EC2 API has no ClientToken for RegisterImage: the parameter is refused
    const token = await rawEc2({ Action: 'RegisterImage', Name: 'with-token', RootDeviceName: '/dev/xvda', 'BlockDeviceMapping.1.DeviceName': '/dev/xvda', 'BlockDeviceMapping.1.Ebs.SnapshotId': snap, ClientToken: 'abc' });
    expect(token).toMatchObject({ status: 400, code: 'UnknownParameter', message: 'The parameter ClientToken is not recognized' });
    expect(await failure(ec2.send(new RegisterImageCommand(registration(snap, { Name: 'x' }))))).toMatchObject({ name: 'InvalidAMIName.Malformed' });
  });

  it('refuses mappings AWS refuses: a pending snapshot, a volume smaller than its snapshot, a root device not mapped, TPM without UEFI', async () => {
    const open = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    expect(await failure(ec2.send(new RegisterImageCommand(registration(open.SnapshotId!))))).toMatchObject({ name: 'IncorrectState' });
    const two = await snapshot(ebs, 2);
    const small = await failure(ec2.send(new RegisterImageCommand(registration(two, { BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: two, VolumeSize: 1 } }] }))));
    expect(small).toMatchObject({ name: 'InvalidBlockDeviceMapping' });
    expect(small.message).toBe(`Volume of size 1GB is smaller than snapshot '${two}', expect size >= 2GB`);
    expect(await failure(ec2.send(new RegisterImageCommand(registration(two, { RootDeviceName: '/dev/sda1' }))))).toMatchObject({ name: 'InvalidBlockDeviceMapping' });
    expect(await failure(ec2.send(new RegisterImageCommand(registration(two, { BootMode: 'legacy-bios', TpmSupport: 'v2.0' }))))).toMatchObject({ name: 'InvalidParameterCombination' });
    expect(await failure(ec2.send(new RegisterImageCommand(registration('snap-0123456789abcdef0'))))).toMatchObject({ name: 'InvalidSnapshot.NotFound' });
    expect(await failure(ec2.send(new RegisterImageCommand(registration(two, { TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'a', Value: 'b' }] }] }))))).toMatchObject({
      name: 'InvalidParameterValue',
      message: "'instance' is not a valid taggable resource type for this operation.",
    });
    expect(await failure(ec2.send(new DescribeImagesCommand({ ImageIds: ['ami-0123456789abcdef0'] })))).toMatchObject({ name: 'InvalidAMIID.NotFound', message: "The image id '[ami-0123456789abcdef0]' does not exist" });
    expect(await failure(ec2.send(new DescribeImagesCommand({ ImageIds: ['ami-xyz'] })))).toMatchObject({ name: 'InvalidAMIID.Malformed' });
  });

  it('pages DescribeImages with MaxResults and NextToken (the SDK paginator gets them all)', async () => {
    const snap = await snapshot();
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push((await ec2.send(new RegisterImageCommand(registration(snap, { TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'page', Value: 'yes' }] }] })))).ImageId);
    const seen: string[] = [];
    let pages = 0;
    for await (const p of paginateDescribeImages({ client: ec2, pageSize: 5 }, { Owners: ['self'], Filters: [{ Name: 'tag:page', Values: ['yes'] }] })) {
      pages++;
      seen.push(...p.Images!.map((i) => i.ImageId!));
    }
    expect(pages).toBe(2);
    expect(seen.sort()).toEqual([...ids].sort());
  });
});

describe('snapshots, deregistration and tags', () => {
  it('DeleteSnapshot refuses a snapshot a registered AMI uses (InvalidSnapshot.InUse); after DeregisterImage it goes', async () => {
    const snap = await snapshot();
    const { ImageId } = await ec2.send(new RegisterImageCommand(registration(snap)));
    const inUse = await failure(ec2.send(new DeleteSnapshotCommand({ SnapshotId: snap })));
    expect(inUse).toMatchObject({ name: 'InvalidSnapshot.InUse', status: 400, message: `The snapshot ${snap} is currently in use by ${ImageId}` });
    await ec2.send(new DeregisterImageCommand({ ImageId }));
    expect(await failure(ec2.send(new DescribeImagesCommand({ ImageIds: [ImageId!] })))).toMatchObject({ name: 'InvalidAMIID.NotFound' });
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snap }));
    expect(await failure(ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snap] })))).toMatchObject({ name: 'InvalidSnapshot.NotFound', message: `The snapshot '${snap}' does not exist.` });
    // DeleteAssociatedSnapshots removes them with the AMI
    const other = await snapshot();
    const second = await ec2.send(new RegisterImageCommand(registration(other)));
    const gone = await ec2.send(new DeregisterImageCommand({ ImageId: second.ImageId, DeleteAssociatedSnapshots: true }));
    expect(gone.DeleteSnapshotResults).toEqual([{ SnapshotId: other, ReturnCode: 'success' }]);
    expect(fake.state.snapshots.has(other)).toBe(false);
  });

  it('CreateTags and DescribeTags on AMIs and snapshots, with EC2\'s limits', async () => {
    const snap = await snapshot();
    const { ImageId } = await ec2.send(new RegisterImageCommand(registration(snap)));
    await ec2.send(new CreateTagsCommand({ Resources: [ImageId!, snap], Tags: [{ Key: 'aim:name', Value: 'nginx' }, { Key: 'empty' }] }));
    const tags = await ec2.send(new DescribeTagsCommand({ Filters: [{ Name: 'resource-id', Values: [ImageId!, snap] }] }));
    expect(tags.Tags!.map((t) => [t.ResourceId, t.ResourceType, t.Key, t.Value]).sort()).toEqual(
      [
        [ImageId, 'image', 'aim:name', 'nginx'],
        [ImageId, 'image', 'empty', ''],
        [snap, 'snapshot', 'aim:name', 'nginx'],
        [snap, 'snapshot', 'empty', ''],
      ].sort(),
    );
    expect(await failure(ec2.send(new CreateTagsCommand({ Resources: [ImageId!], Tags: [{ Key: 'aws:x', Value: '1' }] })))).toMatchObject({ name: 'InvalidParameterValue' });
    const many = Array.from({ length: 49 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
    expect(await failure(ec2.send(new CreateTagsCommand({ Resources: [ImageId!], Tags: many })))).toMatchObject({ name: 'TagLimitExceeded' });
    expect(await failure(ec2.send(new CreateTagsCommand({ Resources: ['ami-0123456789abcdef0'], Tags: [{ Key: 'a', Value: 'b' }] })))).toMatchObject({ name: 'InvalidAMIID.NotFound' });
    expect(await failure(ec2.send(new CreateTagsCommand({ Resources: ['nope-1'], Tags: [{ Key: 'a', Value: 'b' }] })))).toMatchObject({ name: 'InvalidID' });
  });
});

describe('CopyImage, sharing and regions', () => {
  it('CopyImage into another region: idempotent by ClientToken, IdempotentParameterMismatch on other parameters', async () => {
    const snap = await snapshot();
    const input = registration(snap, { TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'aim:name', Value: 'web' }] }] });
    const { ImageId } = await ec2.send(new RegisterImageCommand(input));
    await waitUntilImageAvailable({ client: ec2, maxWaitTime: 30, minDelay: 1 }, { ImageIds: [ImageId!] });
    const west = fakeClients(fake, 'eu-west-1').ec2;
    const copy = { SourceImageId: ImageId, SourceRegion: 'us-east-1', Name: input.Name, ClientToken: 'aim-copy-1', CopyImageTags: true };
    const first = await west.send(new CopyImageCommand(copy));
    const second = await west.send(new CopyImageCommand(copy));
    expect(second.ImageId).toBe(first.ImageId);
    expect(await failure(west.send(new CopyImageCommand({ ...copy, Name: 'another name' })))).toMatchObject({ name: 'IdempotentParameterMismatch' });
    await waitUntilImageAvailable({ client: west, maxWaitTime: 30, minDelay: 1 }, { ImageIds: [first.ImageId!] });
    const copied = (await west.send(new DescribeImagesCommand({ ImageIds: [first.ImageId!] }))).Images![0]!;
    expect(copied).toMatchObject({ SourceImageId: ImageId, SourceImageRegion: 'us-east-1', BootMode: 'uefi', EnaSupport: true, Tags: [{ Key: 'aim:name', Value: 'web' }] });
    const copiedSnap = copied.BlockDeviceMappings![0]!.Ebs!.SnapshotId!;
    expect(copiedSnap).not.toBe(snap);
    // AMIs and snapshots live in their region
    expect(await failure(ec2.send(new DescribeImagesCommand({ ImageIds: [first.ImageId!] })))).toMatchObject({ name: 'InvalidAMIID.NotFound' });
    expect((await west.send(new DescribeSnapshotsCommand({ SnapshotIds: [copiedSnap] }))).Snapshots![0]!.State).toBe('completed');
    expect(await failure(west.send(new CopyImageCommand({ ...copy, ClientToken: 'aim-copy-2', SourceRegion: 'xx-fake-1' })))).toMatchObject({ name: 'InvalidParameterValue' });
  });

  it('ModifyImageAttribute shares an AMI with accounts or makes it public (unless block public access is on)', async () => {
    const snap = await snapshot();
    const { ImageId } = await ec2.send(new RegisterImageCommand(registration(snap)));
    await ec2.send(new ModifyImageAttributeCommand({ ImageId, LaunchPermission: { Add: [{ UserId: '210987654321' }] } }));
    await ec2.send(new ModifyImageAttributeCommand({ ImageId, LaunchPermission: { Add: [{ Group: 'all' }] } }));
    const attr = await ec2.send(new DescribeImageAttributeCommand({ ImageId, Attribute: 'launchPermission' }));
    expect(attr.LaunchPermissions).toEqual([{ Group: 'all' }, { UserId: '210987654321' }]);
    expect((await ec2.send(new DescribeImagesCommand({ ImageIds: [ImageId!] }))).Images![0]!.Public).toBe(true);
    expect(await failure(ec2.send(new ModifyImageAttributeCommand({ ImageId, LaunchPermission: { Add: [{ UserId: 'bob' }] } })))).toMatchObject({ name: 'InvalidAMIAttributeItemValue' });
    fake.state.blockPublicAmiSharing = true;
    try {
      const other = await ec2.send(new RegisterImageCommand(registration(snap)));
      expect(await failure(ec2.send(new ModifyImageAttributeCommand({ ImageId: other.ImageId, LaunchPermission: { Add: [{ Group: 'all' }] } })))).toMatchObject({ name: 'OperationNotPermitted' });
    } finally {
      fake.state.blockPublicAmiSharing = false;
    }
  });

  it('DescribeRegions: an unknown region is InvalidParameterValue; requests signed for a region not enabled are AuthFailure', async () => {
    expect(await failure(ec2.send(new DescribeRegionsCommand({ RegionNames: ['us-east-1', 'xx-fake-1'] })))).toMatchObject({ name: 'InvalidParameterValue', status: 400, message: 'Invalid region: [xx-fake-1]' });
    const enabled = await ec2.send(new DescribeRegionsCommand({}));
    expect(enabled.Regions!.map((r) => r.RegionName)).toContain('eu-west-1');
    expect(enabled.Regions!.map((r) => r.RegionName)).not.toContain('af-south-1');
    const all = await ec2.send(new DescribeRegionsCommand({ AllRegions: true, Filters: [{ Name: 'opt-in-status', Values: ['not-opted-in'] }] }));
    expect(all.Regions!.map((r) => r.RegionName)).toContain('af-south-1');
    expect(all.Regions![0]!.Endpoint).toMatch(/^ec2\.[a-z0-9-]+\.amazonaws\.com$/);
    const optIn = fakeClients(fake, 'af-south-1', { maxAttempts: 1 }).ec2;
    expect(await failure(optIn.send(new DescribeRegionsCommand({})))).toMatchObject({ name: 'AuthFailure', status: 401 });
  });
});

describe('RunInstances checks the AMI against the instance type as EC2 does', () => {
  it('ENA, architecture, boot mode, unknown types and key pairs; then capacity', async () => {
    const snap = await snapshot();
    const uefi = (await ec2.send(new RegisterImageCommand(registration(snap)))).ImageId!;
    const noEna = (await ec2.send(new RegisterImageCommand(registration(snap, { EnaSupport: false })))).ImageId!;
    const legacy = (await ec2.send(new RegisterImageCommand(registration(snap, { BootMode: undefined, ImdsSupport: undefined })))).ImageId!;
    await waitUntilImageAvailable({ client: ec2, maxWaitTime: 30, minDelay: 1 }, { ImageIds: [uefi, noEna, legacy] });
    const run = (ImageId: string, InstanceType: string, extra: Record<string, unknown> = {}) => failure(ec2.send(new RunInstancesCommand({ ImageId, InstanceType: InstanceType as never, MinCount: 1, MaxCount: 1, ...extra })));
    expect(await run(noEna, 't3.micro')).toMatchObject({
      name: 'InvalidParameterCombination',
      message: "Enhanced networking with the Elastic Network Adapter (ENA) is required for the 't3.micro' instance type. Ensure that you are using an AMI that is enabled for ENA.",
    });
    expect((await run(uefi, 't4g.micro')).message).toMatch(/^The architecture 'arm64' of the specified instance type does not match the architecture 'x86_64' of the specified AMI/);
    expect(await run(uefi, 'x9.huge')).toMatchObject({ name: 'InvalidParameterValue', message: 'The following supplied instance types do not exist: [x9.huge]' });
    expect(await run(uefi, 't2.micro')).toMatchObject({ name: 'InvalidParameterCombination' });
    expect(await run(uefi, 't3.micro', { KeyName: 'nobody' })).toMatchObject({ name: 'InvalidKeyPair.NotFound' });
    // a valid launch: this fake has no capacity, as a zone sometimes has none
    expect(await run(uefi, 't3.micro')).toMatchObject({ name: 'InsufficientInstanceCapacity', status: 500, attempts: 3 });
    expect(await run(legacy, 't2.micro')).toMatchObject({ name: 'InsufficientInstanceCapacity' });
    expect(await failure(ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })))).toMatchObject({ name: 'InvalidInstanceID.NotFound', message: "The instance ID 'i-0123456789abcdef0' does not exist" });
    expect((await ec2.send(new DescribeInstancesCommand({}))).Reservations).toEqual([]);
  });
});

describe('EC2 protocol faults', () => {
  it('RequestLimitExceeded (503) and Throttling (400) are retried by the SDK; without retries they reach the caller', async () => {
    const limit = fake.ec2.faults.add({ action: 'DescribeRegions', times: 2, effect: { kind: 'throttle' } });
    const r = await ec2.send(new DescribeRegionsCommand({}));
    expect(limit.hits).toBe(2);
    expect(r.$metadata.attempts).toBe(3);
    fake.ec2.faults.add({ action: 'DescribeRegions', times: 1, effect: { kind: 'throttle', code: 'Throttling' } });
    expect((await ec2.send(new DescribeRegionsCommand({}))).$metadata.attempts).toBe(2);
    fake.ec2.faults.add({ action: 'DescribeRegions', times: 1, effect: { kind: 'server-error' } });
    expect((await ec2.send(new DescribeRegionsCommand({}))).$metadata.attempts).toBe(2);
    const once = fakeClients(fake, 'us-east-1', { maxAttempts: 1 }).ec2;
    fake.ec2.faults.add({ action: 'DescribeRegions', effect: { kind: 'throttle' } });
    expect(await failure(once.send(new DescribeRegionsCommand({})))).toMatchObject({ name: 'RequestLimitExceeded', status: 503 });
    fake.ec2.faults.add({ action: 'DescribeRegions', effect: { kind: 'server-error', status: 503 } });
    expect(await failure(once.send(new DescribeRegionsCommand({})))).toMatchObject({ name: 'Unavailable', status: 503 });
    const traffic = fake.traffic().ec2.actions.DescribeRegions!;
    expect(traffic.failed).toBeGreaterThanOrEqual(6);
  });

  it('a per-action delay holds the answer back; a connection dropped after RegisterImage took effect leaves the AMI and a retry finds the name taken', async () => {
    fake.ec2.faults.add({ action: 'DescribeRegions', effect: { kind: 'delay', ms: 400 } });
    const t0 = Date.now();
    await ec2.send(new DescribeRegionsCommand({}));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    const snap = await snapshot();
    const input = registration(snap);
    fake.ec2.faults.add({ action: 'RegisterImage', effect: { kind: 'drop', when: 'after' } });
    const lost = await failure(ec2.send(new RegisterImageCommand(input)));
    // the SDK retried the dropped call: the AMI the first call made holds the name
    expect(lost.name).toBe('InvalidAMIName.Duplicate');
    const mine = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [input.Name!] }] }));
    expect(mine.Images).toHaveLength(1);
  });

  it('checks the shape of SigV4 and of the Query request', async () => {
    expect(await rawEc2({ Action: 'DescribeRegions' }, { auth: false })).toMatchObject({ status: 400, code: 'MissingParameter', message: 'The request must contain the parameter AWSAccessKeyId' });
    expect(await rawEc2({ Action: 'DescribeRegions' }, { service: 's3' })).toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });
    expect(await rawEc2({ Action: 'DescribeRegions' })).toMatchObject({ status: 200 });
    expect(await rawEc2({ Action: 'FlyToTheMoon' })).toMatchObject({ status: 400, code: 'InvalidAction' });
    expect(await rawEc2({ Action: 'DescribeImages', 'Owner.1': 'self', Bogus: '1' })).toMatchObject({ code: 'UnknownParameter', message: 'The parameter Bogus is not recognized' });
    expect(await rawEc2({ Action: 'RegisterImage', Name: 'abc', EnaSupport: 'yes' })).toMatchObject({ code: 'InvalidParameterValue' });
    expect(await rawEc2({ Action: 'DescribeRegions', DryRun: 'true' })).toMatchObject({ status: 412, code: 'DryRunOperation' });
    const ok = await rawEc2({ Action: 'DescribeRegions', 'RegionName.1': 'eu-west-1' });
    expect(ok.text).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<DescribeRegionsResponse xmlns="http:\/\/ec2.amazonaws.com\/doc\/2016-11-15\/"><requestId>[0-9a-f-]{36}<\/requestId><regionInfo><item>/);
    expect(ok.text).toContain('<regionName>eu-west-1</regionName><regionEndpoint>ec2.eu-west-1.amazonaws.com</regionEndpoint>');
  });
});
