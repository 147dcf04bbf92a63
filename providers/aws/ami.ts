import {
  CopyImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  ModifyImageAttributeCommand,
  RegisterImageCommand,
  type EC2Client,
  type Filter,
  type Image,
} from '@aws-sdk/client-ec2';
import { ProviderError } from '../../src/lib/errors.js';
import { calling } from './aws-errors.js';
import { TAG } from './names.js';
import { errorCode, pollUntil } from './retry.js';

/** An AMI as aim needs to know it. */
export interface AmiInfo {
  id: string;
  name: string;
  state: string;
  region: string;
  created: string;
  snapshotIds: string[];
  rootSnapshotId?: string;
  tags: Record<string, string>;
  public: boolean;
  stateReason?: string;
}

const tagsOf = (tags: { Key?: string; Value?: string }[] | undefined) => Object.fromEntries((tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));

function info(image: Image, region: string): AmiInfo {
  const snapshotIds = (image.BlockDeviceMappings ?? []).flatMap((m) => (m.Ebs?.SnapshotId ? [m.Ebs.SnapshotId] : []));
  const root = (image.BlockDeviceMappings ?? []).find((m) => m.DeviceName === image.RootDeviceName)?.Ebs?.SnapshotId;
  return {
    id: image.ImageId ?? '',
    name: image.Name ?? '',
    state: image.State ?? 'unknown',
    region,
    created: image.CreationDate ?? '',
    snapshotIds,
    ...(root ? { rootSnapshotId: root } : {}),
    tags: tagsOf(image.Tags),
    public: image.Public === true,
    ...(image.StateReason?.Message ? { stateReason: image.StateReason.Message } : {}),
  };
}

/** The account's own AMIs in the client's region matching the filters (every page), newest first. */
export async function ownImages(ec2: EC2Client, region: string, filters: Filter[], signal?: AbortSignal): Promise<AmiInfo[]> {
  const out: AmiInfo[] = [];
  let token: string | undefined;
  do {
    const page = await calling(`list AMIs in ${region}`, () => ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters, MaxResults: 1000, ...(token ? { NextToken: token } : {}) }), { abortSignal: signal }));
    out.push(...(page.Images ?? []).map((i) => info(i, region)));
    token = page.NextToken;
  } while (token);
  return out.sort((a, b) => b.created.localeCompare(a.created));
}

/** One of the account's AMIs by id, or undefined when it is gone. */
export async function ownImage(ec2: EC2Client, region: string, id: string, signal?: AbortSignal): Promise<AmiInfo | undefined> {
  try {
    const page = await ec2.send(new DescribeImagesCommand({ ImageIds: [id], Owners: ['self'] }), { abortSignal: signal });
    const image = page.Images?.[0];
    return image ? info(image, region) : undefined;
  } catch (e) {
    if (/^InvalidAMIID\.(NotFound|Unavailable)$/.test(errorCode(e) ?? '')) return undefined;
    throw e;
  }
}

export interface RegisterInput {
  name: string;
  description: string;
  snapshotId: string;
  architecture: 'x86_64' | 'arm64';
  bootMode: 'uefi' | 'legacy-bios' | 'uefi-preferred';
  tpm: boolean;
  /** Tags on the AMI and its snapshot (aim's and the user's). */
  tags: Record<string, string>;
  /** The idempotency key: an AMI of this name that carries it is this publication's own. */
  key: string;
}

export const ROOT_DEVICE = '/dev/xvda';

/**
 * RegisterImage: an HVM AMI booting the snapshot as its root device, with ENA, the boot mode,
 * IMDSv2 only, optional NitroTPM, and the tags on both AMI and snapshot. RegisterImage has no
 * client token: when the name is taken (a retry whose answer was lost, or an interrupted run),
 * the AMI of that name is this publication's if it carries the idempotency key, and is adopted.
 */
export async function registerImage(ec2: EC2Client, region: string, input: RegisterInput, signal: AbortSignal): Promise<{ id: string; adopted: boolean }> {
  const tagSet = Object.entries(input.tags).map(([Key, Value]) => ({ Key, Value }));
  try {
    const answer = await ec2.send(
      new RegisterImageCommand({
        Name: input.name,
        Description: input.description,
        Architecture: input.architecture,
        VirtualizationType: 'hvm',
        BootMode: input.bootMode,
        EnaSupport: true,
        ImdsSupport: 'v2.0',
        ...(input.tpm ? { TpmSupport: 'v2.0' } : {}),
        RootDeviceName: ROOT_DEVICE,
        BlockDeviceMappings: [{ DeviceName: ROOT_DEVICE, Ebs: { SnapshotId: input.snapshotId, DeleteOnTermination: true, VolumeType: 'gp3' } }],
        TagSpecifications: [
          { ResourceType: 'image', Tags: tagSet },
          { ResourceType: 'snapshot', Tags: tagSet },
        ],
      }),
      { abortSignal: signal },
    );
    if (!answer.ImageId) throw new ProviderError('RegisterImage answered without an image id');
    return { id: answer.ImageId, adopted: false };
  } catch (e) {
    if (errorCode(e) !== 'InvalidAMIName.Duplicate') return calling(`register AMI ${input.name} in ${region}`, () => Promise.reject(e));
    const [taken] = await ownImages(ec2, region, [{ Name: 'name', Values: [input.name] }], signal);
    if (taken && taken.tags[TAG.key] === input.key) return { id: taken.id, adopted: true };
    throw new ProviderError(`the AMI name "${input.name}" is taken in ${region}${taken ? ` by ${taken.id}, which aim did not make for this ship` : ''}`, {
      hint: 'give another --name, or deregister that AMI',
    });
  }
}

