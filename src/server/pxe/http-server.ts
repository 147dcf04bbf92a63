import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { renderBootScript, renderChainScript, renderUnassignedScript, renderUnavailableScript } from '../../core/pxe/boot-script.js';
import { machineName, matchAssignment, type MachineFacts } from '../../core/pxe/selector.js';
import type { PxeAssignment, PxeFetchKind } from '../../core/model/pxe.js';
import type { Repository } from '../../core/repository/repository.js';
import type { ArtifactCache, CachedFile, CacheJob } from './artifact-cache.js';
import { bootIdOf, type BootPlans, type PlannedBoot } from './boot-plans.js';
import { stamp, type BootEventRecorder, type ServeEventSink } from './events.js';
import { writeFileRange } from './file-body.js';
import { answerRange } from './http-range.js';
import { BOOT_FILES, routeRequest, SCRIPT_PATH, type Route } from './request-target.js';

/** What one client may hold and how long it may take: a slow or hostile client cannot exhaust the server. */
export interface HttpLimits {
  /** Open connections in all; more are closed at once. */
  maxConnections: number;
  /** Open connections from one address. */
  maxConnectionsPerIp: number;
  /** Time to send a request's headers (slowloris). */
  headersTimeoutMs: number;
  /** A connection with no byte either way for this long is closed (a client that stopped reading). */
  idleTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** Request line and headers together. */
  maxHeaderBytes: number;
  maxRequestsPerConnection: number;
  /** A response body slower than this (bytes per second, over 30 s) is cut (a client reading a byte at a time). */
  minBytesPerSecond: number;
}

export const DEFAULT_LIMITS: HttpLimits = {
  maxConnections: 256,
  maxConnectionsPerIp: 16,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 8192,
  maxRequestsPerConnection: 100,
  minBytesPerSecond: 4096,
};

const RATE_WINDOW_MS = 30_000;

export interface BootHttpContext {
  repo: Repository;
  plans: BootPlans;
  cache: ArtifactCache;
  recorder: BootEventRecorder;
  emit: ServeEventSink;
  /** Starts producing the files of an assignment in the background (the machine asks for them next). */
  prepare(a: PxeAssignment): void;
  /** http://host:port as machines reach the server (for messages). */
  server: string;
  limits: HttpLimits;
  /** Aborts every response body when the server stops. */
  signal: AbortSignal;
  /** Totals for the final event. */
  totals: { requests: number; bytes: number };
}

/** The client's address without the IPv4-mapped prefix. */
export function clientAddress(socket: Pick<Socket, 'remoteAddress'>): string {
  return (socket.remoteAddress ?? 'unknown').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

/** What a response did, filled in as it goes and reported when the connection lets go of it. */
interface Outcome {
  status: number;
  bytes: number;
  length?: number;
  kind?: PxeFetchKind;
  machine?: string;
  imageId?: string;
  selector?: string;
  reason?: string;
  /** Recorded in the catalog's boot events (requests for served names), not only logged. */
  record: boolean;
}

/**
 * The boot server's HTTP side on node:http: iPXE scripts rendered per machine and the kernels and
 * initrds of assigned images, streamed from the artifact cache with Content-Length, ranges and
 * ETags (or, while an initrd is first compressed, as it is written). Only GET and HEAD; every
 * request target goes through routeRequest's allowlist; connection, header and idle limits.
 */
export function createBootHttpServer(ctx: BootHttpContext): Server {
  const l = ctx.limits;
  const server = createServer(
    {
      maxHeaderSize: l.maxHeaderBytes,
      headersTimeout: l.headersTimeoutMs,
      requestTimeout: l.headersTimeoutMs + 1000,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, l.headersTimeoutMs),
    },
    (req, res) => {
      handle(ctx, req, res).catch((e: unknown) => {
        ctx.emit(stamp({ event: 'warning', code: 'W_PXE_HANDLER', message: `${req.method} ${String(req.url).slice(0, 200)}: ${(e as Error).message}` }));
        res.destroy();
      });
    },
  );
  server.maxRequestsPerSocket = l.maxRequestsPerConnection;
  server.timeout = l.idleTimeoutMs;
  const perIp = new Map<string, number>();
  let open = 0;
  server.on('connection', (socket: Socket) => {
    const ip = clientAddress(socket);
    const mine = perIp.get(ip) ?? 0;
    const why = open >= l.maxConnections ? `${l.maxConnections} connections open (--max-connections)` : mine >= l.maxConnectionsPerIp ? `${l.maxConnectionsPerIp} connections open from ${ip} (--max-connections-per-ip)` : undefined;
    if (why) {
      ctx.emit(stamp({ event: 'refused', address: ip, reason: why }));
      socket.destroy();
      return;
    }
    open++;
    perIp.set(ip, mine + 1);
    socket.once('close', () => {
      open--;
      const n = (perIp.get(ip) ?? 1) - 1;
      if (n === 0) perIp.delete(ip);
      else perIp.set(ip, n);
    });
  });
  // malformed requests, oversize headers, header timeouts: an answer when the socket still takes one
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    ctx.emit(stamp({ event: 'client-error', address: clientAddress(socket), status, reason: err.code ?? err.message }));
    if (socket.writable && !socket.destroyed) socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  });
  // CONNECT (an authority-form target) is not a request this server answers
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    ctx.emit(stamp({ event: 'request', address: clientAddress(socket), method: 'CONNECT', target: String(req.url).slice(0, 200), status: 405, bytes: 0, complete: true, ms: 0, reason: 'only GET and HEAD' }));
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });
  return server;
}

