import { mkdirSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../../lib/thread-errors.js';
import { BlobWriter, READ_BUFFER, type WrittenLocal } from './blob-writer.js';
import type { BatchReply, BatchRequest, ReplyItem, StoredResult, WorkerInit, WriteJob, WriteResult } from './blob-pool.js';
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

const magics = new Map<string, Buffer>();
const magicOf = (hex: string) => magics.get(hex) ?? magics.set(hex, Buffer.from(hex, 'hex')).get(hex)!;

parentPort!.on('message', (req: BatchRequest) => {
  if (req.guard !== undefined) guard = req.guard ? SpaceGuard.attach(req.guard) : undefined;
  const results: ReplyItem[] = [];
  const contents: BatchReply['contents'] = [];
  const transfer: ArrayBuffer[] = [];
  for (const job of JSON.parse(req.jobs) as WriteJob[]) {
    try {
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
          const copy = new Uint8Array(w.content);
          contents.push([results.length, copy]);
          transfer.push(copy.buffer);
        }
        r.stored = stored;
      }
      results.push(r);
    } catch (e) {
      results.push({ error: serializeError(e) });
    }
  }
  parentPort!.postMessage({ id: req.id, results: JSON.stringify(results), contents } satisfies BatchReply, transfer);
});
