import type { ElfFacts } from '../analyze/elf.js';
import { resolveImagePath } from '../analyze/resolve.js';
import { joinImagePath, parentPath, type Entry } from '../model/entry.js';
import type { DataExtent } from '../model/sparse.js';
import { tracedFileMap, type ReadHead } from '../profile/traced-files.js';
import type { ImageImpactIndex, ImpactPackageState, ImpactSetItem } from '../repository/catalog-impact.js';
import type { PackageRecord, ProfileRecord } from '../repository/types.js';

/**
 * Pure planning of the impact index rows of one image, from what import, slim and profile
 * already hold in memory: the entries, the owners of paths, the packages. The store
 * (repository/catalog-impact.ts) writes them; impact.ts queries them.
 */

/** sha256 of no bytes: the content of an empty file, which has no blob. */
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** How a file's content is compared across images and packages: its blob, with the hole map and size for sparse files. */
export function contentKey(c: { blob?: string; hash?: string; size?: number; sparse?: DataExtent[] }): string {
  const blob = c.blob ?? c.hash ?? EMPTY;
  return c.sparse ? `${blob}+${c.size ?? 0}+${JSON.stringify(c.sparse)}` : blob;
}

export const linkKey = (target: string) => `link:${target}`;

/** The package name of an owner id ("libc6", or "libc6:i386" when several architectures are installed). */
export const packageName = (id: string) => id.split(':')[0]!;

/** "ID VERSION_ID" from os-release ("debian 12"), what OSV ecosystems ("Debian:12") are matched against. */
export function releaseOf(osRelease: Record<string, string> | undefined): string | undefined {
  const id = osRelease?.ID?.toLowerCase();
  if (!id) return undefined;
  return osRelease?.VERSION_ID ? `${id} ${osRelease.VERSION_ID}` : id;
}

/**
 * The entry a package's listed path is installed as: the path itself, or through symlinked
 * directories (/lib/x86_64-linux-gnu/libc.so.6 → /usr/lib/x86_64-linux-gnu/libc.so.6).
 * Directories and symlinks to directories (/bin on a merged-/usr image) are no package file.
 */
function packageFile(entries: ReadonlyMap<string, Entry>, path: string, dirs: Map<string, string | undefined>): { path: string; entry: Entry } | undefined {
  let canonical = path;
  let e = entries.get(path);
  if (!e && path !== '/') {
    const dir = parentPath(path);
    if (!dirs.has(dir)) dirs.set(dir, resolveImagePath(entries, dir));
    const real = dirs.get(dir);
    if (real === undefined) return undefined;
    canonical = joinImagePath(real, path.slice(dir === '/' ? 1 : dir.length + 1));
    e = entries.get(canonical);
  }
  if (!e || e.type === 'dir') return undefined;
  if (e.type === 'symlink' && entries.get(resolveImagePath(entries, canonical) ?? '')?.type === 'dir') return undefined;
  return { path: canonical, entry: e };
}

function itemKey(entries: ReadonlyMap<string, Entry>, e: Entry): string | undefined {
  if (e.type === 'file') return contentKey(e);
  if (e.type === 'symlink') return linkKey(e.target ?? '');
  if (e.type === 'hardlink') {
    const to = e.target === undefined ? undefined : entries.get(e.target);
    return to?.type === 'file' ? contentKey(to) : undefined;
  }
  return undefined;
}

/**
 * The package states of an image: every dpkg package with the canonical path and content key of
 * each of its files (regular files and symlinks; directories are shared and say nothing).
 */
export function planImageIndex(
  entries: ReadonlyMap<string, Entry>,
  owners: ReadonlyMap<string, readonly string[]>,
  packages: readonly PackageRecord[],
  osRelease?: Record<string, string>,
): ImageImpactIndex {
  const dpkg = packages.filter((p) => p.manager === 'dpkg');
  const count = new Map<string, number>();
  for (const p of dpkg) count.set(p.name, (count.get(p.name) ?? 0) + 1);
  const byId = new Map<string, PackageRecord>();
  for (const p of dpkg) byId.set((count.get(p.name) ?? 0) > 1 && p.arch !== '' ? `${p.name}:${p.arch}` : p.name, p);
  const files = new Map<string, Map<string, ImpactSetItem>>();
  const dirs = new Map<string, string | undefined>();
  for (const [path, ids] of owners) {
    const found = packageFile(entries, path, dirs);
    if (!found) continue;
    const key = itemKey(entries, found.entry);
    if (key === undefined) continue;
    for (const id of ids) {
      if (!byId.has(id)) continue;
      let set = files.get(id);
      if (!set) files.set(id, (set = new Map()));
      const known = set.get(found.path);
      // listed both at its canonical path and through a symlinked directory: keep the listed one
      if (!known || (known[2] === undefined && path !== found.path)) set.set(found.path, path === found.path ? [found.path, key] : [found.path, key, path]);
    }
  }
  const states: ImpactPackageState[] = [];
  for (const [id, p] of byId) {
    const items = [...(files.get(id)?.values() ?? [])].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    states.push({ package: p.name, arch: p.arch, version: p.version, source: p.source ?? p.name, sourceVersion: p.sourceVersion ?? p.version, files: items });
  }
  const release = releaseOf(osRelease);
  return { kind: states.length > 0 ? 'gold' : 'other', ...(release ? { release } : {}), states };
}

/** Per package (name), the sorted paths of `paths` it owns that are package files of the image. */
function byPackage(paths: Iterable<string>, entries: ReadonlyMap<string, Entry>, owners: ReadonlyMap<string, readonly string[]>): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  const dirs = new Map<string, string | undefined>();
  for (const path of paths) {
    const ids = owners.get(path);
    if (!ids || !packageFile(entries, path, dirs)) continue;
    for (const id of ids) {
      const name = packageName(id);
      let set = out.get(name);
      if (!set) out.set(name, (set = new Set()));
      set.add(path);
    }
  }
  return new Map([...out].map(([k, v]) => [k, [...v].sort()] as const));
}

/** What a slim image keeps of each package of its gold: its file and symlink entries the gold's packages own. */
export function planKeptSets(slim: ReadonlyMap<string, Entry>, goldOwners: ReadonlyMap<string, readonly string[]>): Map<string, string[]> {
  return byPackage(slim.keys(), slim, goldOwners);
}

/**
 * What a profile used of each package of its image: the files its trace reached (through
 * symlinks, with the interpreters the kernel loaded) and the package symlinks it named.
 */
export async function planTracedSets(
  profile: Pick<ProfileRecord, 'paths'>,
  entries: ReadonlyMap<string, Entry>,
  owners: ReadonlyMap<string, readonly string[]>,
  elf: (blob: string) => ElfFacts | undefined,
  readHead: ReadHead,
): Promise<Map<string, string[]>> {
  const used = new Set((await tracedFileMap(profile, entries, elf, readHead)).keys());
  for (const p of profile.paths) {
    if (!p.ok) continue;
    const named = resolveImagePath(entries, p.path, { followFinal: false });
    if (named !== undefined && entries.get(named)?.type === 'symlink') used.add(named);
  }
  return byPackage(used, entries, owners);
}
