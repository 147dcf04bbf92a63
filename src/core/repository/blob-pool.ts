import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { InternalError } from '../../lib/errors.js';
import { deserializeError, type SerializedError } from '../../lib/thread-errors.js';
import type { ListedStatus } from '../../lib/listed-file.js';
import type { DataExtent } from '../model/sparse.js';
import type { SharedGuardState, SpaceGuard } from './space-guard.js';
import type { InspectorModule } from './types.js';

/** What a writer thread is given at start. */
export interface WorkerInit {
  objectsDir: string;
  /** The thread's own scratch directory. */
  scratch: string;
}

/**
 * One local content to store: a descriptor (the caller keeps it open until the job settles), a
 * path, or the file `name` of the directory open as `dir` (BlobWriter.putListed).
 */
export interface WriteJob {
  fd?: number;
  /** Paths and names as latin1 strings: raw bytes, and cheap to send. */
  path?: string;
  offset?: number;
  length?: number;
  dir?: number;
  name?: string;
  label?: string;
  /** Send the whole content back when it starts with these bytes, as hex (and fitted the read buffer). */
  magic?: string;
  /** Instead of sending the content back, run this inspector (BatchRequest.inspectors) on it and send its result. */
  inspect?: number;
}

export interface StoredResult {
  hash: string;
  size: number;
  sparse?: DataExtent[];
  /** The first bytes, hex. */
  head: string;
  content?: Uint8Array;
  /** What the job's inspector returned. */
  inspected?: unknown;
  created: boolean;
}

export interface WriteResult {
  /** Listed files: what was listed and opened. */
  status?: ListedStatus;
  /** Listed files with holes: opened, checked, not read (the main thread now owns the descriptor). */
  holesFd?: number;
  stored?: StoredResult;
}

/**
 * Batches go as JSON text: one string is copied in one go, where the structured clone of many
 * small objects and buffers cost more than the work they described.
 */
export interface BatchRequest {
  id: number;
  /** Set when the space guard changed since the thread's last batch (null: none now). */
  guard?: SharedGuardState | null;
  /** Inspectors the thread has not been told of yet: id, module URL, export name. */
  inspectors?: [number, string, string][];
  /** JSON of WriteJob[]. */
  jobs: string;
}

export interface BatchReply {
  id: number;
  /** JSON of (WriteResult | { error })[], without contents. */
  results: string;
  /** Contents sent back for `inspect` (transferred), by job index. */
  contents: [number, Uint8Array][];
}

export type ReplyItem = WriteResult | { error: SerializedError };

interface Pending {
  resolve: (r: WriteResult) => void;
  reject: (e: unknown) => void;
}

interface Thread {
  worker: Worker;
  batches: Map<number, Pending[]>;
  /** Jobs sent and not answered. */
  load: number;
  /** The guard the thread charges (as last sent). */
  guard?: SpaceGuard;
  /** Inspector ids the thread was told of. */
  inspectors: Set<number>;
  /** Called when the thread has nothing outstanding. */
  idle: (() => void)[];
  failed?: Error;
}

/** Jobs sent to a thread in one message. */
const BATCH = 64;

const WORKER_SCRIPT = new URL('./blob-worker.js', import.meta.url);

/**
 * Writer threads for the blob store: local files are read, hashed and stored on every core
 * while the main thread walks the source. For trees of many small files the per-file system
 * calls (read, stat, create, write, link, unlink) are most of an import's time; here they run
 * beside the walk's own (list, open, fstat) instead of after them.
 *
 * Jobs are sent in batches (one message per BATCH jobs, or whatever is queued when the main
 * thread next waits) to the least loaded thread; each thread answers a batch with one message.
 * A thread that dies fails its outstanding jobs with the reason. Threads hold the process open
 * only while they have work.
 */
export class BlobWorkerPool {
  private readonly threads: Thread[] = [];
  private queue: { job: WriteJob; pending: Pending }[] = [];
  private flushScheduled = false;
  private nextId = 0;
  /** Inspector modules by "url#name" with the id jobs name them by (their index in `inspectors`, plus one). */
  private readonly inspectorIds = new Map<string, number>();
  private readonly inspectors: InspectorModule[] = [];

  /**
   * How many writer threads to use: AIM_BLOB_THREADS if set (0: none), else one per core (at
   * most 4); none on a single core, or when running from TypeScript sources (tests), where the
   * compiled worker script does not exist.
   */
  static size(): number {
    const env = process.env.AIM_BLOB_THREADS;
    const wanted = env !== undefined && env !== '' ? Math.max(0, Math.min(16, Number(env) || 0)) : availableParallelism() > 1 ? Math.min(4, availableParallelism()) : 0;
    return wanted > 0 && existsSync(fileURLToPath(WORKER_SCRIPT)) ? wanted : 0;
  }

