import { DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { ConfigError, type JournalResource, type RemoveContext } from '../../src/api/provider.js';
import { deleteSnapshot, ownImages, removeImage } from './ami.js';
import { calling } from './aws-errors.js';
import { awsClients } from './clients.js';
import { cancelImport } from './import-snapshot.js';
import { TAG } from './names.js';
import { settingsOf } from './settings.js';
import type { AwsOptions } from './options.js';
import { KIND } from './resources.js';
import { removeObject } from './s3-multipart.js';

const reported = (ctx: RemoveContext<AwsOptions>, message: string) => ctx.reporter.emit({ type: 'info', message });

/**
 * Removes one journalled resource; gone already is success. A resource journalled before the call
 * that created it answered (its id still the name or client token) is looked up by its
 * idempotency-key tag: the AMI by name, the snapshot by the client token's tag-free search.
 */
export async function removeAwsResource(resource: JournalResource, ctx: RemoveContext<AwsOptions>): Promise<void> {
  const region = resource.location ?? '';
  const clients = awsClients(settingsOf(ctx.options, ctx.env), ctx.env, resource.kind === KIND.s3 ? settingsOf(ctx.options, ctx.env).region : region);
  const { signal } = ctx;
  try {
    switch (resource.kind) {
      case KIND.ami: {
        const ids = resource.id.startsWith('ami-')
          ? [resource.id]
          : (await ownImages(clients.ec2, region, [{ Name: 'name', Values: [String(resource.data.name)] }, { Name: `tag:${TAG.key}`, Values: [String(resource.data.key)] }], signal)).map((i) => i.id);
        for (const id of ids) {
          const r = await removeImage(clients.ec2, region, id, signal);
          reported(ctx, r.removed ? `deregistered ${id} in ${region}${r.snapshots.length ? `, deleted ${r.snapshots.join(', ')}` : ''}${r.kept.length ? `; kept ${r.kept.join(', ')} (another AMI uses it)` : ''}` : `${id} in ${region} was already gone`);
        }
        return;
      }
      case KIND.snapshot: {
        const ids = resource.id.startsWith('snap-') ? [resource.id] : await snapshotsOfKey(clients, String(resource.data.key), String(resource.data.clientToken), signal);
        for (const id of ids) {
          const outcome = await deleteSnapshot(clients.ec2, id, signal);
          if (outcome === 'in use') throw new ConfigError(`snapshot ${id} is used by an AMI that is not this publication's`, { hint: 'deregister that AMI first (aim ship aws rm <ami>)' });
          reported(ctx, outcome === 'deleted' ? `deleted ${id} in ${region}` : `${id} in ${region} was already gone`);
        }
        return;
      }
      case KIND.s3: {
        const bucket = String(resource.data.bucket ?? resource.location);
        const uploadId = typeof resource.data.uploadId === 'string' ? resource.data.uploadId : undefined;
        await removeObject(clients.s3, bucket, resource.id, uploadId, signal);
        reported(ctx, `removed s3://${bucket}/${resource.id}${uploadId ? ' and its multipart upload' : ''}`);
        return;
      }
      case KIND.task:
        if (resource.id.startsWith('import-snap-')) await cancelImport(clients.ec2, resource.id, signal);
        return;
      default:
        throw new ConfigError(`the aws provider does not know resources of kind "${resource.kind}"`);
    }
  } finally {
    clients.destroy();
  }
}

/** Snapshots a StartSnapshot of this client token may have made before its answer was journalled. */
async function snapshotsOfKey(clients: ReturnType<typeof awsClients>, key: string, token: string, signal: AbortSignal): Promise<string[]> {
  const found = await calling('look up snapshots by tag', () =>
    clients.ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: `tag:${TAG.key}`, Values: [key] }, { Name: `tag:${TAG.token}`, Values: [token] }] }), { abortSignal: signal }),
  );
  return (found.Snapshots ?? []).map((s) => s.SnapshotId ?? '').filter(Boolean);
}
