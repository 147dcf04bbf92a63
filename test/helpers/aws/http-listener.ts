import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An HTTP server on a free port of 127.0.0.1. */
export interface Listener {
  server: Server;
  port: number;
  url: string;
  /** Closes the server and every connection it still holds (keep-alive ones too). */
  close(): Promise<void>;
}

export async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void, port = 0): Promise<Listener> {
  const server = createServer(handler);
  // keep-alive connections of SDK clients must not hold the server open past close()
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    server,
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

/** Reads a request body whole, keeping at most `limit` bytes (the caller answers too-large); `size` is what arrived. */
export async function readBody(req: IncomingMessage, limit: number): Promise<{ body: Buffer; tooLarge: boolean; size: number }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) tooLarge = true;
    else chunks.push(chunk);
  }
  // a too-large body is counted whole (it was sent) but not kept
  return { body: Buffer.concat(chunks), tooLarge, size };
}
