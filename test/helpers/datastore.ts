import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

/** The credentials the fake datastore accepts (basic auth). */
export const DATASTORE_USER = 'root';
export const DATASTORE_PASSWORD = 's3cret';

export interface Seen {
  method: string;
  path: string;
  query: Record<string, string>;
  auth: string | undefined;
  bytes: number;
  sha256: string;
}

/** A datastore stand-in on 127.0.0.1: records every request; `behave` decides each answer. */
export class FakeDatastore {
  readonly seen: Seen[] = [];
  /** Path → sha256 of what was PUT (a test may plant any text). */
  readonly stored = new Map<string, string>();
  /** Path → size of what was PUT: HEAD answers it as Content-Length, as ESXi does (0 when planted). */
  readonly sizes = new Map<string, number>();
  connections = 0;
  behave: (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => boolean = () => false;
  private readonly server: http.Server;
  private readonly holds: { match: (seen: Seen) => boolean; resolve: (seen: Seen) => void }[] = [];
  private readonly paused: http.IncomingMessage[] = [];

  /**
   * Holds the next request that matches once its first bytes arrived (the client is then in the
   * middle of sending it), and resolves; `release()` lets it go on and be handled as usual.
   */
  hold(match: (seen: Seen) => boolean): Promise<Seen> {
    return new Promise((resolve) => this.holds.push({ match, resolve }));
  }

  release(): void {
    for (const req of this.paused.splice(0)) req.resume();
  }

  constructor(private readonly tls?: { key: Buffer; cert: Buffer }) {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res);
    this.server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  }

  async start(): Promise<string> {
    this.server.on(this.tls ? 'secureConnection' : 'connection', () => this.connections++);
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  openConnections(): Promise<number> {
    return new Promise((r, j) => this.server.getConnections((e, n) => (e ? j(e) : r(n))));
  }

  /** Open connections once the client's closes have reached the server (it sees them a moment later), or after 5 s. */
  async settledConnections(): Promise<number> {
    const deadline = Date.now() + 5000;
    let n = await this.openConnections();
    while (n > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      n = await this.openConnections();
    }
    return n;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const seen: Seen = { method: req.method ?? '', path: decodeURIComponent(url.pathname), query: Object.fromEntries(url.searchParams), auth: req.headers.authorization, bytes: 0, sha256: '' };
    this.seen.push(seen);
    if (this.behave(req, res, seen)) return;
    if (req.headers.authorization !== `Basic ${Buffer.from(`${DATASTORE_USER}:${DATASTORE_PASSWORD}`).toString('base64')}`) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="VMware HTTP server"' }).end();
      return;
    }
    const hash = createHash('sha256');
    req.on('data', (c: Buffer) => {
      hash.update(c);
      seen.bytes += c.length;
    });
    const held = this.holds.findIndex((h) => h.match(seen));
    if (held >= 0) {
      const [hold] = this.holds.splice(held, 1);
      req.once('data', () => {
        req.pause();
        this.paused.push(req);
        hold!.resolve(seen);
      });
    }
    let ended = false;
    // a PUT cut short leaves what arrived, as a server that writes as it reads does
    const cutShort = () => {
      if (ended || seen.method !== 'PUT') return;
      this.stored.set(seen.path, 'partial');
      this.sizes.set(seen.path, seen.bytes);
    };
    req.on('close', cutShort);
    req.socket.once('close', cutShort);
    req.on('end', () => {
      ended = true;
      seen.sha256 = hash.digest('hex');
      // Content-Length: 0 as ESXi sends it; without it Node's server closes the connection.
      const empty = (status: number) => res.writeHead(status, { 'Content-Length': 0 }).end();
      if (seen.method === 'HEAD') {
        if (this.stored.has(seen.path)) res.writeHead(200, { 'Content-Length': this.sizes.get(seen.path) ?? 0 }).end();
        else empty(404);
      } else if (seen.method === 'PUT') {
        const existed = this.stored.has(seen.path);
        this.stored.set(seen.path, seen.sha256);
        this.sizes.set(seen.path, seen.bytes);
        empty(existed ? 200 : 201);
      } else if (seen.method === 'DELETE') {
        this.sizes.delete(seen.path);
        empty(this.stored.delete(seen.path) ? 204 : 404);
      }
      else empty(405);
    });
  }
}
