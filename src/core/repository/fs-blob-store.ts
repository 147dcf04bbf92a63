import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, constants as fsc } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { IntegrityError, NotFoundError, errnoCode } from '../../lib/errors.js';
import type { StoredBlob } from '../import/source.js';
import type { BlobStore } from './types.js';

const HEX64 = /^[0-9a-f]{64}$/;
/** Content up to this size is hashed in memory first, so a blob already stored costs no write. */
const MEMORY_LIMIT = 1 << 20;

/**
 * Blobs as files: objects/sha256/ab/cdef… (two hex digits of fan-out). A blob is written to a
 * temporary file in the writer's own tmp directory, fsynced, then renamed into place; a reader
 * therefore sees either nothing or the whole blob. Killed writers leave only their tmp directory,
 * which gc removes.
 */
export class FsBlobStore implements BlobStore {
  private readonly dirty = new Set<string>();
  /** Blobs this instance added to the store (not those it found already there). */
  readonly created = new Set<string>();
  private tmpDir: string | undefined;

  constructor(
    readonly objectsDir: string,
    private readonly tmpRoot: string,
    private readonly durable = true,
  ) {}

  static async create(objectsDir: string, tmpRoot: string): Promise<void> {
    const base = join(objectsDir, 'sha256');
    await mkdir(base, { recursive: true });
    await Promise.all(
      Array.from({ length: 256 }, (_, i) => mkdir(join(base, i.toString(16).padStart(2, '0')), { recursive: true })),
    );
    await mkdir(tmpRoot, { recursive: true });
  }

  localPath(hash: string): string {
    if (!HEX64.test(hash)) throw new IntegrityError(`not a sha256 blob id: ${hash}`);
    return join(this.objectsDir, 'sha256', hash.slice(0, 2), hash.slice(2));
  }

  /** This process's scratch directory, named by pid so gc can tell live writers from dead ones. */
  async scratchDir(): Promise<string> {
    if (!this.tmpDir) {
      this.tmpDir = join(this.tmpRoot, `${process.pid}-${randomBytes(4).toString('hex')}`);
      await mkdir(this.tmpDir, { recursive: true });
    }
    return this.tmpDir;
  }

  async disposeScratch(): Promise<void> {
    if (this.tmpDir) await rm(this.tmpDir, { recursive: true, force: true });
    this.tmpDir = undefined;
  }

  async has(hash: string): Promise<boolean> {
    return (await this.size(hash)) !== undefined;
  }

  async size(hash: string): Promise<number | undefined> {
    try {
      return (await stat(this.localPath(hash))).size;
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  async putBuffer(content: Buffer): Promise<StoredBlob> {
    const hash = createHash('sha256').update(content).digest('hex');
    if (!(await this.has(hash))) await this.commit(hash, [content]);
    return { hash, size: content.length };
  }

  async put(content: Readable | AsyncIterable<Buffer>): Promise<StoredBlob> {
    const hasher = createHash('sha256');
    const head: Buffer[] = [];
    let size = 0;
    let fh: FileHandle | undefined;
    let tmp: string | undefined;
    try {
      for await (const chunk of content as AsyncIterable<Buffer>) {
        hasher.update(chunk);
        size += chunk.length;
        if (!fh) {
          head.push(chunk);
          if (size > MEMORY_LIMIT) {
            tmp = await this.tmpName();
            fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444);
            await writeAll(fh, head);
            head.length = 0;
          }
        } else {
          await fh.write(chunk);
        }
      }
      const hash = hasher.digest('hex');
      if (!fh) {
        if (!(await this.has(hash))) await this.commit(hash, head);
        return { hash, size };
      }
      if (this.durable) await fh.sync();
      await fh.close();
      fh = undefined;
      await this.place(tmp!, hash);
      tmp = undefined;
      return { hash, size };
    } finally {
      if (fh) await fh.close().catch(() => {});
      if (tmp) await unlink(tmp).catch(() => {});
    }
  }

  private async tmpName(): Promise<string> {
    return join(await this.scratchDir(), randomBytes(8).toString('hex'));
  }

  private async commit(hash: string, chunks: Buffer[]): Promise<void> {
    const tmp = await this.tmpName();
    const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444);
    try {
      await writeAll(fh, chunks);
      if (this.durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await this.place(tmp, hash);
  }

  private async place(tmp: string, hash: string): Promise<void> {
    const dest = this.localPath(hash);
    if (await this.has(hash)) {
      await unlink(tmp);
      return;
    }
    await rename(tmp, dest);
    this.dirty.add(hash.slice(0, 2));
    this.created.add(hash);
  }

  async flush(): Promise<void> {
    if (!this.durable) return;
    const dirs = [...this.dirty];
    this.dirty.clear();
    await Promise.all(dirs.map((d) => syncDir(join(this.objectsDir, 'sha256', d))));
  }

  async read(hash: string): Promise<Buffer> {
    try {
      return await readFile(this.localPath(hash));
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`blob ${hash} is missing from the repository`, { hint: 'run: aim repo fsck' });
      throw e;
    }
  }

  async readRange(hash: string, offset: number, length: number): Promise<Buffer> {
    const fh = await open(this.localPath(hash), 'r');
    try {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  createReadStream(hash: string): Readable {
    return createReadStream(this.localPath(hash));
  }

  async *list(): AsyncIterable<StoredBlob> {
    const base = join(this.objectsDir, 'sha256');
    for (const fan of (await readdir(base)).sort()) {
      let names: string[];
      try {
        names = await readdir(join(base, fan));
      } catch {
        continue;
      }
      for (const name of names) {
        const hash = fan + name;
        if (!HEX64.test(hash)) continue;
        const st = await stat(join(base, fan, name)).catch(() => undefined);
        if (st) yield { hash, size: st.size };
      }
    }
  }

  async remove(hash: string): Promise<void> {
    await unlink(this.localPath(hash)).catch((e: unknown) => {
      if (errnoCode(e) !== 'ENOENT') throw e;
    });
  }
}

async function writeAll(fh: FileHandle, chunks: Buffer[]): Promise<void> {
  if (chunks.length === 1) await fh.write(chunks[0]!);
  else if (chunks.length > 1) await fh.writev(chunks);
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
