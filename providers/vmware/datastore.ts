import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AimError, ConfigError, ExitCode, InterruptedError, errnoCode } from '../../src/lib/errors.js';
import { redact } from '../../src/lib/redact.js';
import type { Reporter } from '../../src/lib/reporter.js';
import type { Published } from '../../src/core/ship/provider.js';

/**
 * Upload to an ESXi host's or vCenter's datastore through its HTTP file API:
 * `PUT /folder/<path>?dcPath=<datacenter>&dsName=<datastore>` with basic authentication.
 * One connection (keep-alive) is used for all requests and closed at the end, so no idle socket
 * keeps the process alive. There is no automatic retry: a failed run removes what it uploaded and
 * says so; run it again.
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

export interface DatastoreFile {
  /** Local file to upload. */
  path: string;
  /** File name in the target folder. */
  name: string;
}

export interface DatastoreOptions {
  target: DatastoreTarget;
  credentials: DatastoreCredentials;
  /** Accept a self-signed certificate (ESXi's default). */
  insecure?: boolean;
  /** Replace files that exist; without it an existing file stops the run before anything is sent. */
  overwrite?: boolean;
  reporter: Reporter;
  signal?: AbortSignal;
}

/** How long one cleanup DELETE may take before it is given up (and reported as left over). */
const CLEANUP_TIMEOUT_MS = 10_000;

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

function datastoreError(code: string, message: string, hint?: string): AimError {
  return new AimError(code, message, ExitCode.provider, { hint });
}

interface Reply {
  status: number;
  body: string;
}

/** One HTTP client for a run: a keep-alive agent holding at most one socket, destroyed by close(). */
class DatastoreClient {
  private readonly agent: http.Agent;
  private readonly auth: string;