  constructor(
    objectsDir: string,
    scratchDir: string,
    count: number,
    private readonly guard: () => SpaceGuard | undefined,
  ) {
    for (let i = 0; i < count; i++) {
      const init: WorkerInit = { objectsDir, scratch: join(scratchDir, `w${i}`) };
      const worker = new Worker(WORKER_SCRIPT, { workerData: init });
      const thread: Thread = { worker, batches: new Map(), load: 0, idle: [], inspectors: new Set() };
      worker.unref();
      worker.on('message', (reply: BatchReply) => this.answered(thread, reply));
      worker.on('error', (e) => this.died(thread, e));
      worker.on('exit', (code) => this.died(thread, new InternalError(`a blob writer thread exited (${code}) with work outstanding`)));
      this.threads.push(thread);
    }
  }

  /** The id jobs name an inspector module by (WriteJob.inspect). */
  inspector(module: InspectorModule): number {
    const key = `${module.url}#${module.name}`;
    let id = this.inspectorIds.get(key);
    if (id === undefined) {
      id = this.inspectors.push(module);
      this.inspectorIds.set(key, id);
    }
    return id;
  }

  /** Stores one local content on a writer thread. */
  put(job: WriteJob): Promise<WriteResult> {
    return new Promise<WriteResult>((resolve, reject) => {
      this.queue.push({ job, pending: { resolve, reject } });
      if (this.queue.length >= BATCH) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Waits for every job sent, then stops the threads. */
  async close(): Promise<void> {
    this.flush();
    await Promise.all(
      this.threads.map(async (t) => {
        if (t.batches.size > 0) await new Promise<void>((r) => t.idle.push(r));
        t.failed ??= new InternalError('the blob writer threads were stopped');
        await t.worker.terminate();
      }),
    );
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.queue.length > 0) {
      const live = this.threads.filter((t) => !t.failed);
      const batch = this.queue.splice(0, BATCH);
      if (live.length === 0) {
        for (const { pending } of batch) pending.reject(this.threads[0]?.failed ?? new InternalError('no blob writer thread'));
        continue;
      }
      const thread = live.reduce((a, b) => (b.load < a.load ? b : a));
      const id = ++this.nextId;
      thread.batches.set(id, batch.map((b) => b.pending));
      thread.load += batch.length;
      if (thread.batches.size === 1) thread.worker.ref();
      const request: BatchRequest = { id, jobs: JSON.stringify(batch.map((b) => b.job)) };
      const told = this.untold(thread, batch);
      if (told.length > 0) request.inspectors = told;
      const guard = this.guard();
      if (guard !== thread.guard) {
        thread.guard = guard;
        request.guard = guard ? guard.share() : null;
      }
      thread.worker.postMessage(request);
    }
  }

  /** Inspectors the batch's jobs use that the thread has not been told of (now recorded as told). */
  private untold(thread: Thread, batch: { job: WriteJob }[]): [number, string, string][] {
    const out: [number, string, string][] = [];
    for (const { job } of batch) {
      if (job.inspect === undefined || thread.inspectors.has(job.inspect)) continue;
      thread.inspectors.add(job.inspect);
      const { url, name } = this.inspectors[job.inspect - 1]!;
      out.push([job.inspect, url, name]);
    }
    return out;
  }

  private answered(thread: Thread, reply: BatchReply): void {
    const pending = thread.batches.get(reply.id);
    if (!pending) return;
    thread.batches.delete(reply.id);
    thread.load -= pending.length;
    if (thread.batches.size === 0) this.settled(thread);
    const results = JSON.parse(reply.results) as ReplyItem[];
    for (const [i, content] of reply.contents) (results[i] as WriteResult).stored!.content = content;
    results.forEach((r, i) => {
      if ('error' in r) pending[i]!.reject(deserializeError(r.error));
      else pending[i]!.resolve(r);
    });
  }

  private died(thread: Thread, e: Error): void {
    if (thread.failed && thread.batches.size === 0) return;
    thread.failed ??= e;
    for (const pending of thread.batches.values()) for (const p of pending) p.reject(e);
    thread.batches.clear();
    thread.load = 0;
    this.settled(thread);
  }

  private settled(thread: Thread): void {
    thread.worker.unref();
    for (const r of thread.idle.splice(0)) r();
  }
}
