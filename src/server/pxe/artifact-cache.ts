import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { cancellationError, throwIfCancelled } from '../../lib/errors.js';

/** A finished artifact: a file named by its key. */
export interface CachedFile {
  key: string;
  path: string;
  size: number;
}

/**
 * An artifact being written into the cache. Readers follow it as it grows (`follow`), so the
 * first machine does not wait for the whole initrd to be compressed, and every reader reads from
 * the file: whatever the number of readers, one chunk per reader is in memory.
 */
export interface CacheJob {
  key: string;
  /** Final size, when known before the end (a kernel); an initrd's compressed size is not. */
  length?: number;
  /** Bytes written so far. */
  written(): number;
  done: Promise<CachedFile>;
  /** The bytes from `start`, as they are written, to the end; fails when the job fails. */
  follow(start: number, signal: AbortSignal): AsyncGenerator<Buffer>;
}

export type CacheLookup = { ready: CachedFile } | { job: CacheJob };

/** Keys are content hashes and prefixes aim chose: nothing else is a name in the cache directory. */
const KEY = /^[a-z]+-[0-9a-f]{64}$/;
const CHUNK = 1 << 20;

/**
 * Content-addressed files on disk: an artifact is produced once (streamed into a temporary file,
 * synced, renamed to its key), then served from the file with its size, ranges and ETag. Equal
 * keys are equal bytes, so the directory can be shared by servers of different repositories.
 * At most `concurrency` artifacts are produced at once (compressing a gold initrd takes a core).
 */
export class ArtifactCache {
  private readonly jobs = new Map<string, CacheJob>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly stop = new AbortController();

  constructor(
    readonly dir: string,
    private readonly concurrency = 2,
  ) {}

  /** Creates the directory and removes what an earlier, killed server left half written. */
  async open(): Promise<void> {
    await mkdir(join(this.dir, 'tmp'), { recursive: true });
    for (const name of await readdir(join(this.dir, 'tmp'))) await rm(join(this.dir, 'tmp', name), { force: true, recursive: true });
  }

  private path(key: string): string {
    if (!KEY.test(key)) throw new Error(`not a cache key: ${key}`);
    return join(this.dir, key);
  }

  /** The finished file of a key, or undefined. */
  async lookup(key: string): Promise<CachedFile | undefined> {
    const st = await stat(this.path(key)).catch(() => undefined);
    return st?.isFile() ? { key, path: this.path(key), size: st.size } : undefined;
  }

  /**
   * The file of `key`, or the job producing it, started now when there is none. `produce` is
   * called once per job, with a signal that aborts when the cache closes.
   */
  async get(key: string, produce: (signal: AbortSignal) => AsyncIterable<Buffer>, length?: number): Promise<CacheLookup> {
    const running = this.jobs.get(key);
    if (running) return { job: running };
    const ready = await this.lookup(key);
    if (ready) return { ready };
    // checked again: another request may have started the job while this one looked
    const again = this.jobs.get(key);
    if (again) return { job: again };
    const job = this.start(key, produce, length);
    return { job };
  }

  /** Produces `key` (if it is not there yet) and waits for the file. */
  async ensure(key: string, produce: (signal: AbortSignal) => AsyncIterable<Buffer>, length?: number): Promise<CachedFile> {
    const found = await this.get(key, produce, length);
    return 'ready' in found ? found.ready : found.job.done;
  }

  private start(key: string, produce: (signal: AbortSignal) => AsyncIterable<Buffer>, length: number | undefined): CacheJob {
    const progress = new EventEmitter();
    progress.setMaxListeners(0);
    const tmp = join(this.dir, 'tmp', `${key}.${randomBytes(4).toString('hex')}`);
    let written = 0;
    let failure: unknown;
    let finished = false;
    let created = false;
    const final = this.path(key);
    const done = (async (): Promise<CachedFile> => {
      await this.slot();
      let fh: FileHandle | undefined;
      try {
        throwIfCancelled(this.stop.signal);
        fh = await open(tmp, 'wx', 0o644);
        created = true;
        progress.emit('progress');
        for await (const chunk of produce(this.stop.signal)) {
          throwIfCancelled(this.stop.signal);
          await fh.write(chunk, 0, chunk.length, written);
          written += chunk.length;
          progress.emit('progress');
        }
        if (length !== undefined && written !== length) throw new Error(`${key}: produced ${written} bytes, ${length} announced`);
        await fh.datasync();
        await fh.close();
        fh = undefined;
        await rename(tmp, final);
        finished = true;
        return { key, path: final, size: written };
      } catch (e) {
        failure = e;
        await fh?.close().catch(() => undefined);
        await rm(tmp, { force: true });
        throw e;
      } finally {
        this.jobs.delete(key);
        this.release();
        progress.emit('progress');
      }
    })();
    done.catch(() => undefined);
    const job: CacheJob = {
      key,
      ...(length === undefined ? {} : { length }),
      written: () => written,
      done,
      async *follow(start, signal) {
        // wait until the file exists (the job may be queued behind others)
        while (!created && failure === undefined && !finished) await wait(progress, signal);
        if (failure !== undefined) throw failure;
        // by its temporary name while it is written; a descriptor opened then reads on after the rename
        const fh = await (finished ? open(final, 'r') : open(tmp, 'r').catch(() => open(final, 'r'))).catch((e: unknown) => {
          throw failure ?? e;
        });
        try {
          let at = start;
          const buf = Buffer.allocUnsafe(CHUNK);
          for (;;) {
            throwIfCancelled(signal);
            const limit = written;
            if (at < limit) {
              const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, limit - at), at);
              if (bytesRead === 0) throw new Error(`${key}: the cache file ended early`);
              at += bytesRead;
              // a copy: the buffer is read into again while the consumer may still hold this chunk
              yield Buffer.from(buf.subarray(0, bytesRead));
              continue;
            }
            if (failure !== undefined) throw failure;
            if (finished) return;
            await wait(progress, signal);
          }
        } finally {
          await fh.close();
        }
      },
    };
    this.jobs.set(key, job);
    return job;
  }

  private async slot(): Promise<void> {
    while (this.running >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
  }

  private release(): void {
    this.running--;
    this.waiting.shift()?.();
  }

  /** Removes finished files whose key is not in `keep` (artifacts of images no longer assigned). */
  async prune(keep: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await readdir(this.dir)) {
      if (!KEY.test(name) || keep.has(name) || this.jobs.has(name)) continue;
      await rm(join(this.dir, name), { force: true });
      removed.push(name);
    }
    return removed;
  }

  /** Stops every job (their producers get the abort) and waits for them. */
  async close(): Promise<void> {
    this.stop.abort();
    await Promise.allSettled([...this.jobs.values()].map((j) => j.done));
  }
}

async function wait(emitter: EventEmitter, signal: AbortSignal): Promise<void> {
  try {
    await once(emitter, 'progress', { signal });
  } catch (e) {
    if (signal.aborted) throw cancellationError(signal);
    throw e;
  }
}
