import type { Entry } from '../model/entry.js';
import type { Repository } from '../repository/repository.js';
import type { PackageRecord } from '../repository/types.js';

export type EntryChange = 'content' | 'type' | 'mode' | 'owner' | 'target' | 'device' | 'xattrs' | 'mtime';

export interface ImageDiff {
  a: string;
  b: string;
  added: { path: string; type: Entry['type']; size: number }[];
  removed: { path: string; type: Entry['type']; size: number }[];
  changed: { path: string; changes: EntryChange[]; sizeBefore: number; sizeAfter: number }[];
  packages: {
    added: { name: string; version: string }[];
    removed: { name: string; version: string }[];
    changed: { name: string; from: string; to: string }[];
  };
  summary: { added: number; removed: number; changed: number; bytesAdded: number; bytesRemoved: number; unchanged: number };
}

/** What differs between two entries. mtime counts only when asked: rebuilds touch every mtime. */
export function entryChanges(x: Entry, y: Entry, withMtime: boolean): EntryChange[] {
  const c: EntryChange[] = [];
  if (x.type !== y.type) c.push('type');
  // Same data in different places of the file (or a different size of trailing hole) is other content.
  if (x.blob !== y.blob || x.size !== y.size || JSON.stringify(x.sparse) !== JSON.stringify(y.sparse)) c.push('content');
  if (x.mode !== y.mode) c.push('mode');
  if (x.uid !== y.uid || x.gid !== y.gid) c.push('owner');
  if (x.target !== y.target) c.push('target');
  if (x.devMajor !== y.devMajor || x.devMinor !== y.devMinor) c.push('device');
  if (JSON.stringify(x.xattrs ?? {}) !== JSON.stringify(y.xattrs ?? {})) c.push('xattrs');
  if (withMtime && (x.mtime !== y.mtime || (x.mtimeNsec ?? 0) !== (y.mtimeNsec ?? 0))) c.push('mtime');
  return c;
}

export function diffEntries(a: Entry[], b: Entry[], withMtime = false): Pick<ImageDiff, 'added' | 'removed' | 'changed' | 'summary'> {
  const left = new Map(a.map((e) => [e.path, e] as const));
  const right = new Map(b.map((e) => [e.path, e] as const));
  const added: ImageDiff['added'] = [];
  const removed: ImageDiff['removed'] = [];
  const changed: ImageDiff['changed'] = [];
  let unchanged = 0;
  for (const e of a) {
    const other = right.get(e.path);
    if (!other) removed.push({ path: e.path, type: e.type, size: e.size ?? 0 });
    else {
      const c = entryChanges(e, other, withMtime);
      if (c.length > 0) changed.push({ path: e.path, changes: c, sizeBefore: e.size ?? 0, sizeAfter: other.size ?? 0 });
      else unchanged++;
    }
  }
  for (const e of b) if (!left.has(e.path)) added.push({ path: e.path, type: e.type, size: e.size ?? 0 });
  const sum = (xs: { size: number }[]) => xs.reduce((n, x) => n + x.size, 0);
  return {
    added,
    removed,
    changed,
    summary: {
      added: added.length,
      removed: removed.length,
      changed: changed.length,
      bytesAdded: sum(added) + changed.reduce((n, c) => n + Math.max(0, c.sizeAfter - c.sizeBefore), 0),
      bytesRemoved: sum(removed) + changed.reduce((n, c) => n + Math.max(0, c.sizeBefore - c.sizeAfter), 0),
      unchanged,
    },
  };
}

export function diffPackages(a: PackageRecord[], b: PackageRecord[]): ImageDiff['packages'] {
  const key = (p: PackageRecord) => `${p.name}:${p.arch}`;
  const left = new Map(a.map((p) => [key(p), p] as const));
  const right = new Map(b.map((p) => [key(p), p] as const));
  return {
    added: b.filter((p) => !left.has(key(p))).map((p) => ({ name: p.name, version: p.version })),
    removed: a.filter((p) => !right.has(key(p))).map((p) => ({ name: p.name, version: p.version })),
    changed: a
      .filter((p) => right.has(key(p)) && right.get(key(p))!.version !== p.version)
      .map((p) => ({ name: p.name, from: p.version, to: right.get(key(p))!.version })),
  };
}

export async function diffImages(repo: Repository, a: string, b: string, options: { mtime?: boolean } = {}): Promise<ImageDiff> {
  const [ea, eb, pa, pb] = await Promise.all([repo.catalog.entries(a), repo.catalog.entries(b), repo.catalog.packages(a), repo.catalog.packages(b)]);
  return { a, b, ...diffEntries(ea, eb, options.mtime ?? false), packages: diffPackages(pa, pb) };
}
