import { execa, type ResultPromise } from 'execa';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { runJs } from './cli.js';

/** An event line of `aim pxe serve --json`. */
export interface ServeEventJson {
  event: string;
  at: string;
  [k: string]: unknown;
}

export interface RunningServe {
  pid: number;
  /** http://host:port from the listening event. */
  url: string;
  port: number;
  events: ServeEventJson[];
  stderr(): string;
  /** Polls the events until one satisfies `pred` (given the event and its index). */
  waitFor(pred: (e: ServeEventJson, index: number) => boolean, what: string, deadlineMs?: number): Promise<ServeEventJson>;
  /** SIGTERM (or the given signal) and the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | undefined>;
  process: ResultPromise;
}

/**
 * Runs `aim pxe serve --json` from the built CLI, optionally inside a network namespace (`ip
 * netns exec`), and follows its event stream. Resolves once the server listens; fails with its
 * output when it exits first.
 */
export async function startServe(repo: string, args: string[], options: { netns?: string; deadlineMs?: number } = {}): Promise<RunningServe> {
  const cmd = [process.execPath, runJs, 'pxe', 'serve', '--repo', repo, '--json', ...args];
  const child = options.netns ? execa('ip', ['netns', 'exec', options.netns, ...cmd], { reject: false, buffer: false }) : execa(cmd[0]!, cmd.slice(1), { reject: false, buffer: false });
  const events: ServeEventJson[] = [];
  const bad: string[] = [];
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      events.push(JSON.parse(line) as ServeEventJson);
    } catch {
      bad.push(line);
    }
  });
  let exited = false;
  void child.then(() => (exited = true));
  const waitFor = async (pred: (e: ServeEventJson, index: number) => boolean, what: string, deadlineMs = 30_000) => {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const hit = events.find((e, i) => pred(e, i));
      if (hit) return hit;
      if (bad.length) throw new Error(`aim pxe serve printed a line that is not JSON: ${bad[0]}`);
      if (exited || Date.now() > end) throw new Error(`${exited ? 'aim pxe serve exited' : 'timed out'} waiting for ${what}; events: ${JSON.stringify(events.slice(-8))}; stderr: ${err.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const listening = await waitFor((e) => e.event === 'listening' || 'error' in e, 'the server to listen', options.deadlineMs ?? 60_000);
  if (!('http' in listening)) throw new Error(`aim pxe serve failed: ${JSON.stringify(listening)}`);
  const url = String(listening.http);
  return {
    pid: child.pid!,
    url,
    port: Number(new URL(url).port),
    events,
    stderr: () => err,
    waitFor,
    async stop(signal = 'SIGTERM') {
      if (!exited) child.kill(signal);
      const r = await child;
      return r.exitCode;
    },
    process: child,
  };
}

export interface RawAnswer {
  status: number;
  head: string;
  headers: Record<string, string>;
  body: Buffer;
  /** The server closed the connection (rather than our deadline). */
  closedByServer: boolean;
}

/**
 * Sends bytes as they are (any method, target or header, however malformed) and reads what comes
 * back until the server closes or `timeoutMs` passes.
 */
export function rawRequest(port: number, request: string | Buffer, options: { host?: string; localAddress?: string; timeoutMs?: number } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect({ host: options.host ?? '127.0.0.1', port, ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
    const chunks: Buffer[] = [];
    let byServer = true;
    const timer = setTimeout(() => {
      byServer = false;
      s.destroy();
    }, options.timeoutMs ?? 5000);
    s.on('connect', () => s.write(request));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e: Error & { code?: string }) => {
      if (e.code !== 'ECONNRESET') reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(parseAnswer(Buffer.concat(chunks), byServer));
    });
  });
}

export function parseAnswer(all: Buffer, closedByServer: boolean): RawAnswer {
  const end = all.indexOf('\r\n\r\n');
  const head = end < 0 ? all.toString('latin1') : all.subarray(0, end).toString('latin1');
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0), head, headers, body: end < 0 ? Buffer.alloc(0) : all.subarray(end + 4), closedByServer };
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Body bytes received (with `discard`, the body itself is not kept). */
  bytes: number;
  sha256: string;
}

/** One request on a fresh connection (from `localAddress`, a 127.x.y.z, when given); the body de-chunked. */
export function httpGet(url: string, options: { headers?: Record<string, string>; method?: string; localAddress?: string; timeoutMs?: number; discard?: boolean } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false, timeout: options.timeoutMs ?? 60_000, ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
        if (!options.discard) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), bytes, sha256: hash.digest('hex') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}
