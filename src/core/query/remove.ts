import { holdsOf, ImageInUseError, type ImageHold } from '../repository/holds.js';
import type { Repository } from '../repository/repository.js';
import { resolveImage } from './resolve.js';

export interface RemoveResult {
  untagged: string[];
  removedImage?: string;
  /** With force: what still referred to the removed image (holds.ts), left dangling. */
  dangling?: ImageHold[];
}

export interface RemoveOptions {
  /** Remove an image even when something holds it (a channel, a PXE assignment, a live publication). */
  force?: boolean;
}

/**
 * By tag: drop the tag, and the image if it was the last tag. By id: drop the image and its tags.
 * An image something holds (holds.ts) is refused with E_IMAGE_IN_USE, decided in the transaction
 * that removes it; with `force` it goes anyway and the result lists what was left dangling.
 */
export async function removeImageRef(repo: Repository, ref: string, options: RemoveOptions = {}): Promise<RemoveResult> {
  const id = await resolveImage(repo, ref);
  const tags = await repo.catalog.tagsOf(id);
  const byTag = tags.includes(ref) ? ref : tags.includes(`${ref}:latest`) ? `${ref}:latest` : undefined;
  if (byTag && tags.length > 1) {
    await repo.catalog.removeTag(byTag);
    return { untagged: [byTag] };
  }
  let dangling: ImageHold[] = [];
  await repo.catalog.removeImage(id, {
    guard(data) {
      dangling = holdsOf(data).get(id) ?? [];
      if (dangling.length > 0 && !options.force) throw new ImageInUseError(ref, id, dangling);
    },
  });
  return { untagged: byTag ? [byTag] : tags, removedImage: id, ...(dangling.length > 0 ? { dangling } : {}) };
}
