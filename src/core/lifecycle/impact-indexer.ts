import type { Reporter } from '../../lib/reporter.js';
import type { ElfFacts } from '../analyze/elf.js';
import type { Entry } from '../model/entry.js';
import type { ReadHead } from '../profile/traced-files.js';
import type { Repository } from '../repository/repository.js';
import type { Catalog, PackageRecord, ProfileRecord } from '../repository/types.js';
import { planImageIndex, planKeptSets, planTracedSets } from './impact-index.js';

/**
 * Keeps the impact index (repository/catalog-impact.ts) filled: import, slim and profile call
 * these with what they hold in memory; `ensureImpactIndex` fills in what an older aim, or a write
 * that failed after its commit, left unindexed, reading it back from the catalog.
 */

const toMap = (entries: Iterable<Entry>) => new Map([...entries].map((e) => [e.path, e] as const));

export async function indexImage(
  catalog: Catalog,
  imageId: string,
  entries: ReadonlyMap<string, Entry>,
  owners: ReadonlyMap<string, readonly string[]>,
  packages: readonly PackageRecord[],
  osRelease: Record<string, string> | undefined,
): Promise<void> {
  await catalog.impact.putImage(imageId, planImageIndex(entries, owners, packages, osRelease));
}

export async function indexSlimImage(
  catalog: Catalog,
  slimId: string,
  goldId: string,
  profile: string,
  slimEntries: ReadonlyMap<string, Entry>,
  goldOwners: ReadonlyMap<string, readonly string[]>,
): Promise<void> {
  await catalog.impact.putSlim(slimId, { goldId, profile, kept: planKeptSets(slimEntries, goldOwners) });
}

/** Indexes what a profile used, per package of the image it was recorded on. */
export async function indexProfile(repo: Repository, profile: ProfileRecord): Promise<void> {
  const [entries, owners] = await Promise.all([repo.catalog.entries(profile.imageId), repo.catalog.owners(profile.imageId)]);
  const byPath = toMap(entries);
  const elf = (await repo.catalog.elfFacts([...new Set(entries.filter((e) => e.blob).map((e) => e.blob!))])) as Map<string, ElfFacts>;
  const readHead: ReadHead = async (e, bytes) => (e.blob === undefined || (e.mode & 0o111) === 0 ? undefined : repo.blobs.readRange(e.blob, 0, bytes));
  const traced = await planTracedSets(profile, byPath, owners, (b) => elf.get(b), readHead);
  await repo.catalog.impact.putProfile(profile.name, profile.imageId, profile.updatedAt, traced);
}

/**
 * A write-time indexing that failed leaves the image or profile pending, which the next
 * `aim impact` indexes (ensureImpactIndex): a warning, never a failed import, slim or profile.
 */
export async function indexLater(reporter: Reporter, what: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (e) {
    reporter.emit({ type: 'warn', code: 'W_IMPACT_INDEX', message: `${what} is not in the impact index yet (${(e as Error).message}); aim impact will index it` });
  }
}

interface SlimOrigin {
  gold?: { id?: string };
  profile?: string;
}

/**
 * Indexes every image and profile the impact index lacks or holds an older state of (images
 * imported before impact analysis existed, profiles re-run since): images with a package
 * database first, then slim images (which take their gold's package states), then profiles.
 * Returns how many were indexed; says so on the reporter when there is anything to do.
 */
export async function ensureImpactIndex(repo: Repository, reporter: Reporter): Promise<{ images: number; profiles: number }> {
  const catalog = repo.catalog;
  const pending = await catalog.impact.pending();
  const total = pending.images.length + pending.profiles.length;
  if (total === 0) return { images: 0, profiles: 0 };
  const stage = 'impact.index';
  reporter.emit({
    type: 'stage',
    stage,
    status: 'start',
    detail: `indexing ${pending.images.length} image(s) and ${pending.profiles.length} profile(s) not in the impact index yet (once: later writes index themselves)`,
  });
  let done = 0;
  // about a hundred progress events whatever the count (plain lines when stderr is no terminal)
  const images = pending.images.length;
  const every = Math.max(1, Math.floor(images / 100));
  const step = () => {
    done++;
    if (done <= images && (done % every === 0 || done === images)) reporter.emit({ type: 'progress', stage, done, total: images, unit: 'images' });
  };
  const ordered = [...pending.images.filter((i) => !i.slim), ...pending.images.filter((i) => i.slim)];
  for (const { id, slim } of ordered) {
    const origin = slim ? ((await catalog.getSlimReport(id)) as SlimOrigin | undefined) : undefined;
    const goldId = origin?.gold?.id;
    const gold = goldId === undefined ? undefined : await catalog.getImage(goldId);
    const entries = toMap(await catalog.entries(id));
    if (gold && origin?.profile !== undefined) {
      await indexSlimImage(catalog, id, gold.id, origin.profile, entries, await catalog.owners(gold.id));
    } else {
      if (slim) reporter.emit({ type: 'warn', code: 'W_IMPACT_NO_GOLD', message: `slim image ${id.slice(0, 12)}: its gold image ${goldId?.slice(0, 12) ?? '(unknown)'} is gone; impact analysis sees only its own packages` });
      const record = await catalog.getImage(id);
      await indexImage(catalog, id, entries, await catalog.owners(id), await catalog.packages(id), record?.osRelease);
    }
    step();
  }
  for (const name of pending.profiles) {
    const profile = await catalog.getProfile(name);
    if (profile) await indexProfile(repo, profile);
    step();
  }
  reporter.emit({ type: 'stage', stage, status: 'done', detail: `${pending.images.length} image(s), ${pending.profiles.length} profile(s)` });
  return { images: pending.images.length, profiles: pending.profiles.length };
}
