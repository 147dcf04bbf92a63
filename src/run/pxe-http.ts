import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';

/** One request the boot server answered, as `aim boot --json` reports it. */
export interface PxeHttpRequest {
  method: string;
  path: string;
  status: number;
  /** Body bytes sent: the whole file once the response finished, what went out before a disconnect otherwise. */
  bytes: number;
  /** The whole response was handed to the connection (false: the client went away first). */
  complete: boolean;
}

/** A read-only HTTP server for one PXE bundle directory, on 127.0.0.1 (QEMU's guests reach it as 10.0.2.2). */
export interface PxeHttpServer {
  port: number;
  /** Every request so far, in order. */
  requests: PxeHttpRequest[];
  close(): Promise<void>;
}

/** The file a request path names inside `dir`, or undefined when it would leave it. */
export function bundleFile(dir: string, urlPath: string): string | undefined {
  let path: string;
  try {
    path = decodeURIComponent(urlPath.split('?')[0] ?? '');
  } catch {
    return undefined;
  }
  if (!path.startsWith('/') || path.includes('\0')) return undefined;
  const rel = normalize(path.slice(1));
  if (rel === '.' || rel === '..' || rel.startsWith(`..${sep}`)) return undefined;
  return join(dir, rel);
}

/** Whether `file` lies inside `dir` once symlinks are followed (a link in the bundle must not serve the host). */
async function inside(dir: string, file: string): Promise<boolean> {
  const [root, real] = await Promise.all([realpath(dir), realpath(file)]);
  return real.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
}

async function answer(dir: string, req: IncomingMessage, res: ServerResponse, log: PxeHttpRequest[]): Promise<void> {
  const entry: PxeHttpRequest = { method: req.method ?? '', path: req.url ?? '', status: 0, bytes: 0, complete: false };
  log.push(entry);
  // Not 'finish' or writableEnded: a client that has every byte Content-Length promised may hang
  // up before the server even ends the response. Complete = every body byte went to the connection.
  let bodyBytes = 0;
  res.once('close', () => (entry.complete = entry.status !== 0 && entry.bytes === bodyBytes));
  const send = (status: number, text: string) => {
    entry.status = status;
    res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) }).end(text);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'only GET and HEAD\n');
  const file = bundleFile(dir, entry.path);
  if (!file) return send(403, 'outside the bundle\n');
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) return send(404, 'not in the bundle\n');
  if (!(await inside(dir, file))) return send(403, 'outside the bundle\n');
  entry.status = 200;
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': st.size });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  bodyBytes = st.size;
  const body = createReadStream(file);
  body.on('data', (chunk) => (entry.bytes += chunk.length));
  // a client that goes away destroys the response, and pipeline then closes the file too
  await pipeline(body, res).catch(() => undefined);
}

/**
 * Serves a PXE bundle over HTTP, so iPXE fetches boot.ipxe, the kernel and the initrd by HTTP
 * (much faster than TFTP for an initrd holding a whole root). Listens on a free port of 127.0.0.1.
 */
export async function servePxeBundle(dir: string): Promise<PxeHttpServer> {
  const requests: PxeHttpRequest[] = [];
  const server = createServer((req, res) => {
    answer(dir, req, res, requests).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
