import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { request, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import S3rver from 's3rver';
import { ChunkEncodingError, decodeAwsChunked } from './aws-chunked.js';
import { listen } from './http-listener.js';
import { handleMultipart } from './s3-multipart.js';
import { Traffic } from './traffic.js';

/**
 * S3 on 127.0.0.1: s3rver (a real S3 REST server, objects on disk) behind a small front that
 * counts requests per S3 action and bytes on the wire, and decodes the aws-chunked uploads the
 * SDK sends by default (checking their CRC32/SHA trailers, BadDigest otherwise), which s3rver
 * (2021) would store with the chunk framing in them. ListParts and AbortMultipartUpload, which
 * s3rver lacks, are answered by the front from s3rver's upload directories (s3-multipart.ts).
 * s3rver knows one access key, S3RVER (secret S3RVER); clients use path-style addressing
 * (forcePathStyle).
 */
export interface S3Fake {
  url: string;
  traffic: Traffic;
  stop(): Promise<void>;
}

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** The S3 API action of a path-style request (for counting). */
export function s3Action(method: string, url: URL): string {
  const q = url.searchParams;
  const keyed = url.pathname.split('/').filter(Boolean).length > 1;
  switch (method) {
    case 'PUT':
      if (!keyed) return 'CreateBucket';
      if (q.has('partNumber')) return 'UploadPart';
      return 'PutObject';
    case 'POST':
      if (q.has('uploads')) return 'CreateMultipartUpload';
      if (q.has('uploadId')) return 'CompleteMultipartUpload';
      if (q.has('delete')) return 'DeleteObjects';
      return 'PostObject';
    case 'DELETE':
      if (q.has('uploadId')) return 'AbortMultipartUpload';
      return keyed ? 'DeleteObject' : 'DeleteBucket';
    case 'HEAD':
      return keyed ? 'HeadObject' : 'HeadBucket';
    case 'GET':
      if (!keyed) return q.has('uploads') ? 'ListMultipartUploads' : url.pathname === '/' ? 'ListBuckets' : 'ListObjects';
      return q.has('uploadId') ? 'ListParts' : 'GetObject';
    default:
      return method;
  }
}

const s3ErrorXml = (code: string, message: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>${randomUUID()}</RequestId></Error>`;

export async function startS3Server(options: { directory: string; scratch: string; buckets?: string[] }): Promise<S3Fake> {
  await mkdir(options.scratch, { recursive: true });
  const backend = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: options.directory,
    vhostBuckets: false,
    // decoded aws-chunked uploads no longer match the signature their client computed
    allowMismatchedSignatures: true,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name })),
  });
  const { port } = await backend.run();
  const traffic = new Traffic();

  async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const action = s3Action(req.method ?? '', new URL(req.url ?? '/', 'http://s3'));
    let bodyBytes = Number(req.headers['content-length'] ?? 0) || 0;
    let scratch: string | undefined;
    res.once('close', () => {
      traffic.count(action, bodyBytes, res.statusCode >= 400 || !res.writableFinished);
      if (scratch) void rm(scratch, { force: true });
    });
    if (await handleMultipart(options.directory, action, req, res)) return;
    const headers: OutgoingHttpHeaders = { ...req.headers };
    const encodings = String(req.headers['content-encoding'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const chunked = encodings.includes('aws-chunked') || String(req.headers['x-amz-content-sha256'] ?? '').startsWith('STREAMING-');
    if (chunked) {
      scratch = join(options.scratch, randomUUID());
      const fh = await open(scratch, 'w');
      let decoded;
      try {
        decoded = await decodeAwsChunked(req as AsyncIterable<Buffer>, fh);
      } catch (e) {
        if (!(e instanceof ChunkEncodingError)) throw e;
        res.writeHead(400, { 'content-type': 'application/xml' }).end(s3ErrorXml('IncompleteBody', e.message));
        return;
      } finally {
        await fh.close();
      }
      bodyBytes = decoded.length;
      const declared = req.headers['x-amz-decoded-content-length'];
      if (declared !== undefined && Number(declared) !== decoded.length) {
        res.writeHead(400, { 'content-type': 'application/xml' }).end(s3ErrorXml('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header'));
        return;
      }
      for (const [name, value] of decoded.trailers) {
        const mine = decoded.checksums.get(name);
        if (mine !== undefined && mine !== value) {
          res.writeHead(400, { 'content-type': 'application/xml' }).end(s3ErrorXml('BadDigest', `The ${name.replace('x-amz-checksum-', '').toUpperCase()} you specified did not match the calculated checksum.`));
          return;
        }
      }
      const rest = encodings.filter((e) => e !== 'aws-chunked');
      if (rest.length) headers['content-encoding'] = rest.join(',');
      else delete headers['content-encoding'];
      for (const h of ['x-amz-decoded-content-length', 'x-amz-trailer', 'transfer-encoding']) delete headers[h];
      headers['content-length'] = String(decoded.length);
      headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    }
    const upstream = request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    if (scratch) createReadStream(scratch).pipe(upstream);
    else req.pipe(upstream);
  }

  const front = await listen((req, res) => {
    forward(req, res).catch((e: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/xml' }).end(s3ErrorXml('InternalError', e.message));
    });
  });
  traffic.watch(front.server);
  let stopped: Promise<void> | undefined;
  return {
    url: front.url,
    traffic,
    stop() {
      stopped ??= (async () => {
        await front.close();
        const closed = backend.close();
        backend.httpServer.closeAllConnections();
        await closed;
        await rm(options.scratch, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
