import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { IntegrityError } from '../../lib/errors.js';
import type { Entry } from '../model/entry.js';
import { dataLength, expandSparse } from '../model/sparse.js';
import type { BlobStore } from '../repository/types.js';

/**
 * File content known by its length and identity before it is read, read only when an archive
 * writes it: a blob (with its holes), a host file, bytes in memory.
 */
export interface ContentSource {
  /** Bytes `open` yields, every one of them (holes as zeros). */
  size: number;
  /** A string that is equal for equal content (a blob id, a sha256): part of an archive's cache key. */
  id: string;
  /** The content, in chunks. Readers that stop early end the iteration (break, return), which closes what it opened. */
  open(): AsyncIterable<Buffer>;
}

export function bufferContent(data: Buffer): ContentSource {
  return { size: data.length, id: `sha256:${createHash('sha256').update(data).digest('hex')}`, open: async function* () { yield data; } };
}

/** A host file whose size and sha256 were taken when it was checked. */
export function fileContent(path: string, size: number, sha256: string): ContentSource {
  return { size, id: `sha256:${sha256}`, open: () => createReadStream(path, { highWaterMark: 1 << 20 }) };
}

/**
 * A regular file of an image: its blob streamed (and verified) from the store, the holes of a
 * sparse file as zeros from one shared buffer, so no length of file costs memory.
 */
export function entryContent(entry: Entry, blobs: BlobStore): ContentSource {
  const size = entry.size ?? 0;
  const extents = entry.sparse;
  if (size > 0 && !entry.blob) throw new IntegrityError(`${entry.path} has ${size} bytes of content but no blob`);
  const id = extents ? `sparse:${entry.blob}:${size}:${JSON.stringify(extents)}` : size === 0 ? 'empty' : `sha256:${entry.blob}`;
  return {
    size,
    id,
    async *open() {
      if (size === 0) return;
      const stored = blobs.createReadStream(entry.blob!, extents ? dataLength(extents) : size);
      try {
        yield* extents ? expandSparse(extents, size, stored) : stored;
      } finally {
        stored.destroy();
      }
    },
  };
}