/** Waits until the AMI is available; failed becomes a ProviderError with AWS's reason. */
export async function waitImageAvailable(ec2: EC2Client, region: string, id: string, signal: AbortSignal, timeoutMs = 30 * 60_000): Promise<AmiInfo> {
  const settled = await calling(`wait for AMI ${id}`, () =>
    pollUntil(
      async () => {
        const i = await ownImage(ec2, region, id, signal);
        return i && i.state !== 'pending' ? i : undefined;
      },
      { timeoutMs, firstMs: 200, maxMs: 15_000, signal },
    ),
  );
  if (!settled) throw new ProviderError(`AMI ${id} in ${region} is still pending after ${Math.round(timeoutMs / 60_000)} minutes`, { hint: 'aim ship resume <publication> waits again' });
  if (settled.state !== 'available') throw new ProviderError(`AMI ${id} in ${region} is ${settled.state}: ${settled.stateReason ?? 'no reason given'}`);
  return settled;
}

/** CopyImage into the client's region (idempotent by its client token); the copy gets the same tags. */
export async function copyImage(ec2: EC2Client, input: { region: string; sourceRegion: string; sourceImageId: string; name: string; description: string; clientToken: string; tags: Record<string, string> }, signal: AbortSignal): Promise<string> {
  const tagSet = Object.entries(input.tags).map(([Key, Value]) => ({ Key, Value }));
  const answer = await calling(`copy AMI ${input.sourceImageId} to ${input.region}`, () =>
    ec2.send(
      new CopyImageCommand({
        SourceRegion: input.sourceRegion,
        SourceImageId: input.sourceImageId,
        Name: input.name,
        Description: input.description,
        ClientToken: input.clientToken,
        TagSpecifications: [
          { ResourceType: 'image', Tags: tagSet },
          { ResourceType: 'snapshot', Tags: tagSet },
        ],
      }),
      { abortSignal: signal },
    ),
  );
  if (!answer.ImageId) throw new ProviderError('CopyImage answered without an image id');
  return answer.ImageId;
}

/** Launch permissions: public (group all) and/or accounts. Adding one that is there is a no-op in EC2. */
export async function shareImage(ec2: EC2Client, id: string, share: { public: boolean; accounts: readonly string[] }, signal: AbortSignal): Promise<void> {
  const add = [...(share.public ? [{ Group: 'all' as const }] : []), ...share.accounts.map((UserId) => ({ UserId }))];
  if (add.length === 0) return;
  await calling(`share AMI ${id}`, () => ec2.send(new ModifyImageAttributeCommand({ ImageId: id, LaunchPermission: { Add: add } }), { abortSignal: signal }));
}

/** Tags a resource (a snapshot an import made). */
export async function tagResource(ec2: EC2Client, id: string, tags: Record<string, string>, signal: AbortSignal): Promise<void> {
  await calling(`tag ${id}`, () => ec2.send(new CreateTagsCommand({ Resources: [id], Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }), { abortSignal: signal }));
}

/**
 * Deregisters an AMI and deletes its snapshots (those no other AMI uses). Gone already is fine.
 * Returns what was removed and the snapshots kept because another AMI uses them.
 */
export async function removeImage(ec2: EC2Client, region: string, id: string, signal: AbortSignal): Promise<{ removed: boolean; snapshots: string[]; kept: string[] }> {
  const image = await calling(`look up AMI ${id}`, () => ownImage(ec2, region, id, signal));
  if (!image) return { removed: false, snapshots: [], kept: [] };
  await calling(`deregister AMI ${id}`, () => ec2.send(new DeregisterImageCommand({ ImageId: id }), { abortSignal: signal }));
  const snapshots: string[] = [];
  const kept: string[] = [];
  for (const s of image.snapshotIds) {
    const outcome = await deleteSnapshot(ec2, s, signal);
    (outcome === 'in use' ? kept : snapshots).push(s);
  }
  return { removed: true, snapshots, kept };
}

/** Deletes a snapshot; gone already is fine, one that an AMI still uses is kept. */
export async function deleteSnapshot(ec2: EC2Client, id: string, signal: AbortSignal): Promise<'deleted' | 'gone' | 'in use'> {
  try {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }), { abortSignal: signal });
    return 'deleted';
  } catch (e) {
    const code = errorCode(e);
    if (code === 'InvalidSnapshot.NotFound') return 'gone';
    if (code === 'InvalidSnapshot.InUse') return 'in use';
    return calling(`delete snapshot ${id}`, () => Promise.reject(e));
  }
}
