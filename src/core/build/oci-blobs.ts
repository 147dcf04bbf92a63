import { createHash, randomBytes, type Hash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { partialFile } from '../../lib/fs.js';
import { join } from 'node:path';
import { PassThrough, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { constants, crc32, deflateRaw } from 'node:zlib';

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

const deflateRawAsync = promisify(deflateRaw);
/** Uncompressed bytes per independently deflated block (pigz's scheme, with larger blocks). */
const DEFLATE_BLOCK = 1 << 20;
/** Blocks compressing at once on libuv's thread pool. */
const DEFLATE_IN_FLIGHT = 8;
/** deflate's window: each block is primed with this much of the data before it. */
const WINDOW = 32 << 10;
/** An empty final block with fixed codes: ends the deflate stream the blocks build. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

/** Regroups a byte stream into blocks of exactly `size` bytes (the last one shorter), so block bounds never depend on chunking. */
async function* fixedBlocks(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const chunk of source) {
    let rest = chunk;
    while (held + rest.length >= size) {
      const take = size - held;
      parts.push(rest.subarray(0, take));
      yield Buffer.concat(parts, size);
      rest = rest.subarray(take);
      parts = [];
      held = 0;
    }
    if (rest.length > 0) {
      parts.push(rest);
      held += rest.length;
    }
  }
  if (held > 0) yield Buffer.concat(parts, held);
}

/**
 * Deflate on several threads, byte-identical whatever the machine: the stream is cut into fixed
 * blocks, each compressed on the thread pool with the previous 32 KiB as its dictionary and ended
 * with a sync flush (a byte-aligned, non-final boundary), then joined in order and closed with an
 * empty final block — the scheme pigz uses, so any inflater reads it as one deflate stream.
 */
async function* parallelDeflate(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const pending: Promise<Buffer>[] = [];
  let previous: Buffer | undefined;
  try {
    for await (const block of fixedBlocks(source, DEFLATE_BLOCK)) {
      const options = { level: constants.Z_DEFAULT_COMPRESSION, memLevel: 8, windowBits: 15, finishFlush: constants.Z_SYNC_FLUSH, ...(previous ? { dictionary: previous } : {}) };
      const job = deflateRawAsync(block, options);
      job.catch(() => {});
      pending.push(job);
      previous = Buffer.from(block.subarray(Math.max(0, block.length - WINDOW)));
      if (pending.length >= DEFLATE_IN_FLIGHT) yield await pending.shift()!;
    }
    while (pending.length > 0) yield await pending.shift()!;
    yield FINAL_BLOCK;
  } finally {
    pending.length = 0;
  }
}

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
  signal?: AbortSignal,
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
  const file = partialFile(tmp);
  try {
    const writing = pipeline(
      source,
      tap(rawHash, raw, progress),
      parallelDeflate,
      framed,
      counted,
      file.stream,
      // Ctrl-C stops the streams, so an abandoned build writes nothing more.
      ...(signal ? [{ signal }] : []),
    );
    // (a producer that throws before its first await must not leave the pipeline running unobserved)
    const producing = Promise.resolve().then(() => produce(source)).then(
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
    await file.discard();
    throw e;
  }
}
