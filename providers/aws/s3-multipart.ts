import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { setMaxListeners } from 'node:events';
import { open } from 'node:fs/promises';
import { isAimError } from '../../src/lib/errors.js';
import { awsError, calling } from './aws-errors.js';
import { abortReason, errorCode, withRetry, type RetryOptions } from './retry.js';

/** One part of a multipart upload as S3 confirmed it. */
export interface UploadedPart {
  n: number;
  etag: string;
  crc32?: string;
}

/** Parts of 16 MiB (S3 wants at least 5 MiB but for the last, and at most 10 000 parts). */
export function partSizeFor(bytes: number): number {
  return Math.max(16 * 1024 * 1024, Math.ceil(bytes / 10_000 / (1024 * 1024)) * 1024 * 1024);
}

export interface MultipartInput {
  bucket: string;
  key: string;
  file: string;
  size: number;
  partSize: number;
  concurrency: number;
  /** An upload begun by an earlier run (from the journal): parts S3 still has are not sent again. */
  uploadId?: string | undefined;
  /** Parts the journal records for that upload. */
  parts?: readonly UploadedPart[];
  /** Awaited as soon as S3 gave the upload its id (journal it before any part is sent). */
  onCreated(uploadId: string): Promise<void>;
  /** Awaited after each part S3 confirmed (the journal's checkpoint). */
  onPart(part: UploadedPart): Promise<void>;
  onProgress?(bytes: number, total: number): void;
  retry: RetryOptions;
}

export interface MultipartResult {
  uploadId: string;
  etag?: string;
  parts: UploadedPart[];
  /** Parts sent by this run (a resume sends only the missing ones). */
  sent: number;
  bytesSent: number;
}

/** The parts S3 holds for an upload, or undefined when the upload is gone (completed, aborted, expired). */
async function listParts(s3: S3Client, input: Pick<MultipartInput, 'bucket' | 'key'>, uploadId: string, signal?: AbortSignal): Promise<Map<number, { etag: string; size: number }> | undefined> {
  const out = new Map<number, { etag: string; size: number }>();
  let marker: string | undefined;
  try {
    for (;;) {
      const page = await s3.send(new ListPartsCommand({ Bucket: input.bucket, Key: input.key, UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}) }), { abortSignal: signal });
      for (const p of page.Parts ?? []) if (p.PartNumber !== undefined && p.ETag) out.set(p.PartNumber, { etag: p.ETag, size: p.Size ?? 0 });
      if (!page.IsTruncated) return out;
      marker = page.NextPartNumberMarker;
    }
  } catch (e) {
    if (errorCode(e) === 'NoSuchUpload') return undefined;
    throw e;
  }
}

/**
 * Uploads a file to S3 as a multipart upload, parts in parallel (bounded), each part retried on
 * throttling, 5xx and dropped connections. Every step is reported before the next one starts, so a
 * journal can name the upload (to abort it) and its parts (to resume it): given the id of an
 * earlier upload, the parts S3 still has with the ETags the journal recorded are not sent again.
 * Failures reject; aborting the upload and deleting the object is the caller's (the journal's) job.
 */
