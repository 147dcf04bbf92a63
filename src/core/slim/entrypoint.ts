import type { Repository } from '../repository/repository.js';
import type { SlimReport } from './compose.js';

/**
 * The entrypoint recorded for an image, as argv: a slim image remembers the command its profile
 * ran. Undefined for images that were not slimmed (gold, imported) or slimmed before aim recorded
 * it; callers then need an explicit entrypoint.
 */
export async function readEntrypoint(repo: Repository, imageId: string): Promise<string[] | undefined> {
  const report = (await repo.catalog.getSlimReport(imageId)) as Partial<SlimReport> | undefined;
  const argv = report?.entrypoint;
  return Array.isArray(argv) && argv.length > 0 && argv.every((a) => typeof a === 'string') ? argv : undefined;
}