async function handle(ctx: BootHttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = Date.now();
  const address = clientAddress(req.socket);
  const out: Outcome = { status: 0, bytes: 0, record: false };
  ctx.totals.requests++;
  res.once('close', () => {
    const complete = res.writableFinished && (out.length === undefined || out.bytes === out.length || req.method === 'HEAD');
    const ms = Date.now() - started;
    const target = String(req.url ?? '').slice(0, 200);
    ctx.totals.bytes += out.bytes;
    ctx.emit(stamp({
      event: 'request', address, method: req.method ?? '', target, status: out.status, bytes: out.bytes, ...(out.length === undefined ? {} : { length: out.length }), complete, ms,
      ...(out.kind ? { kind: out.kind } : {}), ...(out.machine ? { machine: out.machine } : {}), ...(out.imageId ? { imageId: out.imageId } : {}),
      ...(out.selector ? { selector: out.selector } : {}), ...(out.reason ? { reason: out.reason } : {}),
    }));
    if (out.record && out.kind) {
      ctx.recorder.record({
        at: new Date(started).toISOString(), address, kind: out.kind, path: target.split('?')[0]!, status: out.status, bytes: out.bytes, complete, ms,
        ...(out.machine ? { machine: out.machine } : {}), ...(out.imageId ? { imageId: out.imageId } : {}), ...(out.selector ? { selector: out.selector } : {}),
        ...(out.length === undefined ? {} : { length: out.length }),
      });
    }
  });
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, out, 405, 'only GET and HEAD\n', { Allow: 'GET, HEAD' });
  const route = routeRequest(req.url ?? '');
  if ('status' in route) {
    out.reason = route.reason;
    return sendText(res, out, route.status, `${route.reason}\n`);
  }
  out.record = true;
  out.kind = route.kind;
  const machine = machineName(route.machine);
  if (machine) out.machine = machine;
  if (route.kind === 'script') return sendScript(ctx, req, res, out, route);
  return sendBootFile(ctx, req, res, out, route);
}

function sendText(res: ServerResponse, out: Outcome, status: number, text: string, headers: Record<string, string> = {}): void {
  out.status = status;
  const body = Buffer.from(text);
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': 'no-store', ...headers });
  out.length = res.req.method === 'HEAD' ? 0 : body.length;
  if (res.req.method === 'HEAD') return void res.end();
  out.bytes = body.length;
  res.end(body);
}