export async function uploadMultipart(s3: S3Client, input: MultipartInput): Promise<MultipartResult> {
  const signal = input.retry.signal;
  const count = Math.max(1, Math.ceil(input.size / input.partSize));
  const done = new Map<number, UploadedPart>();
  let uploadId = input.uploadId;
  if (uploadId) {
    const remote = await calling(`list the parts of the upload of s3://${input.bucket}/${input.key}`, () => listParts(s3, input, uploadId!, signal), { bucket: input.bucket });
    if (!remote) uploadId = undefined;
    else {
      for (const p of input.parts ?? []) {
        const expected = p.n === count ? input.size - (count - 1) * input.partSize : input.partSize;
        const r = remote.get(p.n);
        if (r && r.etag === p.etag && r.size === expected) done.set(p.n, p);
      }
    }
  }
  if (!uploadId) {
    const created = await calling(`start the upload of s3://${input.bucket}/${input.key}`, () =>
      withRetry('CreateMultipartUpload', () => s3.send(new CreateMultipartUploadCommand({ Bucket: input.bucket, Key: input.key, ChecksumAlgorithm: 'CRC32' }), { abortSignal: signal }), input.retry),
      { bucket: input.bucket },
    );
    uploadId = created.UploadId!;
    await input.onCreated(uploadId);
  }
  const id = uploadId;
  const todo = Array.from({ length: count }, (_, i) => i + 1).filter((n) => !done.has(n));
  let bytes = [...done.keys()].reduce((sum, n) => sum + Math.min(input.partSize, input.size - (n - 1) * input.partSize), 0);
  input.onProgress?.(bytes, input.size);
  let sent = 0;
  let bytesSent = 0;
  let next = 0;
  let first: unknown;
  const failure = new AbortController();
  const all = signal ? AbortSignal.any([signal, failure.signal]) : failure.signal;
  // each worker's request and its retry wait listen on it: bounded by the concurrency, not a leak
  setMaxListeners(2 * input.concurrency + 10, all);
  const fh = await open(input.file, 'r');
  try {
    const worker = async () => {
      while (next < todo.length) {
        all.throwIfAborted();
        const n = todo[next++]!;
        const start = (n - 1) * input.partSize;
        const body = Buffer.alloc(Math.min(input.partSize, input.size - start));
        const { bytesRead } = await fh.read(body, 0, body.length, start);
        if (bytesRead !== body.length) throw new Error(`${input.file} shrank while it was uploaded`);
        const answer = await withRetry(`UploadPart ${n}`, () => s3.send(new UploadPartCommand({ Bucket: input.bucket, Key: input.key, UploadId: id, PartNumber: n, Body: body, ContentLength: body.length, ChecksumAlgorithm: 'CRC32' }), { abortSignal: all }), { ...input.retry, signal: all });
        const part: UploadedPart = { n, etag: answer.ETag!, ...(answer.ChecksumCRC32 ? { crc32: answer.ChecksumCRC32 } : {}) };
        await input.onPart(part);
        done.set(n, part);
        sent++;
        bytesSent += body.length;
        bytes += body.length;
        input.onProgress?.(bytes, input.size);
      }
    };
    await Promise.all(
      Array.from({ length: Math.max(1, Math.min(input.concurrency, todo.length)) }, () =>
        worker().catch((e: unknown) => {
          first ??= e;
          failure.abort(e);
        }),
      ),
    );
  } finally {
    await fh.close();
  }
  if (first !== undefined) {
    if (signal?.aborted) throw abortReason(signal);
    throw isAimError(first) ? first : awsError(first, `upload s3://${input.bucket}/${input.key}`, { bucket: input.bucket });
  }
  const parts = [...done.values()].sort((a, b) => a.n - b.n);
  const completed = await calling(`complete the upload of s3://${input.bucket}/${input.key}`, () =>
    withRetry(
      'CompleteMultipartUpload',
      () =>
        s3.send(
          new CompleteMultipartUploadCommand({ Bucket: input.bucket, Key: input.key, UploadId: id, MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.n, ETag: p.etag, ...(p.crc32 ? { ChecksumCRC32: p.crc32 } : {}) })) } }),
          { abortSignal: signal },
        ),
      input.retry,
    ),
    { bucket: input.bucket },
  );
  return { uploadId: id, ...(completed.ETag ? { etag: completed.ETag } : {}), parts, sent, bytesSent };
}

/** Whether the object exists (HEAD), and its size. */
export async function headObject(s3: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<{ size: number } | undefined> {
  try {
    const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    return { size: h.ContentLength ?? 0 };
  } catch (e) {
    if (errorCode(e) === 'NotFound' || errorCode(e) === 'NoSuchKey') return undefined;
    throw e;
  }
}

/** Aborts an unfinished upload (its parts go) and deletes the object; either being gone already is fine. */
export async function removeObject(s3: S3Client, bucket: string, key: string, uploadId: string | undefined, signal: AbortSignal): Promise<void> {
  if (uploadId) {
    try {
      await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), { abortSignal: signal });
    } catch (e) {
      if (errorCode(e) !== 'NoSuchUpload') throw awsError(e, `abort the upload of s3://${bucket}/${key}`, { bucket });
    }
  }
  await calling(`delete s3://${bucket}/${key}`, () => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal }), { bucket });
}
