import { CancelImportTaskCommand, DescribeImportSnapshotTasksCommand, ImportSnapshotCommand, type EC2Client, type SnapshotTaskDetail } from '@aws-sdk/client-ec2';
import { AimError, ExitCode, ProviderError } from '../../src/lib/errors.js';
import { calling } from './aws-errors.js';
import { errorCode, sleep } from './retry.js';

export interface ImportInput {
  bucket: string;
  key: string;
  format: 'VMDK' | 'RAW';
  roleName: string;
  clientToken: string;
  description: string;
  tags: Record<string, string>;
  encrypted: boolean;
  kmsKeyId?: string | undefined;
}

/** ImportSnapshot of an S3 object (idempotent by its client token). A missing service role is E_AWS_VMIMPORT_ROLE with the policies to create. */
export async function startImport(ec2: EC2Client, input: ImportInput, signal: AbortSignal): Promise<string> {
  const answer = await calling(
    `import s3://${input.bucket}/${input.key} as a snapshot`,
    () =>
      ec2.send(
        new ImportSnapshotCommand({
          ClientToken: input.clientToken,
          Description: input.description,
          RoleName: input.roleName,
          DiskContainer: { Description: input.description, Format: input.format, UserBucket: { S3Bucket: input.bucket, S3Key: input.key } },
          ...(input.encrypted ? { Encrypted: true, ...(input.kmsKeyId ? { KmsKeyId: input.kmsKeyId } : {}) } : {}),
          TagSpecifications: [{ ResourceType: 'import-snapshot-task', Tags: Object.entries(input.tags).map(([Key, Value]) => ({ Key, Value })) }],
        }),
        { abortSignal: signal },
      ),
    { bucket: input.bucket, roleName: input.roleName },
  );
  if (!answer.ImportTaskId) throw new ProviderError('ImportSnapshot answered without a task id');
  return answer.ImportTaskId;
}

/** A task's state as DescribeImportSnapshotTasks reports it. */
export async function describeImport(ec2: EC2Client, taskId: string, signal?: AbortSignal): Promise<SnapshotTaskDetail | undefined> {
  try {
    const page = await ec2.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: [taskId] }), { abortSignal: signal });
    return page.ImportSnapshotTasks?.[0]?.SnapshotTaskDetail;
  } catch (e) {
    if (/^InvalidConversionTaskId/.test(errorCode(e) ?? '')) return undefined;
    throw e;
  }
}

/**
 * Polls an import task with a growing interval (1 s up to 30 s), reporting AWS's status message
 * and progress as they change, until it completes (its snapshot id) or fails: deleting/deleted
 * becomes E_AWS_IMPORT_FAILED carrying AWS's reason ("ClientError: Disk validation failed […]").
 */
export async function waitImport(ec2: EC2Client, taskId: string, options: { signal: AbortSignal; onStatus?(message: string, progress?: number): void; firstMs?: number; maxMs?: number; timeoutMs?: number }): Promise<string> {
  const deadline = Date.now() + (options.timeoutMs ?? 6 * 3600_000);
  let wait = options.firstMs ?? 1000;
  let shown = '';
  for (;;) {
    const task = await calling(`follow import task ${taskId}`, () => describeImport(ec2, taskId, options.signal));
    if (!task) throw new ProviderError(`import task ${taskId} no longer exists`);
    const status = task.Status ?? 'unknown';
    if (status === 'completed') {
      if (!task.SnapshotId) throw new ProviderError(`import task ${taskId} completed without a snapshot id`);
      return task.SnapshotId;
    }
    if (status === 'deleting' || status === 'deleted') {
      throw new AimError('E_AWS_IMPORT_FAILED', `import task ${taskId} failed: ${task.StatusMessage ?? status}`, ExitCode.provider, {
        hint: /ClientError/.test(task.StatusMessage ?? '') ? 'AWS could not use the disk as uploaded: see its reason above' : 'AWS gave up on the import: ship again, or use the default EBS direct path (no --via)',
      });
    }
    const text = `${status}${task.StatusMessage ? `: ${task.StatusMessage}` : ''}${task.Progress ? ` (${task.Progress}%)` : ''}`;
    if (text !== shown) {
      shown = text;
      options.onStatus?.(task.StatusMessage ?? status, task.Progress === undefined ? undefined : Number(task.Progress));
    }
    if (Date.now() > deadline) throw new ProviderError(`import task ${taskId} did not finish in time (last: ${text})`, { hint: 'aim ship resume <publication> follows it again' });
    await sleep(wait, options.signal);
    wait = Math.min(options.maxMs ?? 30_000, Math.round(wait * 1.5));
  }
}

/** Cancels an active import task; one that already ended is fine. */
export async function cancelImport(ec2: EC2Client, taskId: string, signal: AbortSignal): Promise<void> {
  try {
    await ec2.send(new CancelImportTaskCommand({ ImportTaskId: taskId, CancelReason: 'removed by aim ship rm' }), { abortSignal: signal });
  } catch (e) {
    const code = errorCode(e) ?? '';
    if (code === 'IncorrectState' || /^InvalidConversionTaskId/.test(code)) return;
    await calling(`cancel import task ${taskId}`, () => Promise.reject(e));
  }
}
