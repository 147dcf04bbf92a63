import { randomBytes } from 'node:crypto';
import type { BlockStore } from './block-store.js';

/**
 * The state the fake EC2 and EBS servers share: one account's snapshots, AMIs, import tasks,
 * instances, key pairs and tags, per region (as in AWS, every resource lives in one region). Blocks
 * are on disk in the BlockStore; everything else is in memory for the life of the fake.
 */

export type Tags = Map<string, string>;

/** Where a snapshot block comes from: its content, and the snapshot of the lineage that wrote it. */
export interface BlockRef {
  sha256: string;
  writer: string;
}

export interface SnapshotRecord {
  id: string;
  region: string;
  ownerId: string;
  /** EC2's view; an EBS-direct snapshot is "pending" until CompleteSnapshot has been processed. */
  state: 'pending' | 'completed' | 'error';
  stateMessage?: string;
  /** CompleteSnapshot was called (no more writes), the snapshot is being sealed. */
  sealing: boolean;
  volumeSize: number;
  description?: string;
  startTime: Date;
  completionTime?: Date;
  encrypted: boolean;
  kmsKeyArn?: string;
  parentId?: string;
  /** The id of the first snapshot of the lineage (shared by every snapshot started from it). */
  lineage: string;
  /** Every block of the volume that holds data: inherited from the parent, then written. */
  blocks: Map<number, BlockRef>;
  /** Indexes written by PutSnapshotBlock in this snapshot (what ChangedBlocksCount counts). */
  written: Set<number>;
  origin: 'ebs-direct' | 'import' | 'copy';
  /**
   * Set for a lineage that EBS StartSnapshot created encrypted: its unwritten blocks read back as
   * this key's noise, not zeros (coldsnap issue #395). Copies keep it, so they read the same data.
   */
  noiseKey?: string;
  /** EBS StartSnapshot: minutes after the last activity before a pending snapshot is cancelled. */
  timeoutMinutes: number;
  lastActivity: number;
  progress: number;
  tags: Tags;
}

export interface BlockDeviceMapping {
  DeviceName?: string;
  VirtualName?: string;
  NoDevice?: string;
  Ebs?: { SnapshotId?: string; VolumeSize?: number; VolumeType?: string; DeleteOnTermination?: boolean; Encrypted?: boolean; KmsKeyId?: string; Iops?: number; Throughput?: number };
}

export interface ImageRecord {
  id: string;
  region: string;
  ownerId: string;
  name: string;
  description?: string;
  state: 'pending' | 'available' | 'failed';
  stateReason?: { Code: string; Message: string };
  architecture: string;
  bootMode?: string;
  tpmSupport?: string;
  imdsSupport?: string;
  enaSupport: boolean;
  sriovNetSupport?: string;
  rootDeviceName: string;
  virtualizationType: string;
  blockDeviceMappings: BlockDeviceMapping[];
  creationDate: Date;
  public: boolean;
  launchPermissions: Set<string>;
  sourceImageId?: string;
  sourceRegion?: string;
  tags: Tags;
}

export interface ImportTaskRecord {
  id: string;
  region: string;
  description?: string;
  format: string;
  bucket: string;
  key: string;
  roleName: string;
  encrypted: boolean;
  kmsKeyId?: string;
  status: 'active' | 'completed' | 'deleting' | 'deleted';
  /** Every status the task entered after 'active', in order (what a poller may miss between two polls). */
  passed?: string[];
  statusMessage?: string;
  progress?: number;
  diskImageSize?: number;
  snapshotId?: string;
  tags: Tags;
}

