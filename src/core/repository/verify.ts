import { createHash } from 'node:crypto';
import { AimError, ExitCode } from '../../lib/errors.js';

/** Where images use a blob (path "" is the image's manifest itself). */
export interface BlobUser {
  imageId: string;
  path: string;
}

/** Looks up the users of a blob for an error message; a store without a catalog has none. */
export type BlobUsersLookup = (hash: string) => Promise<BlobUser[]>;

const REPAIR_HINT = 'run `aim repo fsck --repair`: it restores the blob from a source given with --source, or lists the images that need a re-import';

/** "; used by /x in image …, …" for messages, or nothing. */
export function usedBy(users: BlobUser[]): string {
  if (users.length === 0) return '';
  const shown = users.slice(0, 5).map((u) => (u.path ? `${u.path} in image ${u.imageId.slice(0, 12)}` : `manifest of image ${u.imageId.slice(0, 12)}`));
  return `; used by ${shown.join(', ')}${users.length > 5 ? ', …' : ''}`;
}

/** A stored blob whose content does not hash to its name: it must never reach an output. */
export class CorruptBlobError extends AimError {
  constructor(
    readonly blob: string,
    readonly actual: { sha256?: string; size: number; expectedSize?: number },
    readonly users: BlobUser[],
  ) {
    const what = actual.sha256 ? `its ${actual.size} bytes hash to ${actual.sha256}` : `it holds ${actual.size} bytes where its images expect ${actual.expectedSize}`;
    super('E_CORRUPT_BLOB', `blob ${blob} is corrupt: ${what}${usedBy(users)}`, ExitCode.integrity, { hint: REPAIR_HINT });
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), blob: this.blob, users: this.users };
  }
}

/** A blob an image references is not in the store. */
export class MissingBlobError extends AimError {
  constructor(
    readonly blob: string,
    readonly users: BlobUser[],
    cause?: unknown,
  ) {
    super('E_MISSING_BLOB', `blob ${blob} is missing from the repository${usedBy(users)}`, ExitCode.integrity, { hint: REPAIR_HINT, cause });
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), blob: this.blob, users: this.users };
  }
}

/**
 * Passes a blob's chunks through while hashing them, and holds the last one back until the hash
 * is checked: a consumer never sees the whole of a corrupt blob, only an error (from `corrupt`)
 * where its end would be. Every backend's read stream goes through here.
 */
export async function* verifyChunks(hash: string, chunks: AsyncIterable<Buffer>, corrupt: (actual: { sha256: string; size: number }) => Promise<Error>): AsyncGenerator<Buffer> {
  const hasher = createHash('sha256');
  let size = 0;
  let held: Buffer | undefined;
  for await (const chunk of chunks) {
    if (chunk.length === 0) continue;
    hasher.update(chunk);
    size += chunk.length;
    if (held) yield held;
    held = chunk;
  }
  const sha256 = hasher.digest('hex');
  if (sha256 !== hash) throw await corrupt({ sha256, size });
  if (held) yield held;
}

/** The same check for a blob read whole. */
export async function verifyBuffer(hash: string, content: Buffer, corrupt: (actual: { sha256: string; size: number }) => Promise<Error>): Promise<Buffer> {
  const sha256 = createHash('sha256').update(content).digest('hex');
  if (sha256 !== hash) throw await corrupt({ sha256, size: content.length });
  return content;
}
