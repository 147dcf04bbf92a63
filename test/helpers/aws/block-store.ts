import { createCipheriv, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** EBS snapshots are made of 512 KiB blocks. */
export const EBS_BLOCK_SIZE = 524_288;
export const BLOCKS_PER_GIB = 2048;

/**
 * The blocks of every snapshot, on disk (never held in memory), stored once per content like the
 * incremental snapshots EBS keeps: a snapshot is a map from block index to a block's SHA-256.
 */
export class BlockStore {
  constructor(readonly dir: string) {}

  path(sha256Hex: string): string {
    return join(this.dir, sha256Hex.slice(0, 2), sha256Hex);
  }

  /** Stores a block (exactly one EBS block of data) and returns its SHA-256 (hex); `digest` when the caller hashed it already. */
  async put(data: Buffer, digest?: Buffer): Promise<string> {
    if (data.length !== EBS_BLOCK_SIZE) throw new Error(`a block is ${EBS_BLOCK_SIZE} bytes, not ${data.length}`);
    const sha = (digest ?? createHash('sha256').update(data).digest()).toString('hex');
    const path = this.path(sha);
    if (existsSync(path)) return sha;
    await mkdir(join(this.dir, sha.slice(0, 2)), { recursive: true });
    const tmp = `${path}.${process.pid}.${Math.random().toString(16).slice(2)}`;
    await writeFile(tmp, data);
    await rename(tmp, path);
    return sha;
  }

  read(sha256Hex: string): Promise<Buffer> {
    return readFile(this.path(sha256Hex));
  }
}

/**
 * What an unwritten block of an encrypted snapshot reads back as: not zeros (coldsnap issue #395)
 * but data that decrypts to noise. Deterministic per snapshot lineage and block (AES-CTR keystream
 * keyed by the lineage), so a test can tell it apart from written data on every read.
 */
export function encryptedNoise(lineageKey: string, index: number): Buffer {
  const key = createHash('sha256').update(lineageKey).digest().subarray(0, 16);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(index, 0);
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  return Buffer.concat([cipher.update(Buffer.alloc(EBS_BLOCK_SIZE)), cipher.final()]);
}