  constructor(private readonly options: DatastoreOptions) {
    const secure = options.target.origin.startsWith('https:');
    this.agent = secure
      ? new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: !options.insecure })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.auth = `Basic ${Buffer.from(`${options.credentials.user}:${options.credentials.password}`).toString('base64')}`;
  }

  close(): void {
    this.agent.destroy();
  }

  /**
   * Sends one request. The body (a file) is streamed; when the server answers before it has read
   * everything (an error), sending stops. The reply body is always read so the socket can be reused.
   */
  request(method: string, url: URL, body?: { path: string; size: number; onChunk: (chunk: Buffer) => void }, signal?: AbortSignal): Promise<Reply> {
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
      const chunks: Buffer[] = [];
      let kept = 0;
      let handedOver = 0;
      const finish = () => {
        if (settled) return;
        settled = true;
        // A reply that came before the whole body was handed over leaves the connection unusable.
        // (Counted, not req.writableFinished: that flag may lag behind a reply that is already in.)
        if (body && handedOver < body.size) req.destroy();
        resolve({ status: status ?? 0, body: Buffer.concat(chunks).toString('utf8').slice(0, 4096) });
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

function statusError(what: string, url: URL, reply: Reply): AimError {
  const path = `${url.pathname}`;
  if (reply.status === 401 || reply.status === 403) {
    return datastoreError('E_DATASTORE_AUTH', `the datastore refused the credentials (HTTP ${reply.status} on ${what} ${path})`, 'check AIM_VMWARE_USER and AIM_VMWARE_PASSWORD and the user’s datastore permissions');
  }
  // redacted before it is cut short: a secret cut in half is no longer recognisable
  const detail = redact(reply.body.replace(/\s+/g, ' ').trim()).slice(0, 200);
  return datastoreError('E_DATASTORE_HTTP', `${what} ${path} failed: HTTP ${reply.status}${detail ? ` (${detail})` : ''}`, 'aim does not retry uploads: run the command again');
}

/** HEADs each file: fails on bad credentials, and on existing files unless overwrite is set. Sends no data. */
async function preflight(client: DatastoreClient, options: DatastoreOptions, names: string[]): Promise<void> {
  const existing: string[] = [];
  for (const name of names) {
    const url = datastoreFileUrl(options.target, name);
    const reply = await client.request('HEAD', url, undefined, options.signal);
    if (reply.status === 200) existing.push(name);
    else if (reply.status !== 404) throw statusError('HEAD', url, reply);
  }
  if (existing.length > 0 && !options.overwrite) {
    throw datastoreError(
      'E_DATASTORE_EXISTS',
      `${existing.map((n) => datastorePath(options.target, n)).join(', ')} already exist${existing.length === 1 ? 's' : ''} on the datastore`,
      'pass --overwrite to replace, or choose another folder or --name',
    );
  }
}

/** Checks credentials and that nothing would be overwritten, before any build or upload. */
export async function checkDatastore(options: DatastoreOptions, names: string[]): Promise<void> {
  const client = new DatastoreClient(options);
  try {
    await preflight(client, options, names);
  } catch (e) {
    throw networkError(asInterrupted(e, options.signal), options.target.origin);
  } finally {
    client.close();
  }
}

const CERT_ERRORS = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED']);

/** Network and TLS failures as one-line provider errors; a certificate problem points at --insecure. */
function networkError(e: unknown, origin: string): AimError {
  if (e instanceof AimError) return e;
  const code = errnoCode(e);
  const hint = code && CERT_ERRORS.has(code)
    ? 'the host’s certificate is not trusted: pass --insecure for ESXi’s self-signed certificate (or add its CA to NODE_EXTRA_CA_CERTS)'
    : 'aim does not retry uploads: check the host and run the command again';
  return datastoreError('E_DATASTORE_HTTP', `talking to ${origin} failed: ${(e as Error).message ?? String(e)}`, hint);
}

function asInterrupted(e: unknown, signal: AbortSignal | undefined): unknown {
  if (!signal?.aborted) return e;
  return signal.reason instanceof AimError ? signal.reason : new InterruptedError('interrupted: the upload was stopped and what it sent removed');
}

/**
 * Uploads the files in order, streaming with progress. On any failure (an HTTP error, a dropped
 * connection, Ctrl-C) it DELETEs every file this run sent, including the one cut short, and
 * rethrows; it never retries.
 */
export async function uploadToDatastore(options: DatastoreOptions, files: DatastoreFile[]): Promise<Published[]> {
  const client = new DatastoreClient(options);
  const sent: URL[] = [];
  const published: Published[] = [];
  try {
    // Checked again, on purpose: `check` ran before a build that can take minutes, and another
    // run may have written these files since; their HEADs are cheap next to the uploads.
    await preflight(client, options, files.map((f) => f.name));
    for (const file of files) {
      const url = datastoreFileUrl(options.target, file.name);
      const size = (await stat(file.path)).size;
      const hash = createHash('sha256');
      let done = 0;
      let shown = 0;
      const stage = `upload ${file.name}`;
      options.reporter.emit({ type: 'stage', stage, status: 'start', detail: datastorePath(options.target, file.name) });
      sent.push(url);
      const reply = await client.request(
        'PUT',
        url,
        {
          path: file.path,
          size,
          onChunk: (chunk) => {
            hash.update(chunk);
            done += chunk.length;
            if (done - shown >= 8 << 20 || done === size) {
              shown = done;
              options.reporter.emit({ type: 'progress', stage, done, total: size, unit: 'bytes' });
            }
          },
        },
        options.signal,
      );
      if (reply.status !== 200 && reply.status !== 201 && reply.status !== 204) throw statusError('PUT', url, reply);
      options.reporter.emit({ type: 'stage', stage, status: 'done' });
      published.push({ kind: 'datastore file', location: datastorePath(options.target, file.name), bytes: size, sha256: hash.digest('hex') });
    }
    return published;
  } catch (e) {
    const error = networkError(asInterrupted(e, options.signal), options.target.origin);
    await removeSent(client, options, sent);
    throw error;
  } finally {
    client.close();
  }
}

/** Best effort: DELETE what this run sent (newest first); what cannot be removed is reported. */
async function removeSent(client: DatastoreClient, options: DatastoreOptions, sent: URL[]): Promise<void> {
  for (const url of [...sent].reverse()) {
    const name = decodeURIComponent(url.pathname.slice(url.pathname.lastIndexOf('/') + 1));
    try {
      // Not the run's signal (it may be the Ctrl-C that got us here), but a bound of its own.
      const reply = await client.request('DELETE', url, undefined, AbortSignal.timeout(CLEANUP_TIMEOUT_MS));
      if (reply.status >= 300 && reply.status !== 404) throw new Error(`HTTP ${reply.status}`);
      options.reporter.emit({ type: 'info', message: `removed ${datastorePath(options.target, name)} from the datastore` });
    } catch (e) {
      options.reporter.emit({ type: 'warn', code: 'W_DATASTORE_LEFTOVER', message: `could not remove ${datastorePath(options.target, name)}: ${(e as Error).message}; delete it by hand` });
    }
  }
}
