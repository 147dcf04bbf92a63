import { AWS_REGIONS, type AwsState, type SnapshotRecord } from './aws-state.js';
import { checkId, Ec2Error, missingParameter } from './ec2-error.js';
import { matchesFilters, page, type Filter } from './ec2-filters.js';
import type { Ec2Handler } from './ec2-server.js';
import { tagSet } from './ec2-tags.js';

/** EC2's view of snapshots (made by EBS direct, ImportSnapshot or CopyImage): DescribeSnapshots, DeleteSnapshot; and DescribeRegions. */

export function describeSnapshot(s: SnapshotRecord): Record<string, unknown> {
  return {
    SnapshotId: s.id,
    // snapshots that were not taken from a volume (EBS direct, imports, copies) name this one
    VolumeId: 'vol-ffffffff',
    State: s.state,
    ...(s.stateMessage ? { StateMessage: s.stateMessage } : {}),
    StartTime: s.startTime,
    ...(s.completionTime ? { CompletionTime: s.completionTime } : {}),
    Progress: `${s.state === 'completed' ? 100 : s.progress}%`,
    OwnerId: s.ownerId,
    ...(s.description === undefined ? {} : { Description: s.description }),
    VolumeSize: s.volumeSize,
    Encrypted: s.encrypted,
    ...(s.kmsKeyArn ? { KmsKeyId: s.kmsKeyArn } : {}),
    StorageTier: 'standard',
    Tags: tagSet(s.tags),
  };
}

export function snapshotActions(state: AwsState): Record<string, Ec2Handler> {
  const find = (region: string, id: string | undefined) => {
    if (id === undefined) throw missingParameter('SnapshotId');
    checkId(id, 'snap', 'InvalidSnapshotID.Malformed');
    const s = state.snapshots.get(id);
    if (!s || s.region !== region) throw new Ec2Error('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
    return s;
  };

  return {
    DescribeSnapshots({ input, region }) {
      const ids = input.SnapshotIds as string[] | undefined;
      if (ids?.length && input.MaxResults !== undefined) throw new Ec2Error('InvalidParameterCombination', 'The parameter snapshotSet cannot be used with the parameter maxResults');
      for (const id of ids ?? []) find(region, id);
      const owners = (input.OwnerIds ?? []) as string[];
      const found = [...state.snapshots.values()].filter((s) => {
        if (s.region !== region) return false;
        if (ids?.length && !ids.includes(s.id)) return false;
        if (owners.length && !owners.some((o) => (o === 'self' ? s.ownerId === state.accountId : o === s.ownerId))) return false;
        return matchesFilters(input.Filters as Filter[] | undefined, s.tags, {
          'snapshot-id': () => s.id,
          status: () => s.state,
          'owner-id': () => s.ownerId,
          description: () => s.description,
          encrypted: () => s.encrypted,
          progress: () => `${s.state === 'completed' ? 100 : s.progress}%`,
          'volume-id': () => 'vol-ffffffff',
          'volume-size': () => s.volumeSize,
          'start-time': () => s.startTime.toISOString(),
          'storage-tier': () => 'standard',
        });
      });
      const p = page(found, input);
      return { Snapshots: p.items.map(describeSnapshot), ...(p.NextToken ? { NextToken: p.NextToken } : {}) };
    },

    DeleteSnapshot({ input, region }) {
      const s = find(region, input.SnapshotId);
      const user = state.imagesUsing(s.id)[0];
      if (user) throw new Ec2Error('InvalidSnapshot.InUse', `The snapshot ${s.id} is currently in use by ${user.id}`);
      state.snapshots.delete(s.id);
    },

    DescribeRegions({ input }) {
      const names = (input.RegionNames ?? []) as string[];
      const unknown = names.filter((n) => AWS_REGIONS[n] === undefined);
      if (unknown.length) throw new Ec2Error('InvalidParameterValue', `Invalid region${unknown.length > 1 ? 's' : ''}: [${unknown.join(', ')}]`);
      const regions = Object.keys(AWS_REGIONS).filter((r) => {
        if (names.length) return names.includes(r);
        return input.AllRegions === true || state.regionEnabled(r);
      });
      const matching = regions.filter((r) =>
        matchesFilters(input.Filters as Filter[] | undefined, undefined, {
          'region-name': () => r,
          endpoint: () => `ec2.${r}.amazonaws.com`,
          'opt-in-status': () => state.regionOptIn(r),
        }),
      );
      return { Regions: matching.map((r) => ({ RegionName: r, Endpoint: `ec2.${r}.amazonaws.com`, OptInStatus: state.regionOptIn(r) })) };
    },
  };
}
