import { createHash } from 'node:crypto';
import { comparePaths } from '../../lib/path-codec.js';
import { InternalError } from '../../lib/errors.js';
import type { Entry } from './entry.js';

/**
 * A manifest is the whole content of an image. Its canonical JSON (sorted entries, fixed key
 * order, no optional field with a default value) is hashed with sha256 to give the image id, so
 * equal content always gives an equal id whatever the source format was.
 */
export interface Manifest {
  schemaVersion: 1;
  entries: Entry[];
}

const KEY_ORDER: (keyof Entry)[] = [
  'path',
  'type',
  'mode',
  'uid',
  'gid',
  'mtime',
  'mtimeNsec',
  'size',
  'blob',
  'sparse',
  'target',
  'devMajor',
  'devMinor',
  'xattrs',
];

function canonicalEntry(e: Entry): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of KEY_ORDER) {
    const v = e[k];
    if (v === undefined) continue;
    if (k === 'mtimeNsec' && v === 0) continue;
    if (k === 'xattrs') {
      const x = v as Record<string, string>;
      const keys = Object.keys(x).sort();
      if (keys.length === 0) continue;
      const sorted: Record<string, string> = {};
      for (const key of keys) sorted[key] = x[key]!;
      out[k] = sorted;
      continue;
    }
    out[k] = v;
  }
  return out;
}

export function sortEntries(entries: Entry[]): Entry[] {
  return entries.sort((a, b) => comparePaths(a.path, b.path));
}

/**
 * Hardlinked paths are one inode. Canonical form: the smallest path of each group is the file,
 * every other path a hardlink to it, so the id does not depend on which name the source listed
 * first. `entries` must be sorted.
 */
export function canonicalizeHardlinks(entries: Entry[]): void {
  const byPath = new Map(entries.map((e) => [e.path, e] as const));
  const resolve = (e: Entry): Entry => {
    let cur = e;
    const seen = new Set<string>();
    while (cur.type === 'hardlink') {
      if (seen.has(cur.path)) throw new InternalError(`hardlink cycle at ${e.path}`);
      seen.add(cur.path);
      const next = byPath.get(cur.target ?? '');
      if (!next) throw new InternalError(`hardlink ${cur.path} points at missing ${cur.target}`);
      cur = next;
    }
    return cur;
  };
  const groups = new Map<Entry, Entry[]>();
  for (const e of entries) {
    if (e.type !== 'hardlink') continue;
    const root = resolve(e);
    let g = groups.get(root);
    if (!g) groups.set(root, (g = [root]));
    g.push(e);
  }
  for (const [root, members] of groups) {
    members.sort((a, b) => comparePaths(a.path, b.path));
    const first = members[0]!;
    const file: Entry = { ...root, path: first.path };
    byPath.set(first.path, file);
    for (const m of members) {
      const replacement: Entry = m === first ? file : { path: m.path, type: 'hardlink', mode: file.mode, uid: file.uid, gid: file.gid, mtime: file.mtime, target: first.path };
      if (file.mtimeNsec) replacement.mtimeNsec = file.mtimeNsec;
      byPath.set(m.path, m === first ? file : replacement);
    }
  }
  for (let i = 0; i < entries.length; i++) entries[i] = byPath.get(entries[i]!.path)!;
}

export function serializeManifest(manifest: Manifest): Buffer {
  const lines = manifest.entries.map((e) => JSON.stringify(canonicalEntry(e)));
  return Buffer.from(`{"schemaVersion":${manifest.schemaVersion},"entries":[\n${lines.join(',\n')}\n]}\n`, 'utf8');
}

export function manifestId(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function parseManifest(bytes: Buffer): Manifest {
  const m = JSON.parse(bytes.toString('utf8')) as Manifest;
  if (m.schemaVersion !== 1 || !Array.isArray(m.entries)) throw new InternalError('unknown manifest schema');
  return m;
}
