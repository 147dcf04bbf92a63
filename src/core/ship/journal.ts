import { createHash } from 'node:crypto';
import type { PublicationStore } from '../repository/catalog-publications.js';
import type { JournalResource } from '../model/publication.js';
import type { EarlierResource, Journal, NewResource } from './provider.js';

/**
 * The idempotency key of a ship: hex sha256 of (image id, provider, target). Versioned, so a
 * change of the recipe never collides with keys already used as client tokens and tags.
 */
export function idempotencyKey(imageId: string, provider: string, target: string): string {
  return createHash('sha256').update(`aim-ship/1\0${imageId}\0${provider}\0${target}`).digest('hex');
}

/** A publication's journal over the store: every call writes through before it resolves. */
export function openJournal(store: PublicationStore, publication: string, initial: JournalResource[]): Journal {
  const list = [...initial];
  const put = (r: JournalResource) => {
    const i = list.findIndex((x) => x.seq === r.seq);
    if (i >= 0) list[i] = r;
    else list.push(r);
    return r;
  };
  const find = (kind: string, id: string) => list.findLast((r) => r.kind === kind && r.id === id && r.state !== 'removed');
  return {
    publication,
    resources: () => list,
    find,
    async begin(resource: NewResource) {
      // about to (re)create it: a resource of that kind and id is set back to pending first
      const known = find(resource.kind, resource.id);
      if (known) return put(await store.updateResource(publication, known.seq, { state: 'pending', location: resource.location, data: resource.data }));
      return put(await store.addResource(publication, { ...resource, state: 'pending' }));
    },
    async created(resource, patch = {}) {
      return put(await store.updateResource(publication, resource.seq, { ...patch, state: 'created' }));
    },
    async update(resource, data) {
      return put(await store.updateResource(publication, resource.seq, { data }));
    },
    async removed(resource) {
      return put(await store.updateResource(publication, resource.seq, { state: 'removed' }));
    },
  };
}

/**
 * `ShipTarget.earlier` over the store: resources of `kind` that the provider's other live
 * publications (published, or interrupted and resumable) created and hold, newest first.
 */
export function earlierResources(store: PublicationStore, provider: string, exceptKey: string): (kind: string) => Promise<EarlierResource[]> {
  return async (kind) => {
    const out: EarlierResource[] = [];
    for (const p of await store.list()) {
      if (p.provider !== provider || p.key === exceptKey || p.state === 'removed' || p.state === 'failed') continue;
      for (const r of await store.resources(p.id)) {
        if (r.kind === kind && r.state === 'created') out.push({ ...r, publication: p.id, imageId: p.imageId, imageRef: p.imageRef, target: p.target });
      }
    }
    return out.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
  };
}
