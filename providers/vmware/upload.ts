import type { Journal, JournalResource, Published } from '../../src/api/provider.js';
import type { Reporter } from '../../src/lib/reporter.js';
import { DatastoreClient, datastoreError, datastoreFileUrl, datastorePath, type DatastoreSettings, type DatastoreTarget, type RemoteFile } from './datastore.js';

/** The journal's kind for a file this provider put on a datastore. */
export const DATASTORE_FILE = 'datastore file';

/** A built file to upload, with what the build measured. */
export interface UploadFile {
  path: string;
  /** File name in the target folder. */
  name: string;
  bytes: number;
  sha256: string;
}

/** What the journal says about a datastore file, as observe and plan see it. */
export interface JournalledFile {
  state: JournalResource['state'];
  bytes?: number;
  sha256?: string;
}

/** The journal's record of `name` in the target folder (not removed), if any. */
export function journalledFile(resources: readonly JournalResource[], settings: Pick<DatastoreSettings, 'target'>, name: string): JournalResource | undefined {
  const id = datastorePath(settings.target, name);
  return resources.findLast((r) => r.kind === DATASTORE_FILE && r.id === id && r.state !== 'removed');
}

/** Whether a file is already uploaded: the journal says created, with these very bytes, and the datastore has that size. */
export function alreadyUploaded(file: Pick<UploadFile, 'bytes' | 'sha256'>, journalled: JournalResource | undefined, remote: RemoteFile): boolean {
  return journalled?.state === 'created' && journalled.data.sha256 === file.sha256 && journalled.data.bytes === file.bytes && remote.exists && remote.bytes === file.bytes;
}

/** HEADs each file: every problem with credentials shows here, before any data is sent. */
export async function headFiles(client: DatastoreClient, settings: DatastoreSettings, names: string[], signal: AbortSignal): Promise<Record<string, RemoteFile>> {
  const out: Record<string, RemoteFile> = {};
  for (const name of names) out[name] = await client.head(datastoreFileUrl(settings.target, name), signal);
  return out;
}

/** An E_DATASTORE_EXISTS for files that exist and are not this publication's, unless they may be replaced. */
export function refuseForeign(target: DatastoreTarget, remote: Record<string, RemoteFile>, ours: (name: string) => boolean, overwrite: boolean): void {
  const foreign = Object.entries(remote).filter(([name, r]) => r.exists && !ours(name)).map(([name]) => name);
  if (foreign.length === 0 || overwrite) return;
  throw datastoreError(
    'E_DATASTORE_EXISTS',
    `${foreign.map((n) => datastorePath(target, n)).join(', ')} already exist${foreign.length === 1 ? 's' : ''} on the datastore`,
    'pass --overwrite to replace, or choose another folder or --name',
  );
}

/**
 * Uploads the files in order, each one journalled before its PUT (pending) and after it (created,
 * with size and sha256), so a kill at any moment leaves a journal naming every file that may be
 * on the datastore. A file the journal shows uploaded with the same bytes, and that the datastore
 * still has at that size, is skipped (resume). Files that exist and are not this publication's
 * stop the run unless `overwrite`. Failures reject; removing what was sent is the journal's job.
 */
export async function uploadFiles(settings: DatastoreSettings, files: UploadFile[], run: { journal: Journal; reporter: Reporter; signal: AbortSignal; overwrite: boolean }): Promise<Published[]> {
  const client = new DatastoreClient(settings);
  const published: Published[] = [];
  try {
    // Checked again on purpose: the build took a while, and someone may have written these since.
    const remote = await headFiles(client, settings, files.map((f) => f.name), run.signal);
    refuseForeign(settings.target, remote, (name) => journalledFile(run.journal.resources(), settings, name) !== undefined, run.overwrite);
    for (const file of files) {
      const url = datastoreFileUrl(settings.target, file.name);
      const where = datastorePath(settings.target, file.name);
      const journalled = journalledFile(run.journal.resources(), settings, file.name);
      if (alreadyUploaded(file, journalled, remote[file.name]!)) {
        run.reporter.emit({ type: 'info', message: `${where} is already uploaded (same size and sha256 as the journal records): skipped` });
        published.push({ kind: DATASTORE_FILE, location: where, bytes: file.bytes, sha256: file.sha256 });
        continue;
      }
      const resource = await run.journal.begin({ kind: DATASTORE_FILE, id: where, location: settings.target.origin, data: { url: url.href, name: file.name, bytes: file.bytes } });
      const stage = `upload ${file.name}`;
      run.reporter.emit({ type: 'stage', stage, status: 'start', detail: where });
      let shown = 0;
      const sent = await client.put(url, file.path, {
        signal: run.signal,
        onProgress: (done, total) => {
          if (done - shown >= 8 << 20 || done === total) {
            shown = done;
            run.reporter.emit({ type: 'progress', stage, done, total, unit: 'bytes' });
          }
        },
      });
      await run.journal.created(resource, { data: { bytes: sent.bytes, sha256: sent.sha256 } });
      run.reporter.emit({ type: 'stage', stage, status: 'done' });
      published.push({ kind: DATASTORE_FILE, location: where, bytes: sent.bytes, sha256: sent.sha256 });
    }
    return published;
  } finally {
    client.close();
  }
}

/** How long one DELETE may take (a removal must not hang on a dead host). */
const DELETE_TIMEOUT_MS = 30_000;

/** Removes one journalled datastore file; already gone is fine. */
export async function removeFile(settings: DatastoreSettings, resource: JournalResource, signal: AbortSignal): Promise<'removed' | 'gone'> {
  const client = new DatastoreClient(settings);
  try {
    return await client.delete(new URL(String(resource.data.url)), AbortSignal.any([signal, AbortSignal.timeout(DELETE_TIMEOUT_MS)]));
  } finally {
    client.close();
  }
}
