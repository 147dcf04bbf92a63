import type { IncomingMessage, ServerResponse } from 'node:http';
import S3rver from 's3rver';
import { Traffic } from './traffic.js';

/**
 * s3rver (a real S3 REST server, on disk) on 127.0.0.1, with its requests counted per S3 action
 * and its bytes counted on the wire. s3rver knows one access key, S3RVER (secret S3RVER), and
 * checks SigV4 signatures made with it; clients use path-style addressing (forcePathStyle).
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

export async function startS3Server(options: { directory: string; buckets?: string[] }): Promise<S3Fake> {
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: options.directory,
    vhostBuckets: false,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name })),
  });
  const address = await server.run();
  const traffic = new Traffic();
  traffic.watch(server.httpServer);
  server.httpServer.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const action = s3Action(req.method ?? '', new URL(req.url ?? '/', 'http://s3'));
    // body bytes from Content-Length: listening to the body here would race s3rver's own reader
    const length = Number(req.headers['content-length'] ?? 0) || 0;
    res.once('close', () => traffic.count(action, length, res.statusCode >= 400 || !res.writableFinished));
  });
  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${address.port}`,
    traffic,
    stop() {
      stopped ??= (async () => {
        const closed = server.close();
        server.httpServer.closeAllConnections();
        await closed;
      })();
      return stopped;
    },
  };
}
