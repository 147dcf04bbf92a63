import { NotFoundError, isAimError } from '../../lib/errors.js';
import type { LineageRecord } from '../repository/catalog-lineage.js';
import type { Repository } from '../repository/repository.js';
import { resolveImage } from '../query/resolve.js';

/**
 * The lineage of an image (`aim image history`): how it was made, from which parent, by whom and
 * when, back to the image imported or slimmed by hand; and the versions made from it since.
 * Read from the catalog's lineage store (catalog-lineage.ts) and the images' own records.
 */

export interface HistoryStep {
  id: string;
  tags: string[];
  /** update: packages replaced in the parent; reslim: made again from the updated gold; import; slim (by aim slim); gone: the image was removed. */
  how: 'update' | 'reslim' | 'import' | 'slim' | 'gone';
  parent?: string;
  /** Slim images: the gold image and profile they were made from, and the gold's first tag. */
  gold?: string;
  goldRef?: string;
  profile?: string;
  packages?: { name: string; arch?: string; from: string; to: string }[];
  /** import: where it came from. */
  source?: string;
  scripts?: string[];
  scriptsAccepted?: boolean;
  actor?: string;
  at?: string;
}

export interface ImageHistory {
  image: string;
  /** The image first, then its parent, back to the first version. */
  lineage: HistoryStep[];
  /** Versions made from it (updated or slimmed again), oldest first, with theirs. */
  newer: HistoryStep[];
}

interface SlimOrigin {
  gold?: { id?: string };
  profile?: string;
}

async function stepOf(repo: Repository, id: string, record: LineageRecord | undefined): Promise<HistoryStep> {
  const step = await madeHow(repo, id, record);
  const goldTag = step.gold === undefined ? undefined : (await repo.catalog.tagsOf(step.gold))[0];
  return goldTag === undefined ? step : { ...step, goldRef: goldTag };
}

async function madeHow(repo: Repository, id: string, record: LineageRecord | undefined): Promise<HistoryStep> {
  const tags = await repo.catalog.tagsOf(id);
  const image = await repo.catalog.getImage(id);
  if (record) {
    const d = record.detail as { packages?: HistoryStep['packages']; scripts?: string[]; scriptsAccepted?: boolean };
    return {
      id,
      tags,
      how: record.kind,
      parent: record.parentId,
      ...(record.goldId ? { gold: record.goldId } : {}),
      ...(record.profile ? { profile: record.profile } : {}),
      packages: d.packages ?? [],
      ...(d.scripts?.length ? { scripts: d.scripts, scriptsAccepted: d.scriptsAccepted ?? false } : {}),
      actor: record.actor,
      at: record.createdAt,
    };
  }
  if (!image) return { id, tags, how: 'gone' };
  if (image.sourceKind === 'slim') {
    const origin = (await repo.catalog.getSlimReport(id)) as SlimOrigin | undefined;
    return { id, tags, how: 'slim', ...(origin?.gold?.id ? { gold: origin.gold.id } : {}), ...(origin?.profile ? { profile: origin.profile } : {}), at: image.createdAt };
  }
  return { id, tags, how: 'import', source: image.source, at: image.createdAt };
}

/** An image ref, or a name whose tags ("gold/nginx" → gold/nginx:*) point at versions: the newest of them. */
async function resolveName(repo: Repository, name: string): Promise<string> {
  try {
    return await resolveImage(repo, name);
  } catch (e) {
    if (!isAimError(e) || e.code !== 'E_NOT_FOUND' || name.includes(':')) throw e;
    const tags = await repo.catalog.listTags(`${name}:`);
    const images = (await Promise.all([...new Set(tags.map((t) => t.imageId))].map((id) => repo.catalog.getImage(id)))).filter((i) => i !== undefined);
    const newest = images.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0))[0];
    if (!newest) throw new NotFoundError(`no image "${name}" and no tag ${name}:* in ${repo.root}`, { hint: 'list images with: aim image list' });
    return newest.id;
  }
}

export async function imageHistory(repo: Repository, name: string): Promise<ImageHistory> {
  const start = await resolveName(repo, name);
  const lineage: HistoryStep[] = [];
  const seen = new Set<string>();
  for (let id: string | undefined = start; id !== undefined && !seen.has(id); ) {
    seen.add(id);
    const step = await stepOf(repo, id, await repo.catalog.lineage.get(id));
    lineage.push(step);
    id = step.how === 'update' || step.how === 'reslim' ? step.parent : undefined;
  }
  const newer: HistoryStep[] = [];
  const queue = [start];
  while (queue.length > 0) {
    for (const child of await repo.catalog.lineage.children(queue.shift()!)) {
      if (seen.has(child.imageId)) continue;
      seen.add(child.imageId);
      newer.push(await stepOf(repo, child.imageId, child));
      queue.push(child.imageId);
    }
  }
  newer.sort((a, b) => ((a.at ?? '') < (b.at ?? '') ? -1 : (a.at ?? '') > (b.at ?? '') ? 1 : 0));
  return { image: start, lineage, newer };
}
