import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

/**
 * The aws-chunked content encoding S3 accepts (Content-Encoding: aws-chunked, x-amz-content-sha256
 * STREAMING-…): chunks `<hex size>[;chunk-signature=…]\r\n<data>\r\n`, a last chunk of size 0,
 * then trailers (`x-amz-checksum-crc32:<base64>`) and an empty line. The SDK sends uploads this
 * way by default to carry their CRC32 in a trailer.
 */
export interface DecodedChunks {
  length: number;
  trailers: Map<string, string>;
  /** Checksums of the decoded data, by trailer name, for the algorithms the fake can compute. */
  checksums: Map<string, string>;
}

export class ChunkEncodingError extends Error {}

export async function decodeAwsChunked(source: AsyncIterable<Buffer>, out: FileHandle): Promise<DecodedChunks> {
  let buf: Buffer = Buffer.alloc(0);
  let state: 'size' | 'data' | 'crlf' | 'trailers' | 'done' = 'size';
  let remaining = 0;
  let length = 0;
  let crc = 0;
  const sha256 = createHash('sha256');
  const sha1 = createHash('sha1');
  const trailers = new Map<string, string>();
  const line = (): string | undefined => {
    const at = buf.indexOf('\r\n');
    if (at < 0) return undefined;
    const text = buf.subarray(0, at).toString('latin1');
    buf = buf.subarray(at + 2);
    return text;
  };
  for await (const chunk of source) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (state === 'size') {
        const l = line();
        if (l === undefined) break;
        const size = parseInt(l.split(';')[0]!, 16);
        if (!Number.isFinite(size) || size < 0) throw new ChunkEncodingError(`bad chunk size line '${l.slice(0, 40)}'`);
        if (size === 0) state = 'trailers';
        else [state, remaining] = ['data', size];
      } else if (state === 'data') {
        if (buf.length === 0) break;
        const take = buf.subarray(0, Math.min(remaining, buf.length));
        buf = buf.subarray(take.length);
        await out.write(take);
        crc = crc32(take, crc);
        sha256.update(take);
        sha1.update(take);
        length += take.length;
        remaining -= take.length;
        if (remaining === 0) state = 'crlf';
      } else if (state === 'crlf') {
        if (buf.length < 2) break;
        if (buf[0] !== 13 || buf[1] !== 10) throw new ChunkEncodingError('a chunk is not followed by CRLF');
        buf = buf.subarray(2);
        state = 'size';
      } else if (state === 'trailers') {
        const l = line();
        if (l === undefined) break;
        if (l === '') {
          state = 'done';
          break;
        }
        const colon = l.indexOf(':');
        if (colon > 0) trailers.set(l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim());
      } else break;
    }
  }
  // a body may end right after the last chunk, without trailers or the final empty line
  const end: string = state;
  if (end !== 'done' && end !== 'trailers') throw new ChunkEncodingError('the aws-chunked body ended in the middle of a chunk');
  const crcBytes = Buffer.alloc(4);
  crcBytes.writeUInt32BE(crc >>> 0);
  const checksums = new Map([
    ['x-amz-checksum-crc32', crcBytes.toString('base64')],
    ['x-amz-checksum-sha256', sha256.digest('base64')],
    ['x-amz-checksum-sha1', sha1.digest('base64')],
  ]);
  return { length, trailers, checksums };
}
