import type { Repository } from '../repository/repository.js';
import { resolveImage } from './resolve.js';

export interface RemoveResult {
  untagged: string[];
  removedImage?: string;
}

/** By tag: drop the tag, and the image if it was the last tag. By id: drop the image and its tags. */
export async function removeImageRef(repo: Repository, ref: string): Promise<RemoveResult> {
  const id = await resolveImage(repo, ref);
  const tags = await repo.catalog.tagsOf(id);
  const byTag = tags.includes(ref) ? ref : tags.includes(`${ref}:latest`) ? `${ref}:latest` : undefined;
  if (byTag) {
    await repo.catalog.removeTag(byTag);
    if (tags.length > 1) return { untagged: [byTag] };
    await repo.catalog.removeImage(id);
    return { untagged: [byTag], removedImage: id };
  }
  await repo.catalog.removeImage(id);
  return { untagged: tags, removedImage: id };
}
