import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, readSync, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { cancellationError } from './errors.js';

/** A new private scratch directory `aim-<purpose>-XXXXXX` under $AIM_TMPDIR, else the system's temp directory. */
export async function makeScratchDir(purpose: string): Promise<string> {
  return mkdtemp(join(process.env.AIM_TMPDIR ?? tmpdir(), `aim-${purpose}-`));
}

/** The sha256 of a file's content, hex, read in 1 MiB chunks. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Reads `want` bytes into the start of `buf` from `position` of `fd`; fewer only at the end of the file. */
export function readFullSync(fd: number, buf: Buffer, want: number, position: number): number {
  let got = 0;
  while (got < want) {
    const n = readSync(fd, buf, got, want - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/**
 * A new file (`wx`) written through a stream, with a way to throw it away on failure. A write
 * stream opens its file asynchronously, and pipeline() settles on the first error without waiting
 * for it: `discard` closes the stream first, so the file cannot be created after it was removed.
 */
export function partialFile(path: string): { stream: WriteStream; discard(): Promise<void> } {
  const stream = createWriteStream(path, { flags: 'wx' });
  const closed = new Promise<void>((resolve) => stream.once('close', resolve));
  return {
    stream,
    async discard() {
      // Writes still queued fail once the stream is destroyed; nobody waits for them any more.
      stream.on('error', () => {});
      stream.destroy();
      await closed;
      await rm(path, { force: true });
    },
  };
}

/**
 * Streams chunks into a new file (`wx`). On failure or abort the file is removed before this
 * rejects (with the signal's cancellation error when aborted), and the source is stopped.
 */
export async function writeNewFile(chunks: AsyncIterable<Buffer>, path: string, signal?: AbortSignal): Promise<void> {
  const file = partialFile(path);
  try {
    await pipeline(Readable.from(chunks, { objectMode: false }), file.stream, ...(signal ? [{ signal }] : []));
  } catch (e) {
    await file.discard();
    throw signal?.aborted ? cancellationError(signal) : e;
  }
}