async function sendScript(ctx: BootHttpContext, req: IncomingMessage, res: ServerResponse, out: Outcome, route: Extract<Route, { kind: 'script' }>): Promise<void> {
  const m = route.machine;
  let script: string;
  if (!m.mac && !m.uuid) {
    out.kind = 'chain';
    script = await renderChainScript(SCRIPT_PATH);
  } else {
    // read per request: an assignment made by another aim process counts from the next boot on
    const a = matchAssignment(await ctx.repo.catalog.pxe.assignments(), m);
    if (!a) {
      out.kind = 'unassigned';
      script = await renderUnassignedScript(m, ctx.server, SCRIPT_PATH);
    } else {
      out.selector = a.selector.key;
      out.imageId = a.imageId;
      script = await bootScriptFor(ctx, a, m, out);
    }
  }
  const body = Buffer.from(script);
  const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
  out.status = 200;
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': 'no-store', ETag: etag });
  if (req.method === 'HEAD') {
    out.length = 0;
    return void res.end();
  }
  out.length = body.length;
  out.bytes = body.length;
  res.end(body);
}

async function bootScriptFor(ctx: BootHttpContext, a: PxeAssignment, m: MachineFacts, out: Outcome): Promise<string> {
  if (!(await ctx.repo.catalog.getImage(a.imageId))) {
    out.kind = 'unassigned';
    out.reason = 'the assigned image is not in the repository';
    return renderUnavailableScript(m, a, `image ${a.imageId.slice(0, 12)} is no longer in the repository`, SCRIPT_PATH);
  }
  ctx.prepare(a);
  const bootId = bootIdOf(a);
  return renderBootScript({ machine: m, assignment: a, server: ctx.server, scriptPath: SCRIPT_PATH, kernelPath: `/boot/${bootId}/${BOOT_FILES.kernel}`, initrdPath: `/boot/${bootId}/${BOOT_FILES.initrd}` });
}

async function sendBootFile(ctx: BootHttpContext, req: IncomingMessage, res: ServerResponse, out: Outcome, route: Extract<Route, { kind: 'kernel' | 'initrd' }>): Promise<void> {
  // only what is assigned now is served: the boot id must be one of the current assignments'
  const a = (await ctx.repo.catalog.pxe.assignments()).find((x) => bootIdOf(x) === route.bootId);
  if (!a) {
    out.reason = 'no assignment boots this';
    return sendText(res, out, 404, 'not assigned\n');
  }
  out.imageId = a.imageId;
  out.selector = a.selector.key;
  let planned: PlannedBoot;
  try {
    planned = await ctx.plans.get(a);
  } catch (e) {
    out.reason = (e as Error).message;
    return sendText(res, out, 503, `cannot be served: ${(e as Error).message}\n`, { 'Retry-After': '30' });
  }
  const file = route.kind === 'kernel' ? planned.kernel : planned.initrd;
  const found = await ctx.cache.get(file.key, file.produce, route.kind === 'kernel' ? planned.kernel.size : undefined);
  if ('ready' in found) return sendCached(ctx, req, res, out, found.ready, file.etag);
  return sendGrowing(ctx, req, res, out, found.job, file.etag);
}

const BINARY = { 'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-cache' } as const;

async function sendCached(ctx: BootHttpContext, req: IncomingMessage, res: ServerResponse, out: Outcome, file: CachedFile, etag: string): Promise<void> {
  const r = answerRange({ range: header(req, 'range'), ifRange: header(req, 'if-range'), ifNoneMatch: header(req, 'if-none-match') }, file.size, etag);
  if (r.kind === 'not-modified') {
    out.status = 304;
    out.length = 0;
    res.writeHead(304, { ETag: etag, 'Cache-Control': 'no-cache' });
    return void res.end();
  }
  if (r.kind === 'unsatisfiable') return sendText(res, out, 416, 'range not satisfiable\n', { 'Content-Range': `bytes */${file.size}` });
  const [start, end] = r.kind === 'partial' ? [r.start, r.end] : [0, file.size - 1];
  const length = Math.max(0, end - start + 1);
  out.status = r.kind === 'partial' ? 206 : 200;
  res.writeHead(out.status, { ...BINARY, ETag: etag, 'Content-Length': length, ...(r.kind === 'partial' ? { 'Content-Range': `bytes ${start}-${end}/${file.size}` } : {}) });
  if (req.method === 'HEAD' || length === 0) {
    out.length = 0;
    return void res.end();
  }
  out.length = length;
  await watchBody(ctx, res, out, () => writeFileRange(res, file.path, start, length, (n) => (out.bytes += n)));
}

