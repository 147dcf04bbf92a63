import type { Readable } from 'node:stream';
import { isHole, MIN_HOLE, SparsePacker, type ContentChunk, type DataExtent } from '../model/sparse.js';
import type { BlobStore } from '../repository/types.js';
import type { StoredContent } from './source.js';

/** Content held in memory in its stored form: the data bytes, and the map when it has holes. */
export function packBuffer(content: Buffer): { data: Buffer; sparse?: DataExtent[] } {
  if (content.length < MIN_HOLE) return { data: content };
  const packer = new SparsePacker();
  const pieces: Buffer[] = [];
  packer.data(content, pieces);
  const sparse = packer.finish(pieces);
  return sparse ? { data: Buffer.concat(pieces), sparse } : { data: content };
}

/**
 * Stores streamed content (data chunks and known holes) as a blob: long zero runs and holes
 * become holes of the stored content (model/sparse.ts), so a stream of any apparent size costs
 * only its data in the repository. Known holes are never materialised. `head` is the content's
 * first chunk, for magic-number checks.
 */
export async function storeContent(blobs: Pick<BlobStore, 'put'>, content: Readable | AsyncIterable<ContentChunk>): Promise<StoredContent & { head?: Buffer }> {
  const packer = new SparsePacker();
  let head: Buffer | undefined;
  let size = 0;
  async function* packed(): AsyncGenerator<Buffer> {
    const out: Buffer[] = [];
    for await (const chunk of content as AsyncIterable<ContentChunk>) {
      if (isHole(chunk)) {
        packer.hole(chunk.hole, out);
        size += chunk.hole;
      } else {
        if (!head && chunk.length > 0 && size === 0) head = chunk;
        packer.data(chunk, out);
        size += chunk.length;
      }
      // The pieces are slices of `chunk`: hand them on before the next chunk is read.
      yield* out;
      out.length = 0;
    }
    sparse = packer.finish(out);
    yield* out;
  }
  let sparse: DataExtent[] | undefined;
  const stored = await blobs.put(packed());
  return sparse ? { hash: stored.hash, size, sparse, head } : { hash: stored.hash, size, head };
}
