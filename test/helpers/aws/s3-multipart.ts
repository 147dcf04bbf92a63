import { readFile, readdir, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';

/**
 * The multipart calls s3rver (2021) lacks, answered by the S3 front from s3rver's own upload
 * directories (<directory>/<bucket>/._S3rver_uploads/<uploadId>/<part> and <part>.md5):
 * ListParts and AbortMultipartUpload as the S3 API reference describes them, and NoSuchUpload
 * for parts or completions sent to an upload that is gone (s3rver would recreate it).
 */

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const noSuchUpload = (uploadId: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.</Message><UploadId>${xmlEscape(uploadId)}</UploadId></Error>`;

function uploadDir(directory: string, bucket: string, uploadId: string): string | undefined {
  return /^[0-9a-f]{32}$/.test(uploadId) ? join(directory, bucket, '._S3rver_uploads', uploadId) : undefined;
}

async function exists(path: string | undefined): Promise<boolean> {
  return path !== undefined && (await stat(path).then(() => true, () => false));
}

/** Answers the request when it is one of these calls (true), or leaves it to s3rver (false). */
export async function handleMultipart(directory: string, action: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  if (!['ListParts', 'AbortMultipartUpload', 'UploadPart', 'CompleteMultipartUpload'].includes(action)) return false;
  const url = new URL(req.url ?? '/', 'http://s3');
  const [bucket, ...keyParts] = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const uploadId = url.searchParams.get('uploadId') ?? '';
  const dir = uploadDir(directory, bucket ?? '', uploadId);
  const gone = !(await exists(dir)) || (await readFile(join(dir!, 'key'), 'utf8').catch(() => '')) !== keyParts.join('/');
  if (gone) {
    req.resume();
    res.writeHead(404, { 'content-type': 'application/xml' }).end(noSuchUpload(uploadId));
    return true;
  }
  if (action === 'UploadPart' || action === 'CompleteMultipartUpload') return false;
  req.resume();
  if (action === 'AbortMultipartUpload') {
    await rm(dir!, { recursive: true, force: true });
    res.writeHead(204).end();
    return true;
  }
  const marker = Number(url.searchParams.get('part-number-marker') ?? 0);
  const max = Math.min(1000, Number(url.searchParams.get('max-parts') ?? 1000));
  const numbers = (await readdir(dir!)).filter((f) => /^\d+$/.test(f)).map(Number).filter((n) => n > marker).sort((a, b) => a - b);
  const page = numbers.slice(0, max);
  const parts = await Promise.all(
    page.map(async (n) => {
      const [s, md5] = await Promise.all([stat(join(dir!, String(n))), readFile(join(dir!, `${n}.md5`), 'utf8')]);
      return `<Part><PartNumber>${n}</PartNumber><LastModified>${s.mtime.toISOString()}</LastModified><ETag>"${md5.trim()}"</ETag><Size>${s.size}</Size></Part>`;
    }),
  );
  const truncated = numbers.length > page.length;
  res.writeHead(200, { 'content-type': 'application/xml' }).end(
    `<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xmlEscape(bucket!)}</Bucket><Key>${xmlEscape(keyParts.join('/'))}</Key><UploadId>${uploadId}</UploadId>` +
      `<PartNumberMarker>${marker}</PartNumberMarker>${truncated ? `<NextPartNumberMarker>${page.at(-1)}</NextPartNumberMarker>` : ''}<MaxParts>${max}</MaxParts><IsTruncated>${truncated}</IsTruncated>${parts.join('')}</ListPartsResult>`,
  );
  return true;
}
