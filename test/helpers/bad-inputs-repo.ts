import { createHash } from 'node:crypto';
import { chmod, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Hostile repository states: what a bad disk, a careless user or a half-finished process leaves in
 * objects/. Each damages one blob in place; the tests then check that every reader refuses it.
 */
export function sha256(content: Buffer | string): string {
  return createHash('sha256').update(content).digest('hex');
}

export function blobPath(repo: string, hash: string): string {
  return join(repo, 'objects', 'sha256', hash.slice(0, 2), hash.slice(2));
}

export type BlobDamage = 'flip-first' | 'flip-middle' | 'flip-last' | 'truncate' | 'extend' | 'remove' | 'empty';

/** Damages the blob of `content` in the repository. Sizes change only for truncate/extend/empty. */
export async function damageBlob(repo: string, content: Buffer | string, how: BlobDamage): Promise<string> {
  const hash = sha256(content);
  const path = blobPath(repo, hash);
  if (how === 'remove') {
    await unlink(path);
    return hash;
  }
  await chmod(path, 0o644);
  const fh = await open(path, 'r+');
  try {
    const { size } = await fh.stat();
    if (how === 'truncate') await fh.truncate(Math.floor(size / 2));
    else if (how === 'empty') await fh.truncate(0);
    else if (how === 'extend') await fh.write(Buffer.from('x'), 0, 1, size);
    else {
      const at = how === 'flip-first' ? 0 : how === 'flip-last' ? size - 1 : Math.floor(size / 2);
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, at);
      b[0] = b[0]! ^ 0x01;
      await fh.write(b, 0, 1, at);
    }
  } finally {
    await fh.close();
  }
  await chmod(path, 0o444);
  return hash;
}
