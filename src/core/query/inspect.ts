import { parentPath, type Entry } from '../model/entry.js';
import type { Repository } from '../repository/repository.js';
import type { ImageRecord, LicenseRecord, PackageRecord } from '../repository/types.js';

export interface DirSize {
  path: string;
  bytes: number;
  files: number;
}

export interface ImageInspection extends ImageRecord {
  tags: string[];
  counts: Record<Entry['type'], number>;
  packageCount: number;
  /** Packages by the bytes of their files in this image, largest first. */
  packages: (PackageRecord & { bytes: number; files: number })[];
  biggestDirs: DirSize[];
  elfObjects: number;
  licenses: { spdx: string; packages: number }[];
  unlicensedPackages: number;
  /** Slim images: what was removed from the gold image, by package and size. */
  slimReport?: unknown;
}

/** Subtree sizes of directories up to `maxDepth` components deep, largest first. */
export function biggestDirs(entries: Entry[], limit = 10, maxDepth = 3): DirSize[] {
  const sizes = new Map<string, DirSize>();
  for (const e of entries) {
    if (e.type !== 'file') continue;
    for (let p = parentPath(e.path); ; p = parentPath(p)) {
      const depth = p === '/' ? 0 : p.split('/').length - 1;
      if (depth <= maxDepth && p !== '/') {
        let d = sizes.get(p);
        if (!d) sizes.set(p, (d = { path: p, bytes: 0, files: 0 }));
        d.bytes += e.size ?? 0;
        d.files += 1;
      }
      if (p === '/') break;
    }
  }
  return [...sizes.values()].sort((a, b) => b.bytes - a.bytes || (a.path < b.path ? -1 : 1)).slice(0, limit);
}

export function summarizeLicenses(licenses: LicenseRecord[]): { spdx: string; packages: number }[] {
  const counts = new Map<string, number>();
  for (const l of licenses) for (const s of l.spdx) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts].map(([spdx, packages]) => ({ spdx, packages })).sort((a, b) => b.packages - a.packages || (a.spdx < b.spdx ? -1 : 1));
}

export async function inspectImage(repo: Repository, id: string): Promise<ImageInspection> {
  const record = (await repo.catalog.getImage(id))!;
  const [entries, packages, owners, licenses, tags] = await Promise.all([
    repo.catalog.entries(id),
    repo.catalog.packages(id),
    repo.catalog.owners(id),
    repo.catalog.licenses(id),
    repo.catalog.tagsOf(id),
  ]);
  const counts: Record<Entry['type'], number> = { file: 0, dir: 0, symlink: 0, hardlink: 0, char: 0, block: 0, fifo: 0 };
  for (const e of entries) counts[e.type]++;
  const perPackage = new Map<string, { bytes: number; files: number }>();
  for (const e of entries) {
    if (e.type !== 'file') continue;
    for (const pkg of owners.get(e.path) ?? []) {
      let s = perPackage.get(pkg);
      if (!s) perPackage.set(pkg, (s = { bytes: 0, files: 0 }));
      s.bytes += e.size ?? 0;
      s.files += 1;
    }
  }
  const slimReport = await repo.catalog.getSlimReport(id);
  const elf = await repo.catalog.elfFacts([...new Set(entries.filter((e) => e.blob).map((e) => e.blob!))]);
  return {
    ...record,
    tags,
    counts,
    packageCount: packages.length,
    packages: packages
      .map((p) => ({ ...p, ...(perPackage.get(p.name) ?? { bytes: 0, files: 0 }) }))
      .sort((a, b) => b.bytes - a.bytes || (a.name < b.name ? -1 : 1)),
    biggestDirs: biggestDirs(entries),
    elfObjects: elf.size,
    licenses: summarizeLicenses(licenses),
    unlicensedPackages: packages.filter((p) => !licenses.some((l) => l.package === p.name && l.spdx.length > 0)).length,
    ...(slimReport === undefined ? {} : { slimReport }),
  };
}
