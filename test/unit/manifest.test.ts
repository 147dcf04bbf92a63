import { describe, expect, it } from 'vitest';
import type { Entry } from '../../src/core/model/entry.js';
import { canonicalizeHardlinks, manifestId, parseManifest, serializeManifest, sortEntries } from '../../src/core/model/manifest.js';

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1700000000 };

describe('manifest', () => {
  it('gives the same id whatever the entry order and key order', () => {
    const a: Entry[] = [
      { path: '/', type: 'dir', ...base, mode: 0o755 },
      { path: '/b', type: 'file', ...base, size: 1, blob: 'ab'.repeat(32) },
      { path: '/a', type: 'symlink', ...base, target: 'b' },
    ];
    const b: Entry[] = [
      { target: 'b', type: 'symlink', path: '/a', ...base },
      { blob: 'ab'.repeat(32), size: 1, path: '/b', type: 'file', ...base },
      { ...base, mode: 0o755, path: '/', type: 'dir' },
    ];
    const ida = manifestId(serializeManifest({ schemaVersion: 1, entries: sortEntries(a) }));
    const idb = manifestId(serializeManifest({ schemaVersion: 1, entries: sortEntries(b) }));
    expect(ida).toBe(idb);
    expect(ida).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes the id when any attribute changes', () => {
    const e: Entry[] = [{ path: '/x', type: 'file', ...base, size: 0, blob: '00'.repeat(32) }];
    const id = manifestId(serializeManifest({ schemaVersion: 1, entries: e }));
    for (const change of [{ mode: 0o4755 }, { uid: 1 }, { mtimeNsec: 5 }, { xattrs: { 'user.a': 'AA==' } }]) {
      const other = manifestId(serializeManifest({ schemaVersion: 1, entries: [{ ...e[0]!, ...change }] }));
      expect(other).not.toBe(id);
    }
  });

  it('makes the smallest path of a hardlink group the file', () => {
    const entries = sortEntries([
      { path: '/z', type: 'file', ...base, size: 3, blob: 'cd'.repeat(32) },
      { path: '/a', type: 'hardlink', ...base, target: '/z' },
      { path: '/m', type: 'hardlink', ...base, target: '/a' },
    ]);
    canonicalizeHardlinks(entries);
    expect(entries.map((e) => [e.path, e.type, e.target])).toEqual([
      ['/a', 'file', undefined],
      ['/m', 'hardlink', '/a'],
      ['/z', 'hardlink', '/a'],
    ]);
    expect(entries[0]!.blob).toBe('cd'.repeat(32));
  });

  it('parses what it serialises', () => {
    const entries: Entry[] = [{ path: '/dev/null', type: 'char', ...base, mode: 0o666, devMajor: 1, devMinor: 3 }];
    const m = parseManifest(serializeManifest({ schemaVersion: 1, entries }));
    expect(m.entries).toEqual(entries);
  });
});
