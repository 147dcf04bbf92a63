import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AimError, ConfigError, ExitCode, InterruptedError, errnoCode } from '../../src/lib/errors.js';
import { redact } from '../../src/lib/redact.js';

/**
 * An ESXi host's or vCenter's datastore through its HTTP file API:
 * `HEAD|PUT|DELETE /folder/<path>?dcPath=<datacenter>&dsName=<datastore>` with basic
 * authentication. One client holds one keep-alive connection, closed by close(), so no idle
 * socket keeps the process alive. No automatic retry.
 */

/** Where files go: `https://host/folder/<folder>?dcPath=<dc>&dsName=<ds>`, as the datastore browser shows it. */
export interface DatastoreTarget {
  origin: string;
  /** Directory inside the datastore, without leading or trailing slash ("" for its root). */
  folder: string;
  dcPath: string;
  dsName: string;
}

export interface DatastoreCredentials {
  user: string;
  password: string;
}

/** What a client needs: where (the origin), who, and whether a self-signed certificate is accepted. */
export interface DatastoreSettings {
  target: DatastoreTarget;
  credentials: DatastoreCredentials;
  /** Accept a self-signed certificate (ESXi's default). */
  insecure?: boolean;
}

const USAGE_HINT = 'use https://<host>/folder/<directory>?dcPath=<datacenter>&dsName=<datastore> (ESXi: dcPath=ha-datacenter)';

/** Parses and checks a datastore URL; a ConfigError says what is wrong. */
export function parseDatastoreUrl(text: string): DatastoreTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // not echoed when it may hold credentials that a parse failure left unrecognisable
    throw new ConfigError(text.includes('@') ? '--datastore-url is not a URL (not shown: it holds an "@", perhaps credentials)' : `--datastore-url "${text}" is not a URL`, { hint: USAGE_HINT });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError(`--datastore-url must be https:// (or http://), not ${url.protocol}`, { hint: USAGE_HINT });
  if (url.username || url.password) {
    throw new ConfigError('--datastore-url must not carry credentials', { hint: 'set AIM_VMWARE_USER and AIM_VMWARE_PASSWORD instead (they are never written anywhere)' });
  }
  const path = decodeURIComponent(url.pathname).replace(/\/+$/, '');
  if (path !== '/folder' && !path.startsWith('/folder/')) throw new ConfigError(`--datastore-url path must start with /folder (got ${url.pathname})`, { hint: USAGE_HINT });
  const folder = path.slice('/folder'.length).replace(/^\/+/, '');
  if (folder.split('/').some((p) => p === '..' || p === '.')) throw new ConfigError('--datastore-url folder must not contain "." or ".." components', { hint: USAGE_HINT });
  const dcPath = url.searchParams.get('dcPath');
  const dsName = url.searchParams.get('dsName');
  if (!dcPath || !dsName) throw new ConfigError('--datastore-url needs dcPath and dsName query parameters', { hint: USAGE_HINT });
  return { origin: url.origin, folder, dcPath, dsName };
}

/** The URL of one file in the target folder. */
export function datastoreFileUrl(target: DatastoreTarget, name: string): URL {
  const segments = [...(target.folder ? target.folder.split('/') : []), name].map(encodeURIComponent);
  const url = new URL(`/folder/${segments.join('/')}`, target.origin);
  url.searchParams.set('dcPath', target.dcPath);
  url.searchParams.set('dsName', target.dsName);
  return url;
}

/** "[datastore1] aim/nginx.ova", the way vSphere names datastore paths. */
export function datastorePath(target: DatastoreTarget, name: string): string {
  return `[${target.dsName}] ${target.folder ? `${target.folder}/` : ''}${name}`;
}

export function datastoreError(code: string, message: string, hint?: string): AimError {
  return new AimError(code, message, ExitCode.provider, { hint });
}

interface Reply {
  status: number;
  body: string;
  length?: number;
}

function statusError(what: string, url: URL, reply: Reply): AimError {
  const path = url.pathname;
  if (reply.status === 401 || reply.status === 403) {
    return datastoreError('E_DATASTORE_AUTH', `the datastore refused the credentials (HTTP ${reply.status} on ${what} ${path})`, 'check AIM_VMWARE_USER and AIM_VMWARE_PASSWORD and the user’s datastore permissions');
  }
  // redacted before it is cut short: a secret cut in half is no longer recognisable
  const detail = redact(reply.body.replace(/\s+/g, ' ').trim()).slice(0, 200);
  return datastoreError('E_DATASTORE_HTTP', `${what} ${path} failed: HTTP ${reply.status}${detail ? ` (${detail})` : ''}`, 'aim does not retry uploads: run the command again (aim ship resume <publication> continues an interrupted one)');
}

const CERT_ERRORS = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED']);

/** Network and TLS failures as one-line provider errors; a certificate problem points at --insecure; an abort is an interruption. */
function networkError(e: unknown, origin: string, signal: AbortSignal | undefined): AimError {
  if (signal?.aborted) return signal.reason instanceof AimError ? signal.reason : new InterruptedError('interrupted: the datastore request was stopped');
  if (e instanceof AimError) return e;
  const code = errnoCode(e);
  const hint = code && CERT_ERRORS.has(code)
    ? 'the host’s certificate is not trusted: pass --insecure for ESXi’s self-signed certificate (or add its CA to NODE_EXTRA_CA_CERTS)'
    : 'aim does not retry uploads: check the host and run the command again';
  return datastoreError('E_DATASTORE_HTTP', `talking to ${origin} failed: ${(e as Error).message ?? String(e)}`, hint);
}

