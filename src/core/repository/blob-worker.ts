import { mkdirSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../../lib/thread-errors.js';
import { BlobWriter, READ_BUFFER } from './blob-writer.js';
import type { BatchReply, BatchRequest, WorkerInit, WriteResult } from './blob-pool.js';
import { SpaceGuard } from './space-guard.js';

/**
 * A blob writer thread (blob-pool.ts): reads local files (descriptors the main thread opened and
 * checked, or paths), hashes and stores them with its own BlobWriter and scratch directory, and
 * answers each batch with one message, in order.
 */
const init = workerData as WorkerInit;
mkdirSync(init.scratch, { recursive: true });
let guard: SpaceGuard | undefined;
const writer = new BlobWriter(init.objectsDir, init.scratch, () => guard);
const buf = Buffer.allocUnsafe(READ_BUFFER);

parentPort!.on('message', (req: BatchRequest) => {
  if (req.guard !== undefined) guard = req.guard ? SpaceGuard.attach(req.guard) : undefined;
  const results: BatchReply['results'] = [];
  const transfer: ArrayBuffer[] = [];
  for (const job of req.jobs) {
    try {
      const path = job.path === undefined || typeof job.path === 'string' ? job.path : Buffer.from(job.path.buffer, job.path.byteOffset, job.path.byteLength);
      const w = writer.putLocal({ fd: job.fd, path, offset: job.offset, length: job.length }, buf);
      const r: WriteResult = { hash: w.hash, size: w.size, head: new Uint8Array(w.head), created: w.created };
      if (w.sparse) r.sparse = w.sparse;
      if (w.content && job.magic && w.content.subarray(0, job.magic.length).equals(job.magic)) {
        const copy = new Uint8Array(w.content);
        r.content = copy;
        transfer.push(copy.buffer);
      }
      results.push(r);
    } catch (e) {
      results.push({ error: serializeError(e) });
    }
  }
  parentPort!.postMessage({ id: req.id, results } satisfies BatchReply, transfer);
});
