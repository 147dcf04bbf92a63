import { mkdirSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { InternalError } from '../../lib/errors.js';
import { serializeError } from '../../lib/thread-errors.js';
import { BlobWriter, READ_BUFFER, type WrittenLocal } from './blob-writer.js';
import type { BatchReply, BatchRequest, ReplyItem, StoredResult, WorkerInit, WriteJob, WriteResult } from './blob-pool.js';
import { SpaceGuard } from './space-guard.js';

/**
 * A blob writer thread (blob-pool.ts): reads local files (descriptors the main thread opened and
 * checked, or paths), hashes and stores them with its own BlobWriter and scratch directory, and
 * answers each batch with one message, in order. A job's inspector runs here on the content
 * still in the read buffer; only its result goes back.
 */
const init = workerData as WorkerInit;
mkdirSync(init.scratch, { recursive: true });
let guard: SpaceGuard | undefined;
const writer = new BlobWriter(init.objectsDir, init.scratch, () => guard);
const buf = Buffer.allocUnsafe(READ_BUFFER);

const magics = new Map<string, Buffer>();
const magicOf = (hex: string) => magics.get(hex) ?? magics.set(hex, Buffer.from(hex, 'hex')).get(hex)!;

type Inspector = (content: Buffer) => unknown;
const inspectors = new Map<number, Inspector>();

async function loadInspectors(list: [number, string, string][]): Promise<void> {
  for (const [id, url, name] of list) {
    const fn = ((await import(url)) as Record<string, unknown>)[name];
    if (typeof fn !== 'function') throw new InternalError(`blob writer thread: ${url} exports no function ${name}`);
    inspectors.set(id, fn as Inspector);
  }
}

function run(job: WriteJob, results: ReplyItem[], contents: BatchReply['contents'], transfer: ArrayBuffer[]): void {
  const r: WriteResult = {};
  let w: WrittenLocal | undefined;
  if (job.dir !== undefined) {
    const listed = writer.putListed(job.dir, Buffer.from(job.name!, 'latin1'), job.label!, buf);
    r.status = listed.status;
    if (listed.holesFd !== undefined) r.holesFd = listed.holesFd;
    w = listed.stored;
  } else {
    const path = job.path === undefined ? undefined : Buffer.from(job.path, 'latin1');
    w = writer.putLocal({ fd: job.fd, path, offset: job.offset, length: job.length }, buf);
  }
  if (w) {
    const stored: StoredResult = { hash: w.hash, size: w.size, head: w.head.toString('hex'), created: w.created };
    if (w.sparse) stored.sparse = w.sparse;
    const magic = job.magic === undefined ? undefined : magicOf(job.magic);
    if (w.content && magic && w.content.subarray(0, magic.length).equals(magic)) {
      const inspect = job.inspect === undefined ? undefined : inspectors.get(job.inspect);
      if (inspect) {
        const facts = inspect(w.content);
        if (facts !== undefined) stored.inspected = facts;
      } else {
        const copy = new Uint8Array(w.content);
        contents.push([results.length, copy]);
        transfer.push(copy.buffer);
      }
    }
    r.stored = stored;
  }
  results.push(r);
}

async function answer(req: BatchRequest): Promise<void> {
  if (req.guard !== undefined) guard = req.guard ? SpaceGuard.attach(req.guard) : undefined;
  let loadFailed: unknown;
  if (req.inspectors) await loadInspectors(req.inspectors).catch((e: unknown) => (loadFailed = e));
  const results: ReplyItem[] = [];
  const contents: BatchReply['contents'] = [];
  const transfer: ArrayBuffer[] = [];
  for (const job of JSON.parse(req.jobs) as WriteJob[]) {
    try {
      if (loadFailed) throw loadFailed;
      run(job, results, contents, transfer);
    } catch (e) {
      results.push({ error: serializeError(e) });
    }
  }
  parentPort!.postMessage({ id: req.id, results: JSON.stringify(results), contents } satisfies BatchReply, transfer);
}

// Batches are answered one after another: loading an inspector is the only wait, and the read buffer is shared.
let chain = Promise.resolve();
parentPort!.on('message', (req: BatchRequest) => {
  // A failure here (not a job's) is the thread's: thrown as uncaught, the pool fails its work.
  chain = chain.then(() => answer(req)).catch((e: unknown) => queueMicrotask(() => {
    throw e;
  }));
});