/**
 * An artifact still being written: its bytes as they come. A kernel's length is known, so it has
 * a Content-Length (and a range is served from what is written); a compressed initrd's is not
 * until the end, so it goes out chunked, and ranges wait for the cached file.
 */
async function sendGrowing(ctx: BootHttpContext, req: IncomingMessage, res: ServerResponse, out: Outcome, job: CacheJob, etag: string): Promise<void> {
  const size = job.length;
  const r = size === undefined ? ({ kind: 'full' } as const) : answerRange({ range: header(req, 'range'), ifRange: header(req, 'if-range'), ifNoneMatch: header(req, 'if-none-match') }, size, etag);
  if (r.kind === 'not-modified') {
    out.status = 304;
    out.length = 0;
    res.writeHead(304, { ETag: etag });
    return void res.end();
  }
  if (r.kind === 'unsatisfiable') return sendText(res, out, 416, 'range not satisfiable\n', { 'Content-Range': `bytes */${size}` });
  const [start, end] = r.kind === 'partial' ? [r.start, r.end] : [0, size === undefined ? undefined : size - 1];
  out.status = r.kind === 'partial' ? 206 : 200;
  const length = end === undefined ? undefined : end - start + 1;
  res.writeHead(out.status, {
    ...BINARY, ETag: etag,
    ...(length === undefined ? {} : { 'Content-Length': length }),
    ...(r.kind === 'partial' ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
  });
  if (req.method === 'HEAD') {
    out.length = 0;
    return void res.end();
  }
  if (length !== undefined) out.length = length;
  const stop = AbortSignal.any([ctx.signal, abortOnClose(res)]);
  // the first bytes may wait for the compressor: no idle timeout meanwhile, the rate is checked
  // only against what was there to send
  res.socket?.setTimeout(0);
  try {
    const body = Readable.from(limitBytes(job.follow(start, stop), length), { objectMode: false });
    body.on('data', (chunk: Buffer) => (out.bytes += chunk.length));
    // a client that goes away destroys the response, and pipeline then closes the source too
    await watchBody(ctx, res, out, () => pipeline(body, res), () => job.written() - start);
  } finally {
    res.socket?.setTimeout(ctx.limits.idleTimeoutMs);
  }
}

async function* limitBytes(source: AsyncIterable<Buffer>, length: number | undefined): AsyncGenerator<Buffer> {
  if (length === undefined) return yield* source;
  let left = length;
  for await (const chunk of source) {
    if (left <= 0) return;
    const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= part.length;
    yield part;
    if (left === 0) return;
  }
}

function abortOnClose(res: ServerResponse): AbortSignal {
  const c = new AbortController();
  res.once('close', () => c.abort());
  return c.signal;
}

/**
 * Runs `send` (which writes the body, counting what goes out in out.bytes), cuts a client that
 * takes it slower than the minimum rate (the idle timeout already cuts one that stops reading),
 * and ends it when the server stops.
 */
async function watchBody(ctx: BootHttpContext, res: ServerResponse, out: Outcome, send: () => Promise<void>, available?: () => number): Promise<void> {
  let seen = 0;
  const watchdog = setInterval(() => {
    const min = (ctx.limits.minBytesPerSecond * RATE_WINDOW_MS) / 1000;
    // the client is slow when bytes were waiting for it, not when the server had none yet
    const waiting = available === undefined || available() - out.bytes > min;
    if (waiting && out.bytes - seen < min) {
      out.reason = `slower than ${ctx.limits.minBytesPerSecond} bytes/s`;
      res.destroy();
    }
    seen = out.bytes;
  }, RATE_WINDOW_MS);
  const onStop = () => res.destroy();
  ctx.signal.addEventListener('abort', onStop, { once: true });
  try {
    await send().catch((e: unknown) => {
      if (!res.destroyed) out.reason = (e as Error).message;
      res.destroy();
    });
  } finally {
    clearInterval(watchdog);
    ctx.signal.removeEventListener('abort', onStop);
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}
