import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, crc32, createDeflateRaw } from 'node:zlib';

/** An OCI content descriptor (media type, digest, size), as manifests and indexes list them. */
export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
}

/** `<layout>/blobs/sha256`, created on first use. */
async function blobDir(layout: string): Promise<string> {
  const dir = join(layout, 'blobs', 'sha256');
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Writes a JSON document as a blob (compact, keys in the order given) and returns its descriptor. */
export async function writeJsonBlob(layout: string, mediaType: string, doc: unknown): Promise<OciDescriptor> {
  const bytes = Buffer.from(JSON.stringify(doc), 'utf8');
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(await blobDir(layout), hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

/**
 * The fixed gzip member header: no file name, mtime 0, no extra flags, OS 3 (Unix) whatever the
 * platform, so the same tar always gives the same compressed bytes (zlib's own gzip header takes
 * the OS from the build of zlib).
 */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);

const PROGRESS_STEP = 16 << 20;

function tap(hash: Hash, counter: { bytes: number; crc: number }, progress?: (bytes: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      const before = counter.bytes;
      counter.bytes += chunk.length;
      counter.crc = crc32(chunk, counter.crc);
      if (progress && Math.floor(before / PROGRESS_STEP) !== Math.floor(counter.bytes / PROGRESS_STEP)) progress(counter.bytes);
      done(null, chunk);
    },
  });
}

/**
 * Streams what `produce` writes through gzip into a new blob, hashing both sides: the digest of
 * the compressed blob (what the manifest lists) and of the uncompressed tar (the config's diff_id).
 */
export async function writeGzipLayer(
  layout: string,
  produce: (out: Writable) => Promise<void>,
  progress?: (uncompressedBytes: number) => void,
): Promise<{ descriptor: OciDescriptor; diffId: string }> {
  const dir = await blobDir(layout);
  const tmp = join(dir, `.layer-${randomBytes(6).toString('hex')}.partial`);
  const raw = { bytes: 0, crc: 0 };
  const rawHash = createHash('sha256');
  const gzHash = createHash('sha256');
  let gzBytes = 0;
  const source = new PassThrough({ highWaterMark: 1 << 20 });
  const framed = async function* (deflated: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    yield GZIP_HEADER;
    for await (const chunk of deflated) yield chunk;
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(raw.crc >>> 0, 0);
    trailer.writeUInt32LE(raw.bytes % 2 ** 32, 4);
    yield trailer;
  };
  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      gzHash.update(chunk);
      gzBytes += chunk.length;
      done(null, chunk);
    },
  });
  try {
    const writing = pipeline(
      source,
      tap(rawHash, raw, progress),
      createDeflateRaw({ level: constants.Z_DEFAULT_COMPRESSION, memLevel: 8, windowBits: 15 }),
      framed,
      counted,
      createWriteStream(tmp, { flags: 'wx' }),
    );
    const producing = produce(source).then(
      () => source.end(),
      (e: unknown) => {
        source.destroy(e as Error);
        throw e;
      },
    );
    await Promise.all([producing, writing]);
    const hex = gzHash.digest('hex');
    await rename(tmp, join(dir, hex));
    return {
      descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${hex}`, size: gzBytes },
      diffId: `sha256:${rawHash.digest('hex')}`,
    };
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