/** A file as HEAD sees it. */
export interface RemoteFile {
  exists: boolean;
  /** Content-Length of an existing file. */
  bytes?: number;
}

/**
 * One HTTP client for a run: a keep-alive agent holding at most one socket, destroyed by close().
 * Every request takes the run's AbortSignal; failures are AimErrors (E_DATASTORE_AUTH,
 * E_DATASTORE_HTTP, E_INTERRUPTED when aborted).
 */
export class DatastoreClient {
  private readonly agent: http.Agent;
  private readonly auth: string;

  constructor(private readonly settings: DatastoreSettings) {
    const secure = settings.target.origin.startsWith('https:');
    this.agent = secure
      ? new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: !settings.insecure })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.auth = `Basic ${Buffer.from(`${settings.credentials.user}:${settings.credentials.password}`).toString('base64')}`;
  }

  close(): void {
    this.agent.destroy();
  }

  /** Whether the file exists, and its size. */
  async head(url: URL, signal?: AbortSignal): Promise<RemoteFile> {
    const reply = await this.send('HEAD', url, undefined, signal);
    if (reply.status === 404) return { exists: false };
    if (reply.status !== 200) throw statusError('HEAD', url, reply);
    return { exists: true, ...(reply.length !== undefined ? { bytes: reply.length } : {}) };
  }

  /** Streams a local file to `url`; resolves to what was sent (bytes, sha256 of the bytes sent). */
  async put(url: URL, path: string, options: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {}): Promise<{ bytes: number; sha256: string }> {
    const size = (await stat(path)).size;
    const hash = createHash('sha256');
    let done = 0;
    const reply = await this.send('PUT', url, { path, size, onChunk: (chunk) => {
      hash.update(chunk);
      done += chunk.length;
      options.onProgress?.(done, size);
    } }, options.signal);
    if (reply.status !== 200 && reply.status !== 201 && reply.status !== 204) throw statusError('PUT', url, reply);
    return { bytes: size, sha256: hash.digest('hex') };
  }

  /** Deletes the file: "removed", or "gone" when it was not there. */
  async delete(url: URL, signal?: AbortSignal): Promise<'removed' | 'gone'> {
    const reply = await this.send('DELETE', url, undefined, signal);
    if (reply.status === 404) return 'gone';
    if (reply.status >= 300) throw statusError('DELETE', url, reply);
    return 'removed';
  }

  private async send(method: string, url: URL, body: { path: string; size: number; onChunk: (chunk: Buffer) => void } | undefined, signal: AbortSignal | undefined): Promise<Reply> {
    try {
      signal?.throwIfAborted();
      return await this.request(method, url, body, signal);
    } catch (e) {
      throw networkError(e, this.settings.target.origin, signal);
    }
  }

  /**
   * Sends one request. The body (a file) is streamed; when the server answers before it has read
   * everything (an error), sending stops. The reply body is always read so the socket can be reused.
   */
  private request(method: string, url: URL, body?: { path: string; size: number; onChunk: (chunk: Buffer) => void }, signal?: AbortSignal): Promise<Reply> {
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<Reply>((resolve, reject) => {
      const headers: Record<string, string | number> = { Authorization: this.auth };
      if (body) {
        headers['Content-Type'] = 'application/octet-stream';
        headers['Content-Length'] = body.size;
      }
      const req = mod.request(url, { method, agent: this.agent, headers, signal });
      let settled = false;
      let status: number | undefined;
      let length: number | undefined;
      const chunks: Buffer[] = [];
      let kept = 0;
      let handedOver = 0;
      const finish = () => {
        if (settled) return;
        settled = true;
        // A reply that came before the whole body was handed over leaves the connection unusable.
        // (Counted, not req.writableFinished: that flag may lag behind a reply that is already in.)
        if (body && handedOver < body.size) req.destroy();
        resolve({ status: status ?? 0, body: Buffer.concat(chunks).toString('utf8').slice(0, 4096), ...(length !== undefined ? { length } : {}) });
      };
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        reject(e);
      };
      // Once the status is known it is the answer, even if the server then drops the connection.
      req.on('error', (e) => (status === undefined ? fail(e) : finish()));
      req.on('response', (res) => {
        status = res.statusCode ?? 0;
        const given = Number(res.headers['content-length']);
        if (Number.isSafeInteger(given) && given >= 0) length = given;
        res.on('data', (c: Buffer) => {
          if (kept < 4096) chunks.push(c);
          kept += c.length;
        });
        res.on('end', finish);
        res.on('close', finish);
        res.on('error', finish);
      });
      if (!body) {
        req.end();
        return;
      }
      const counter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          body.onChunk(chunk);
          handedOver += chunk.length;
          done(null, chunk);
        },
      });
      pipeline(createReadStream(body.path), counter, req).catch((e: unknown) => {
        if (status !== undefined) return; // the server answered early; that answer decides
        req.destroy();
        fail(e);
      });
    });
  }
}
