import type { AwsState, Tags } from './aws-state.js';
import { Ec2Error, missingParameter } from './ec2-error.js';
import { matchesFilters, page, type Filter } from './ec2-filters.js';
import type { Ec2Handler } from './ec2-server.js';

export interface TagInput {
  Key?: string;
  Value?: string;
}

export interface TagSpecificationInput {
  ResourceType?: string;
  Tags?: TagInput[];
}

/** A resource's tags as EC2 answers them (tagSet). */
export function tagSet(tags: Tags): { Key: string; Value: string }[] | undefined {
  return tags.size ? [...tags].map(([Key, Value]) => ({ Key, Value })) : undefined;
}

/** Checks tags as EC2 does: keys 1–128 characters, values up to 256, no aws: prefix. */
export function checkTags(tags: TagInput[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of tags ?? []) {
    if (t.Key === undefined || t.Key === '') throw new Ec2Error('InvalidParameterValue', 'Tag key must not be empty');
    if (t.Key.length > 128) throw new Ec2Error('InvalidParameterValue', `Tag key exceeds the maximum length of 128 characters`);
    if ((t.Value ?? '').length > 256) throw new Ec2Error('InvalidParameterValue', `Tag value exceeds the maximum length of 256 characters`);
    if (t.Key.toLowerCase().startsWith('aws:')) throw new Ec2Error('InvalidParameterValue', `Tag keys starting with 'aws:' are reserved for internal use`);
    out.set(t.Key, t.Value ?? '');
  }
  return out;
}

/** Adds tags to a resource, refusing to go past EC2's 50 tags per resource. */
export function addTags(into: Tags, tags: Map<string, string>): void {
  const keys = new Set([...into.keys(), ...tags.keys()]);
  if (keys.size > 50) throw new Ec2Error('TagLimitExceeded', 'The maximum number of Tags for a resource has been reached.');
  for (const [k, v] of tags) into.set(k, v);
}

/**
 * The tags of a call's TagSpecifications, by resource type; a type the action cannot tag is
 * InvalidParameterValue, as EC2 words it.
 */
export function tagSpecifications(specs: TagSpecificationInput[] | undefined, allowed: readonly string[]): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const spec of specs ?? []) {
    const type = spec.ResourceType ?? '';
    if (!allowed.includes(type)) throw new Ec2Error('InvalidParameterValue', `'${type}' is not a valid taggable resource type for this operation.`);
    const tags = checkTags(spec.Tags);
    const into = out.get(type) ?? new Map<string, string>();
    addTags(into, tags);
    out.set(type, into);
  }
  return out;
}

const NOT_FOUND: Record<string, [string, (id: string) => string]> = {
  ami: ['InvalidAMIID.NotFound', (id) => `The image id '[${id}]' does not exist`],
  snap: ['InvalidSnapshot.NotFound', (id) => `The snapshot '${id}' does not exist.`],
  i: ['InvalidInstanceID.NotFound', (id) => `The instance ID '${id}' does not exist`],
  'import-snap': ['InvalidConversionTaskId', (id) => `The import task ID '${id}' does not exist.`],
  key: ['InvalidKeyPair.NotFound', (id) => `The key pair ID '${id}' does not exist`],
};

function resource(state: AwsState, region: string, id: string): Tags {
  const prefix = /^(ami|snap|i|import-snap|key)-[0-9a-f]{8,17}$/.exec(id)?.[1];
  if (!prefix) throw new Ec2Error('InvalidID', `The ID '${id}' is not valid`);
  const found = state.taggable(region, id);
  if (!found) {
    const [code, message] = NOT_FOUND[prefix]!;
    throw new Ec2Error(code, message(id));
  }
  return found.tags;
}

export function tagActions(state: AwsState): Record<string, Ec2Handler> {
  return {
    CreateTags({ input, region }) {
      const ids = (input.Resources ?? []) as string[];
      if (ids.length === 0) throw missingParameter('ResourceId');
      if (!input.Tags) throw missingParameter('Tag');
      const tags = checkTags(input.Tags as TagInput[]);
      const targets = ids.map((id) => resource(state, region, id));
      for (const t of targets) addTags(t, tags);
    },

    DeleteTags({ input, region }) {
      const ids = (input.Resources ?? []) as string[];
      if (ids.length === 0) throw missingParameter('ResourceId');
      for (const tags of ids.map((id) => resource(state, region, id))) {
        // without Tag, every tag goes; a Tag without Value removes the key whatever its value
        const which: TagInput[] = (input.Tags as TagInput[] | undefined) ?? [...tags.keys()].map((Key) => ({ Key }));
        for (const t of which) {
          if (t.Key !== undefined && (t.Value === undefined || tags.get(t.Key) === t.Value)) tags.delete(t.Key);
        }
      }
    },

    DescribeTags({ input, region }) {
      const rows: { Key: string; ResourceId: string; ResourceType: string; Value: string }[] = [];
      const sources = [...state.images.values(), ...state.snapshots.values(), ...state.instances.values(), ...state.importTasks.values(), ...state.keyPairs.values()];
      for (const r of sources) {
        if (r.region !== region) continue;
        const type = state.taggable(region, r.id)!.type;
        for (const [Key, Value] of r.tags) {
          const row = { Key, ResourceId: r.id, ResourceType: type, Value };
          const ok = matchesFilters(input.Filters as Filter[] | undefined, r.tags, {
            key: () => Key,
            value: () => Value,
            'resource-id': () => r.id,
            'resource-type': () => type,
          });
          if (ok) rows.push(row);
        }
      }
      const p = page(rows, input);
      return { Tags: p.items, ...(p.NextToken ? { NextToken: p.NextToken } : {}) };
    },
  };
}
