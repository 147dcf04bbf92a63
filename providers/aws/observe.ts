import { DescribeImageAttributeCommand, DescribeRegionsCommand } from '@aws-sdk/client-ec2';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { AimError, ExitCode, type ProviderContext, type ShipTarget } from '../../src/api/provider.js';
import { ownImages, type AmiInfo } from './ami.js';
import { calling } from './aws-errors.js';
import { awsClients, resolveCredentials } from './clients.js';
import type { EncodedBlockMap } from './disk-blocks.js';
import { describeSnapshot } from './ebs-snapshot.js';
import { amiName, TAG } from './names.js';
import type { AwsOptions } from './options.js';
import { checkRegions, partitionHome } from './region.js';
import { lineageOf, settingsOf } from './settings.js';
import { KIND, type SnapshotData } from './resources.js';
import { errorCode } from './retry.js';

/** The snapshot a new version can build on: the newest AMI of the lineage whose snapshot's block map aim recorded. */
export interface ObservedParent {
  amiId: string;
  snapshotId: string;
  volumeGiB: number;
  blocks: EncodedBlockMap;
  fullyWritten: boolean;
  encrypted: boolean;
  imageRef: string;
}

export interface AwsObserved {
  region: string;
  lineage: string;
  amiName: string;
  /** This ship's AMI (found by its idempotency-key tag) in the region, if it exists. */
  existing?: AmiInfo;
  /** Per copy region: this ship's copy there, if it exists. */
  copies: Record<string, AmiInfo | undefined>;
  /** Account ids (and "all") the existing AMI is launchable by. */
  launchPermissions: string[];
  parent?: ObservedParent;
}

/**
 * Reads what AWS holds before anything is built: credentials work, the regions exist and are
 * enabled, this ship's AMI and copies (by their idempotency-key tag), the lineage's newest AMI with
 * a recorded block map (the parent of an incremental upload), and for the import path the bucket.
 */
export async function observeAws(target: ShipTarget<AwsOptions>, ctx: ProviderContext): Promise<AwsObserved> {
  const o = target.options;
  const settings = settingsOf(o, ctx.env);
  const region = settings.region;
  const lineage = lineageOf(o, target.image);
  const clients = awsClients(settings, ctx.env);
  const signal = ctx.signal;
  try {
    await resolveCredentials(clients);
    const home = awsClients(settings, ctx.env, partitionHome(region));
    try {
      const known = await calling('list the AWS regions', () => home.ec2.send(new DescribeRegionsCommand({ AllRegions: true }), { abortSignal: signal }));
      checkRegions([region, ...o['copy-to-regions']], (known.Regions ?? []).map((r) => ({ name: r.RegionName ?? '', ...(r.OptInStatus ? { optIn: r.OptInStatus } : {}) })));
    } finally {
      home.destroy();
    }
    const byKey = [{ Name: `tag:${TAG.key}`, Values: [target.key] }];
    const existing = (await ownImages(clients.ec2, region, byKey, signal)).find((i) => i.state === 'available' || i.state === 'pending');
    const copies: Record<string, AmiInfo | undefined> = {};
    for (const r of o['copy-to-regions']) {
      const there = awsClients(settings, ctx.env, r);
      try {
        copies[r] = (await ownImages(there.ec2, r, byKey, signal)).find((i) => i.state === 'available' || i.state === 'pending');
      } finally {
        there.destroy();
      }
    }
    let launchPermissions: string[] = [];
    if (existing && (o.public || o.share.length > 0)) {
      const attr = await calling(`read the launch permissions of ${existing.id}`, () => clients.ec2.send(new DescribeImageAttributeCommand({ ImageId: existing.id, Attribute: 'launchPermission' }), { abortSignal: signal }));
      launchPermissions = (attr.LaunchPermissions ?? []).map((p) => p.UserId ?? p.Group ?? '');
    }
    const parent = existing || o.via !== 'ebs' ? undefined : await findParent(target, clients.ec2, region, lineage, o.encrypted, signal);
    if (o.via === 'import-snapshot') await checkBucket(clients.s3, o.bucket!, signal);
    return { region, lineage, amiName: amiName(lineage, target.image.id), ...(existing ? { existing } : {}), copies, launchPermissions, ...(parent ? { parent } : {}) };
  } finally {
    clients.destroy();
  }
}

async function findParent(target: ShipTarget<AwsOptions>, ec2: ReturnType<typeof awsClients>['ec2'], region: string, lineage: string, encrypted: boolean, signal: AbortSignal): Promise<ObservedParent | undefined> {
  const recorded = (await target.earlier(KIND.snapshot)).filter((r) => r.location === region && (r.data as SnapshotData).blocks && (r.data as SnapshotData).completed);
  if (recorded.length === 0) return undefined;
  const amis = await ownImages(ec2, region, [{ Name: `tag:${TAG.name}`, Values: [lineage] }, { Name: 'state', Values: ['available'] }], signal);
  for (const ami of amis) {
    const r = recorded.find((x) => x.id === ami.rootSnapshotId);
    if (!r) continue;
    const d = r.data as SnapshotData;
    if (d.encrypted !== encrypted) continue;
    const snap = await calling(`look up snapshot ${r.id}`, () => describeSnapshot(ec2, r.id, signal));
    if (snap?.state !== 'completed') continue;
    return { amiId: ami.id, snapshotId: r.id, volumeGiB: d.volumeGiB, blocks: d.blocks!, fullyWritten: d.fullyWritten, encrypted: d.encrypted, imageRef: r.imageRef };
  }
  return undefined;
}

async function checkBucket(s3: ReturnType<typeof awsClients>['s3'], bucket: string, signal: AbortSignal): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal });
  } catch (e) {
    const code = errorCode(e);
    if (code === 'NotFound' || code === 'NoSuchBucket') {
      throw new AimError('E_AWS_BUCKET', `the S3 bucket ${bucket} does not exist`, ExitCode.usage, { hint: `create it in the AMI's region (aws s3 mb s3://${bucket}), or give another --bucket` });
    }
    await calling(`reach the S3 bucket ${bucket}`, () => Promise.reject(e), { bucket });
  }
}
