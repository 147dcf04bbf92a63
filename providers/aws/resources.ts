import type { JournalResource } from '../../src/api/provider.js';
import type { EncodedBlockMap } from './disk-blocks.js';

/** Kinds of resources the EC2 provider journals. */
export const KIND = {
  /** An EBS snapshot: made block by block (id is the client token until StartSnapshot answers), or by an import task. */
  snapshot: 'snapshot',
  /** An AMI (id is its name until RegisterImage or CopyImage answers); location is its region. */
  ami: 'ami',
  /** An S3 object (id is its key, location its bucket), and the multipart upload making it. */
  s3: 's3 object',
  /** A VM Import task (id is the client token until ImportSnapshot answers). */
  task: 'import task',
} as const;

/** What the journal keeps for a snapshot aim wrote block by block. */
export interface SnapshotData {
  [k: string]: unknown;
  clientToken: string;
  key: string;
  volumeGiB: number;
  parentSnapshotId?: string;
  encrypted: boolean;
  /** Every block of the volume written (encrypted): none reads back as noise. */
  fullyWritten: boolean;
  /** The disk's block map: a later version uploads only blocks that differ from it. */
  blocks?: EncodedBlockMap;
  /** Block writes planned, and those done so far (ranges of indexes) for a resume. */
  writes?: number;
  done?: [number, number][];
  completed?: boolean;
  imported?: boolean;
}

/** The latest live resource of a kind whose data matches. */
export function findResource(resources: readonly JournalResource[], kind: string, match: (data: Record<string, unknown>, r: JournalResource) => boolean): JournalResource | undefined {
  return resources.findLast((r) => r.kind === kind && r.state !== 'removed' && match(r.data, r));
}

/** Ascending indexes as [first, last] ranges (a resume checkpoint stays small). */
export function toRanges(indexes: Iterable<number>): [number, number][] {
  const sorted = [...indexes].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const i of sorted) {
    const last = out.at(-1);
    if (last && i === last[1] + 1) last[1] = i;
    else if (!last || i > last[1]) out.push([i, i]);
  }
  return out;
}

export function fromRanges(ranges: readonly [number, number][] | undefined): Set<number> {
  const out = new Set<number>();
  for (const [a, b] of ranges ?? []) for (let i = a; i <= b; i++) out.add(i);
  return out;
}