export interface InstanceRecord {
  id: string;
  region: string;
  reservationId: string;
  imageId: string;
  instanceType: string;
  keyName?: string;
  state: { Code: number; Name: 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped' };
  stateReason?: { Code: string; Message: string };
  stateTransitionReason?: string;
  launchTime: Date;
  clientToken?: string;
  architecture: string;
  bootMode: 'uefi' | 'legacy-bios';
  httpTokens: 'required' | 'optional';
  userData?: string;
  shutdownBehavior: 'stop' | 'terminate';
  rootDeviceName: string;
  volumeId: string;
  privateIp: string;
  /** Host port on 127.0.0.1 → guest port, once QEMU runs. */
  forwards: { host: number; guest: number }[];
  /** Why the launch failed, when it did (assembly, QEMU). */
  error?: string;
  consoleLog?: string;
  tags: Tags;
}

export interface KeyPairRecord {
  id: string;
  region: string;
  name: string;
  publicKey: string;
  fingerprint: string;
  keyType: string;
  createTime: Date;
  tags: Tags;
}

/** Region name → whether the account may use it (opt-in regions are off unless enabled). */
export const AWS_REGIONS: Readonly<Record<string, 'opt-in-not-required' | 'not-opted-in'>> = {
  'us-east-1': 'opt-in-not-required', 'us-east-2': 'opt-in-not-required', 'us-west-1': 'opt-in-not-required', 'us-west-2': 'opt-in-not-required',
  'ca-central-1': 'opt-in-not-required', 'sa-east-1': 'opt-in-not-required',
  'eu-central-1': 'opt-in-not-required', 'eu-west-1': 'opt-in-not-required', 'eu-west-2': 'opt-in-not-required', 'eu-west-3': 'opt-in-not-required', 'eu-north-1': 'opt-in-not-required',
  'ap-south-1': 'opt-in-not-required', 'ap-southeast-1': 'opt-in-not-required', 'ap-southeast-2': 'opt-in-not-required',
  'ap-northeast-1': 'opt-in-not-required', 'ap-northeast-2': 'opt-in-not-required', 'ap-northeast-3': 'opt-in-not-required',
  'af-south-1': 'not-opted-in', 'ap-east-1': 'not-opted-in', 'ap-south-2': 'not-opted-in', 'ap-southeast-3': 'not-opted-in', 'ap-southeast-4': 'not-opted-in',
  'ca-west-1': 'not-opted-in', 'eu-central-2': 'not-opted-in', 'eu-south-1': 'not-opted-in', 'eu-south-2': 'not-opted-in', 'il-central-1': 'not-opted-in',
  'me-central-1': 'not-opted-in', 'me-south-1': 'not-opted-in',
};

/** A new EC2-style id: prefix and 17 hex digits. */
export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(9).toString('hex').slice(0, 17)}`;
}

export interface AwsStateOptions {
  accountId?: string;
  /** Opt-in regions the account has enabled (the others answer AuthFailure, as AWS does). */
  optedInRegions?: string[];
}

export class AwsState {
  readonly accountId: string;
  readonly snapshots = new Map<string, SnapshotRecord>();
  readonly images = new Map<string, ImageRecord>();
  readonly importTasks = new Map<string, ImportTaskRecord>();
  readonly instances = new Map<string, InstanceRecord>();
  readonly keyPairs = new Map<string, KeyPairRecord>();
  /** IAM roles of the account, by name: ImportSnapshot needs its service role (default vmimport). */
  readonly roles = new Set<string>(['vmimport']);
  /** Account-level "block public access for AMIs" (on by default for new AWS accounts since 2023). */
  blockPublicAmiSharing = false;
  /** Idempotency: `${region}/${action}/${token}` → the request's fingerprint and what it returned. */
  readonly clientTokens = new Map<string, { fingerprint: string; result: unknown }>();
  readonly optedIn: Set<string>;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly blocks: BlockStore,
    options: AwsStateOptions = {},
  ) {
    this.accountId = options.accountId ?? '123456789012';
    this.optedIn = new Set(options.optedInRegions ?? []);
  }

  /** Runs `fn` after `ms` (a state change AWS makes asynchronously); cancelled by dispose(). */
  later(ms: number, fn: () => void | Promise<void>): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      void fn();
    }, ms);
    this.timers.add(t);
  }

  /** Cancels every pending asynchronous change. */
  dispose(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Whether requests signed for this region are accepted. */
  regionEnabled(region: string): boolean {
    const kind = AWS_REGIONS[region];
    return kind === 'opt-in-not-required' || (kind === 'not-opted-in' && this.optedIn.has(region));
  }

  regionOptIn(region: string): string {
    const kind = AWS_REGIONS[region];
    return kind === 'not-opted-in' ? (this.optedIn.has(region) ? 'opted-in' : 'not-opted-in') : 'opt-in-not-required';
  }

  /** Tags of any taggable resource of the region, by id. */
  taggable(region: string, id: string): { tags: Tags; type: string } | undefined {
    const inRegion = <T extends { region: string; tags: Tags }>(r: T | undefined) => (r && r.region === region ? r : undefined);
    const snapshot = inRegion(this.snapshots.get(id));
    if (snapshot) return { tags: snapshot.tags, type: 'snapshot' };
    const image = inRegion(this.images.get(id));
    if (image) return { tags: image.tags, type: 'image' };
    const instance = inRegion(this.instances.get(id));
    if (instance) return { tags: instance.tags, type: 'instance' };
    const task = inRegion(this.importTasks.get(id));
    if (task) return { tags: task.tags, type: 'import-snapshot-task' };
    const key = [...this.keyPairs.values()].find((k) => k.region === region && k.id === id);
    if (key) return { tags: key.tags, type: 'key-pair' };
    return undefined;
  }

  /** The AMIs of the region whose block device mappings use a snapshot. */
  imagesUsing(snapshotId: string): ImageRecord[] {
    return [...this.images.values()].filter((i) => i.blockDeviceMappings.some((m) => m.Ebs?.SnapshotId === snapshotId));
  }
}
