import { NotFoundError } from '../../lib/errors.js';
import type { Repository } from '../repository/repository.js';

/** "name:tag", a full id or a unique id prefix → image id, or a NotFoundError that says why. */
export async function resolveImage(repo: Repository, ref: string): Promise<string> {
  const id = await repo.catalog.resolve(ref);
  if (id) return id;
  const prefix = ref.replace(/^sha256:/, '');
  if (/^[0-9a-f]{8,63}$/.test(prefix)) {
    const ids = await repo.catalog.findIdsByPrefix(prefix);
    if (ids.length > 1) throw new NotFoundError(`image id prefix ${prefix} is ambiguous (${ids.length} images)`, { hint: 'give more digits' });
  }
  const withLatest = ref.includes(':') ? undefined : await repo.catalog.resolve(`${ref}:latest`);
  if (withLatest) return withLatest;
  throw new NotFoundError(`no image "${ref}" in ${repo.root}`, { hint: 'list images with: aim image list' });
}
