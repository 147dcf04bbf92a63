import { stat } from 'node:fs/promises';
import type { ApplyContext, JournalResource } from '../../src/api/provider.js';
import { tagResource } from './ami.js';
import type { AwsClients } from './clients.js';
import { startImport, waitImport } from './import-snapshot.js';
import { clientToken } from './names.js';
import type { AwsOptions } from './options.js';
import type { AwsPlan } from './plan.js';
import { KIND, findResource } from './resources.js';
import { partSizeFor, removeObject, uploadMultipart, type UploadedPart } from './s3-multipart.js';

export interface ImportReport {
  snapshotId: string;
  taskId: string;
  /** Bytes of the disk file, and those this run sent to S3 (a resume sends only missing parts). */
  diskBytes: number;
  bytesSent: number;
  partsSent: number;
}

/**
 * The disk as a snapshot through VM Import: uploaded to S3 (multipart; the upload id and each part
 * journalled, so a resume sends only the parts S3 lacks), imported with ImportSnapshot (the task
 * journalled before it is created, by its client token), followed until AWS finishes; the
 * snapshot is journalled and tagged, and the S3 object deleted. A failure leaves the journal
 * holding the object and the task, which the rollback removes.
 */
export async function snapshotByImport(plan: AwsPlan, ctx: ApplyContext<AwsOptions>, clients: AwsClients, disk: { path: string; sha256: string }, tags: Record<string, string>): Promise<ImportReport> {
  const { journal, reporter, signal } = ctx;
  const imp = plan.import!;
  const key = ctx.target.key;
  const token = clientToken(key, `import ${plan.region}`);
  const retry = { signal };
  let taskResource = findResource(journal.resources(), KIND.task, (d) => d.clientToken === token);
  const size = (await stat(disk.path)).size;
  let object: JournalResource | undefined = findResource(journal.resources(), KIND.s3, (_d, r) => r.id === imp.key && r.location === imp.bucket);
  let bytesSent = 0;
  let partsSent = 0;
  if (!taskResource || taskResource.state !== 'created') {
    if (object?.state !== 'created' || object.data.sha256 !== disk.sha256) {
      // a different disk than the interrupted run's starts a new upload (the old one is aborted)
      const same = object?.data.sha256 === disk.sha256;
      const stale = object?.data.uploadId as string | null | undefined;
      if (!same && stale) await removeObject(clients.s3, imp.bucket, imp.key, stale, signal);
      object = await journal.begin({ kind: KIND.s3, id: imp.key, location: imp.bucket, data: { bucket: imp.bucket, key: imp.key, size, sha256: disk.sha256, ...(same ? {} : { uploadId: null, parts: [] }) } });
      const parts: UploadedPart[] = [...((object.data.parts as UploadedPart[] | undefined) ?? [])];
      const stage = `upload s3://${imp.bucket}/${imp.key}`;
      reporter.emit({ type: 'stage', stage, status: 'start', detail: `${(size / 1048576).toFixed(1)} MiB` });
      const r = await uploadMultipart(clients.s3, {
        bucket: imp.bucket,
        key: imp.key,
        file: disk.path,
        size,
        partSize: partSizeFor(size),
        concurrency: Math.min(plan.parallel, 8),
        uploadId: (object.data.uploadId as string | null | undefined) ?? undefined,
        parts,
        onCreated: async (uploadId) => {
          object = await journal.update(object!, { uploadId, parts: [] });
          parts.length = 0;
        },
        onPart: async (p) => {
          parts.push(p);
          object = await journal.update(object!, { parts: [...parts] });
        },
        onProgress: (done, total) => reporter.emit({ type: 'progress', stage, done, total, unit: 'bytes' }),
        retry,
      });
      object = await journal.created(object, { data: { uploadId: r.uploadId, parts: r.parts, etag: r.etag } });
      reporter.emit({ type: 'stage', stage, status: 'done', detail: `${r.sent} parts, ${(r.bytesSent / 1048576).toFixed(1)} MiB sent` });
      bytesSent = r.bytesSent;
      partsSent = r.sent;
    }
    taskResource ??= await journal.begin({ kind: KIND.task, id: token, location: plan.region, data: { clientToken: token, bucket: imp.bucket, key: imp.key } });
    const taskId = await startImport(clients.ec2, { bucket: imp.bucket, key: imp.key, format: imp.format, roleName: imp.roleName, clientToken: token, description: plan.description, tags, encrypted: plan.encrypted, kmsKeyId: plan.kmsKeyId }, signal);
    taskResource = await journal.created(taskResource, { id: taskId });
  }
  const taskId = taskResource.id;
  reporter.emit({ type: 'stage', stage: `import ${taskId}`, status: 'start', detail: `ImportSnapshot of s3://${imp.bucket}/${imp.key}` });
  const snapshotId = await waitImport(clients.ec2, taskId, {
    signal,
    onStatus: (message, progress) => reporter.emit({ type: 'info', message: `import ${taskId}: ${message}${progress !== undefined ? ` (${progress}%)` : ''}` }),
  });
  const snapshot = findResource(journal.resources(), KIND.snapshot, (_d, r) => r.id === snapshotId) ?? (await journal.begin({ kind: KIND.snapshot, id: snapshotId, location: plan.region, data: { key, imported: true, encrypted: plan.encrypted, fullyWritten: true, volumeGiB: 0, clientToken: token } }));
  if (snapshot.state !== 'created') await journal.created(snapshot, { data: { completed: true } });
  await tagResource(clients.ec2, snapshotId, tags, signal);
  reporter.emit({ type: 'stage', stage: `import ${taskId}`, status: 'done', detail: snapshotId });
  // the disk is in the snapshot now: the S3 object goes
  if (object && object.state !== 'removed') {
    await removeObject(clients.s3, imp.bucket, imp.key, undefined, signal);
    await journal.removed(object);
  }
  return { snapshotId, taskId, diskBytes: size, bytesSent, partsSent };
}
