import { AWS_REGIONS, newId, type AwsState, type BlockDeviceMapping, type ImageRecord, type SnapshotRecord } from './aws-state.js';
import { checkId, Ec2Error, invalidValue, missingParameter } from './ec2-error.js';
import { matchesFilters, page, type Filter } from './ec2-filters.js';
import type { Ec2Call, Ec2Handler } from './ec2-server.js';
import { addTags, tagSet, tagSpecifications, type TagSpecificationInput } from './ec2-tags.js';

/**
 * AMIs: RegisterImage (EBS-backed, from snapshots), DescribeImages, DeregisterImage, CopyImage,
 * ModifyImageAttribute and DescribeImageAttribute. RegisterImage has no ClientToken in the EC2 API
 * (the model has none; a ClientToken parameter is UnknownParameter): an AMI name is unique per
 * account and region, and a second RegisterImage of a name answers InvalidAMIName.Duplicate.
 */

export interface ImageOptions {
  /** Milliseconds a registered AMI stays "pending" before "available". */
  registerDelayMs: number;
  /** Milliseconds a CopyImage takes before the copy is "available". */
  copyDelayMs: number;
}

const ARCHITECTURES = ['i386', 'x86_64', 'arm64', 'x86_64_mac', 'arm64_mac'];
const BOOT_MODES = ['legacy-bios', 'uefi', 'uefi-preferred'];
const VOLUME_TYPES = ['standard', 'io1', 'io2', 'gp2', 'gp3', 'sc1', 'st1'];
const AMI_NAME = /^[A-Za-z0-9()[\] ./\-'@_]{3,128}$/;

export function checkAmiName(name: string | undefined, state: AwsState, region: string): string {
  if (name === undefined) throw missingParameter('Name');
  if (!AMI_NAME.test(name)) {
    throw new Ec2Error('InvalidAMIName.Malformed', "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_'");
  }
  const taken = [...state.images.values()].find((i) => i.region === region && i.ownerId === state.accountId && i.name === name);
  if (taken) throw new Ec2Error('InvalidAMIName.Duplicate', `AMI name ${name} is already in use by AMI ${taken.id}`);
  return name;
}

/** The image of a region the caller may use (its own, public, or shared with it). */
export function visibleImage(state: AwsState, region: string, id: string | undefined): ImageRecord {
  if (id === undefined) throw missingParameter('ImageId');
  checkId(id, 'ami', 'InvalidAMIID.Malformed');
  const image = state.images.get(id);
  if (!image || image.region !== region || !canLaunch(state, image)) throw new Ec2Error('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
  return image;
}

function canLaunch(state: AwsState, image: ImageRecord): boolean {
  return image.ownerId === state.accountId || image.public || image.launchPermissions.has(state.accountId);
}

function ownImage(state: AwsState, region: string, id: string | undefined): ImageRecord {
  const image = visibleImage(state, region, id);
  if (image.ownerId !== state.accountId) throw new Ec2Error('AuthFailure', `Not authorized for image:${image.id}`, 403);
  return image;
}

/** Checks an EBS block device mapping against the region's snapshots; fills in the sizes and types AWS fills in. */
function checkMappings(state: AwsState, region: string, mappings: BlockDeviceMapping[]): BlockDeviceMapping[] {
  const names = new Set<string>();
  return mappings.map((m) => {
    if (!m.DeviceName) throw missingParameter('BlockDeviceMapping.DeviceName');
    if (!/^(\/dev\/)?(sd[a-z][0-9]*|xvd[a-z]+[0-9]*|hd[a-z][0-9]*)$/.test(m.DeviceName)) throw new Ec2Error('InvalidBlockDeviceMapping', `Invalid device name ${m.DeviceName}`);
    if (names.has(m.DeviceName)) throw new Ec2Error('InvalidBlockDeviceMapping', `The device name ${m.DeviceName} is used more than once`);
    names.add(m.DeviceName);
    if (!m.Ebs) return m;
    const ebs = { ...m.Ebs };
    if (ebs.VolumeType !== undefined && !VOLUME_TYPES.includes(ebs.VolumeType)) throw invalidValue('volumeType', ebs.VolumeType);
    let snapshot: SnapshotRecord | undefined;
    if (ebs.SnapshotId !== undefined) {
      checkId(ebs.SnapshotId, 'snap', 'InvalidSnapshotID.Malformed');
      snapshot = state.snapshots.get(ebs.SnapshotId);
      if (!snapshot || snapshot.region !== region) throw new Ec2Error('InvalidSnapshot.NotFound', `The snapshot '${ebs.SnapshotId}' does not exist.`);
      if (snapshot.state !== 'completed') throw new Ec2Error('IncorrectState', `Snapshot '${snapshot.id}' is not 'completed' (it is ${snapshot.state})`);
      if (ebs.VolumeSize !== undefined && ebs.VolumeSize < snapshot.volumeSize) {
        throw new Ec2Error('InvalidBlockDeviceMapping', `Volume of size ${ebs.VolumeSize}GB is smaller than snapshot '${snapshot.id}', expect size >= ${snapshot.volumeSize}GB`);
      }
      if (ebs.Encrypted === false && snapshot.encrypted) throw new Ec2Error('InvalidBlockDeviceMapping', `The snapshot '${snapshot.id}' is encrypted; its volume cannot be unencrypted`);
    } else if (ebs.VolumeSize === undefined) {
      throw new Ec2Error('InvalidBlockDeviceMapping', `The block device mapping of ${m.DeviceName} needs a snapshot or a volume size`);
    }
    return {
      ...m,
      Ebs: {
        ...ebs,
        VolumeSize: ebs.VolumeSize ?? snapshot!.volumeSize,
        VolumeType: ebs.VolumeType ?? 'gp2',
        DeleteOnTermination: ebs.DeleteOnTermination ?? true,
        Encrypted: ebs.Encrypted ?? snapshot?.encrypted ?? false,
      },
    };
  });
}

export function describeImage(image: ImageRecord): Record<string, unknown> {
  return {
    ImageId: image.id,
    ImageLocation: `${image.ownerId}/${image.name}`,
    State: image.state,
    OwnerId: image.ownerId,
    CreationDate: image.creationDate.toISOString(),
    Public: image.public,
    Architecture: image.architecture,
    ImageType: 'machine',
    Name: image.name,
    ...(image.description === undefined ? {} : { Description: image.description }),
    RootDeviceType: 'ebs',
    RootDeviceName: image.rootDeviceName,
    BlockDeviceMappings: image.blockDeviceMappings,
    VirtualizationType: image.virtualizationType,
    Hypervisor: 'xen',
    EnaSupport: image.enaSupport,
    ...(image.sriovNetSupport ? { SriovNetSupport: image.sriovNetSupport } : {}),
    ...(image.bootMode ? { BootMode: image.bootMode } : {}),
    ...(image.tpmSupport ? { TpmSupport: image.tpmSupport } : {}),
    ...(image.imdsSupport ? { ImdsSupport: image.imdsSupport } : {}),
    ...(image.stateReason ? { StateReason: image.stateReason } : {}),
    ...(image.sourceImageId ? { SourceImageId: image.sourceImageId, SourceImageRegion: image.sourceRegion } : {}),
    PlatformDetails: 'Linux/UNIX',
    UsageOperation: 'RunInstances',
    DeregistrationProtection: 'disabled',
    Tags: tagSet(image.tags),
  };
}

function applySnapshotTags(state: AwsState, image: ImageRecord, tags: Map<string, string> | undefined): void {
  if (!tags) return;
  for (const m of image.blockDeviceMappings) {
    const s = m.Ebs?.SnapshotId ? state.snapshots.get(m.Ebs.SnapshotId) : undefined;
    if (s) addTags(s.tags, tags);
  }
}

/** ClientToken idempotency of EC2: the same token and parameters give the first answer again; other parameters are IdempotentParameterMismatch. */
export function idempotent<T>(state: AwsState, call: Ec2Call, token: string | undefined, run: () => T): T {
  if (token === undefined || token === '') return run();
  if (token.length > 64) throw invalidValue('clientToken', token, 'The client token must be at most 64 characters.');
  const { ClientToken: _, ...rest } = call.input as Record<string, unknown>;
  const fingerprint = JSON.stringify(rest);
  const key = `${call.region}/${call.action}/${token}`;
  const seen = state.clientTokens.get(key);
  if (seen) {
    if (seen.fingerprint !== fingerprint) throw new Ec2Error('IdempotentParameterMismatch', 'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).');
    return seen.result as T;
  }
  const result = run();
  state.clientTokens.set(key, { fingerprint, result });
  return result;
}

export function imageActions(state: AwsState, options: ImageOptions): Record<string, Ec2Handler> {
  const becomeAvailable = (image: ImageRecord, ms: number) => state.later(ms, () => {
    if (state.images.get(image.id) === image) image.state = 'available';
  });

  return {
    RegisterImage({ input, region }) {
      if (input.ImageLocation !== undefined) throw new Ec2Error('Unsupported', 'The fake EC2 registers EBS-backed AMIs only (no ImageLocation)');
      const name = checkAmiName(input.Name, state, region);
      const architecture = input.Architecture ?? 'i386';
      if (!ARCHITECTURES.includes(architecture)) throw invalidValue('architecture', architecture);
      if (input.BootMode !== undefined && !BOOT_MODES.includes(input.BootMode)) throw invalidValue('bootMode', input.BootMode);
      if (architecture.startsWith('arm64') && input.BootMode === 'legacy-bios') throw new Ec2Error('InvalidParameterCombination', 'The arm64 architecture supports the uefi boot mode only');
      if (input.TpmSupport !== undefined && input.TpmSupport !== 'v2.0') throw invalidValue('tpmSupport', input.TpmSupport);
      if (input.TpmSupport && input.BootMode !== 'uefi') throw new Ec2Error('InvalidParameterCombination', 'NitroTPM (TpmSupport v2.0) requires the uefi boot mode');
      if (input.ImdsSupport !== undefined && input.ImdsSupport !== 'v2.0') throw invalidValue('imdsSupport', input.ImdsSupport);
      const virtualizationType = input.VirtualizationType ?? 'paravirtual';
      if (!['hvm', 'paravirtual'].includes(virtualizationType)) throw invalidValue('virtualizationType', virtualizationType);
      if (input.EnaSupport === true && virtualizationType !== 'hvm') throw new Ec2Error('InvalidParameterCombination', 'Enhanced networking (ENA) requires the hvm virtualization type');
      if (input.SriovNetSupport !== undefined && input.SriovNetSupport !== 'simple') throw invalidValue('sriovNetSupport', input.SriovNetSupport);
      if (input.RootDeviceName === undefined) throw missingParameter('RootDeviceName');
      const mappings = checkMappings(state, region, (input.BlockDeviceMappings ?? []) as BlockDeviceMapping[]);
      const root = mappings.find((m) => m.DeviceName === input.RootDeviceName);
      if (!root?.Ebs?.SnapshotId) throw new Ec2Error('InvalidBlockDeviceMapping', `The root device ${String(input.RootDeviceName)} has no EBS snapshot in the block device mapping`);
      const tags = tagSpecifications(input.TagSpecifications as TagSpecificationInput[] | undefined, ['image', 'snapshot']);
      const image: ImageRecord = {
        id: newId('ami'),
        region,
        ownerId: state.accountId,
        name,
        ...(input.Description === undefined ? {} : { description: input.Description }),
        state: 'pending',
        architecture,
        ...(input.BootMode ? { bootMode: input.BootMode } : {}),
        ...(input.TpmSupport ? { tpmSupport: input.TpmSupport } : {}),
        ...(input.ImdsSupport ? { imdsSupport: input.ImdsSupport } : {}),
        enaSupport: input.EnaSupport === true,
        ...(input.SriovNetSupport ? { sriovNetSupport: input.SriovNetSupport } : {}),
        rootDeviceName: input.RootDeviceName,
        virtualizationType,
        blockDeviceMappings: mappings,
        creationDate: new Date(),
        public: false,
        launchPermissions: new Set(),
        tags: tags.get('image') ?? new Map(),
      };
      state.images.set(image.id, image);
      applySnapshotTags(state, image, tags.get('snapshot'));
      becomeAvailable(image, options.registerDelayMs);
      return { ImageId: image.id };
    },

    DescribeImages({ input, region }) {
      const ids = input.ImageIds as string[] | undefined;
      if (ids?.length && input.MaxResults !== undefined) throw new Ec2Error('InvalidParameterCombination', 'The parameter imageIdsSet cannot be used with the parameter maxResults');
      for (const id of ids ?? []) visibleImage(state, region, id);
      const owners = (input.Owners ?? []) as string[];
      const users = (input.ExecutableUsers ?? []) as string[];
      for (const o of owners) {
        if (!['self', 'amazon', 'aws-marketplace', 'aws-backup-vault'].includes(o) && !/^\d{12}$/.test(o)) throw new Ec2Error('InvalidUserID.Malformed', `Invalid user id: "${o}"`);
      }
      const images = [...state.images.values()].filter((i) => {
        if (i.region !== region || !canLaunch(state, i)) return false;
        if (ids?.length && !ids.includes(i.id)) return false;
        if (owners.length && !owners.some((o) => (o === 'self' ? i.ownerId === state.accountId : o === i.ownerId))) return false;
        if (users.length && !users.some((u) => (u === 'all' ? i.public : u === 'self' ? canLaunch(state, i) : i.launchPermissions.has(u) || i.public))) return false;
        return matchesFilters(input.Filters as Filter[] | undefined, i.tags, {
          name: () => i.name,
          'image-id': () => i.id,
          state: () => i.state,
          architecture: () => i.architecture,
          'is-public': () => i.public,
          'owner-id': () => i.ownerId,
          description: () => i.description,
          'root-device-name': () => i.rootDeviceName,
          'root-device-type': () => 'ebs',
          'virtualization-type': () => i.virtualizationType,
          'boot-mode': () => i.bootMode,
          'ena-support': () => i.enaSupport,
          'image-type': () => 'machine',
          hypervisor: () => 'xen',
          'block-device-mapping.snapshot-id': () => i.blockDeviceMappings.map((m) => m.Ebs?.SnapshotId),
          'block-device-mapping.device-name': () => i.blockDeviceMappings.map((m) => m.DeviceName),
        });
      });
      const p = page(images, input);
      return { Images: p.items.map(describeImage), ...(p.NextToken ? { NextToken: p.NextToken } : {}) };
    },

    DeregisterImage({ input, region }) {
      const image = ownImage(state, region, input.ImageId);
      state.images.delete(image.id);
      if (!input.DeleteAssociatedSnapshots) return { Return: true };
      const results = image.blockDeviceMappings.flatMap((m) => {
        const id = m.Ebs?.SnapshotId;
        if (!id) return [];
        if (!state.snapshots.has(id)) return [{ SnapshotId: id, ReturnCode: 'client-error' }];
        if (state.imagesUsing(id).length) return [{ SnapshotId: id, ReturnCode: 'skipped' }];
        state.snapshots.delete(id);
        return [{ SnapshotId: id, ReturnCode: 'success' }];
      });
      return { Return: true, DeleteSnapshotResults: results };
    },

    CopyImage(call) {
      const { input, region } = call;
      if (input.SourceRegion === undefined) throw missingParameter('SourceRegion');
      if (input.SourceImageId === undefined) throw missingParameter('SourceImageId');
      if (AWS_REGIONS[input.SourceRegion] === undefined || !state.regionEnabled(input.SourceRegion)) throw new Ec2Error('InvalidParameterValue', `Invalid region: [${input.SourceRegion}]`);
      return idempotent(state, call, input.ClientToken, () => {
        const source = visibleImage(state, input.SourceRegion, input.SourceImageId);
        if (source.state !== 'available') throw new Ec2Error('IncorrectState', `The image '${source.id}' is not available (it is ${source.state})`);
        const name = checkAmiName(input.Name, state, region);
        const tags = tagSpecifications(input.TagSpecifications as TagSpecificationInput[] | undefined, ['image', 'snapshot']);
        const encrypt = input.Encrypted === true;
        const mappings = source.blockDeviceMappings.map((m) => {
          const from = m.Ebs?.SnapshotId ? state.snapshots.get(m.Ebs.SnapshotId) : undefined;
          if (!from) return m;
          const id = newId('snap');
          const copy: SnapshotRecord = {
            ...from,
            id,
            region,
            state: 'completed',
            sealing: false,
            description: `Copied for DestinationAmi ${'(pending)'} from SourceAmi ${source.id} for SourceSnapshot ${from.id}.`,
            startTime: new Date(),
            completionTime: new Date(),
            encrypted: from.encrypted || encrypt,
            ...(from.encrypted || encrypt ? { kmsKeyArn: input.KmsKeyId ?? from.kmsKeyArn ?? `arn:aws:kms:${region}:${state.accountId}:key/aws-ebs-default` } : {}),
            parentId: undefined,
            lineage: id,
            blocks: new Map(from.blocks),
            written: new Set(from.blocks.keys()),
            origin: 'copy',
            tags: new Map(),
          };
          state.snapshots.set(id, copy);
          return { ...m, Ebs: { ...m.Ebs, SnapshotId: id, Encrypted: copy.encrypted } };
        });
        const image: ImageRecord = {
          ...source,
          id: newId('ami'),
          region,
          ownerId: state.accountId,
          name,
          ...(input.Description === undefined ? {} : { description: input.Description }),
          state: 'pending',
          blockDeviceMappings: mappings,
          creationDate: new Date(),
          public: false,
          launchPermissions: new Set(),
          sourceImageId: source.id,
          sourceRegion: input.SourceRegion,
          tags: new Map(input.CopyImageTags ? source.tags : []),
        };
        for (const m of mappings) {
          const s = m.Ebs?.SnapshotId ? state.snapshots.get(m.Ebs.SnapshotId) : undefined;
          if (s) s.description = s.description?.replace('(pending)', image.id);
        }
        addTags(image.tags, tags.get('image') ?? new Map());
        state.images.set(image.id, image);
        applySnapshotTags(state, image, tags.get('snapshot'));
        becomeAvailable(image, options.copyDelayMs);
        return { ImageId: image.id };
      });
    },

    ModifyImageAttribute({ input, region }) {
      const image = ownImage(state, region, input.ImageId);
      const add: { Group?: string; UserId?: string }[] = [...(input.LaunchPermission?.Add ?? [])];
      const remove: { Group?: string; UserId?: string }[] = [...(input.LaunchPermission?.Remove ?? [])];
      if (input.Attribute !== undefined || input.OperationType !== undefined) {
        if (input.Attribute === 'description') image.description = input.Value ?? input.Description?.Value;
        else if (input.Attribute !== undefined && input.Attribute !== 'launchPermission') throw invalidValue('attribute', input.Attribute);
        if (input.Attribute === 'launchPermission' || input.OperationType !== undefined) {
          if (input.OperationType !== 'add' && input.OperationType !== 'remove') throw invalidValue('operationType', input.OperationType);
          const items = [...((input.UserGroups ?? []) as string[]).map((Group) => ({ Group })), ...((input.UserIds ?? []) as string[]).map((UserId) => ({ UserId }))];
          (input.OperationType === 'add' ? add : remove).push(...items);
        }
      }
      for (const p of [...add, ...remove]) {
        if (p.Group !== undefined && p.Group !== 'all') throw new Ec2Error('InvalidAMIAttributeItemValue', `Invalid attribute item value "${p.Group}" for group item type.`);
        if (p.UserId !== undefined && !/^\d{12}$/.test(p.UserId)) throw new Ec2Error('InvalidAMIAttributeItemValue', `Invalid attribute item value "${p.UserId}" for userId item type.`);
      }
      if (add.some((p) => p.Group === 'all') && state.blockPublicAmiSharing) {
        throw new Ec2Error('OperationNotPermitted', "You can't publicly share this image because block public access for AMIs is enabled for this account.");
      }
      for (const p of add) {
        if (p.Group === 'all') image.public = true;
        if (p.UserId) image.launchPermissions.add(p.UserId);
      }
      for (const p of remove) {
        if (p.Group === 'all') image.public = false;
        if (p.UserId) image.launchPermissions.delete(p.UserId);
      }
      if (input.Description?.Value !== undefined) image.description = input.Description.Value;
      if (input.ImdsSupport?.Value !== undefined) {
        if (input.ImdsSupport.Value !== 'v2.0') throw invalidValue('imdsSupport', input.ImdsSupport.Value);
        image.imdsSupport = 'v2.0';
      }
    },

    DescribeImageAttribute({ input, region }) {
      const image = ownImage(state, region, input.ImageId);
      const value = (v: string | undefined) => (v === undefined ? {} : { Value: v });
      switch (input.Attribute) {
        case 'launchPermission':
          return { ImageId: image.id, LaunchPermissions: [...(image.public ? [{ Group: 'all' }] : []), ...[...image.launchPermissions].map((UserId) => ({ UserId }))] };
        case 'description':
          return { ImageId: image.id, Description: value(image.description) };
        case 'bootMode':
          return { ImageId: image.id, BootMode: value(image.bootMode) };
        case 'tpmSupport':
          return { ImageId: image.id, TpmSupport: value(image.tpmSupport) };
        case 'imdsSupport':
          return { ImageId: image.id, ImdsSupport: value(image.imdsSupport) };
        case 'sriovNetSupport':
          return { ImageId: image.id, SriovNetSupport: value(image.sriovNetSupport) };
        case 'blockDeviceMapping':
          return { ImageId: image.id, BlockDeviceMappings: image.blockDeviceMappings };
        case undefined:
          throw missingParameter('Attribute');
        default:
          throw invalidValue('attribute', input.Attribute);
      }
    },
  };
}
