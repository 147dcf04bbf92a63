import type { ApplyContext, Published } from '../../src/api/provider.js';
import { copyImage, registerImage, shareImage, tagResource, waitImageAvailable } from './ami.js';
import { awsClients, type AwsClients } from './clients.js';
import { clientToken } from './names.js';
import { settingsOf } from './settings.js';
import type { AwsOptions } from './options.js';
import type { AwsPlan } from './plan.js';
import { KIND, findResource } from './resources.js';

/**
 * The AMI of the snapshot, journalled by its name before RegisterImage (which has no client
 * token: a repeat of the name finds the AMI by its idempotency-key tag and adopts it), waited
 * for until available; then the copies in other regions (CopyImage with client tokens) and the
 * launch permissions.
 */
export async function publishAmi(plan: AwsPlan, ctx: ApplyContext<AwsOptions>, clients: AwsClients, snapshotId: string | undefined, tags: Record<string, string>): Promise<Published[]> {
  const { journal, reporter, signal } = ctx;
  const key = ctx.target.key;
  let amiId = plan.existingAmi;
  if (!amiId) {
    let resource = findResource(journal.resources(), KIND.ami, (d, r) => d.name === plan.amiName && r.location === plan.region && d.copyOf === undefined);
    if (resource?.state === 'created') amiId = resource.id;
    else {
      resource ??= await journal.begin({ kind: KIND.ami, id: plan.amiName, location: plan.region, data: { name: plan.amiName, key } });
      reporter.emit({ type: 'stage', stage: 'register', status: 'start', detail: `${plan.amiName} in ${plan.region}` });
      const r = await registerImage(clients.ec2, plan.region, { name: plan.amiName, description: plan.description, snapshotId: snapshotId!, architecture: plan.architecture, bootMode: plan.bootMode, tpm: plan.tpm, tags, key }, signal);
      if (r.adopted) reporter.emit({ type: 'info', message: `${r.id} (${plan.amiName}) was registered by an earlier try of this ship: adopted` });
      resource = await journal.created(resource, { id: r.id });
      amiId = r.id;
    }
    await waitImageAvailable(clients.ec2, plan.region, amiId, signal);
    reporter.emit({ type: 'stage', stage: 'register', status: 'done', detail: `${amiId} available` });
  }
  for (const r of plan.retag ?? []) {
    const there = awsClients(settingsOf(ctx.options, ctx.env), ctx.env, r.region);
    try {
      for (const id of r.ids) await tagResource(there.ec2, id, plan.tags, signal);
    } finally {
      there.destroy();
    }
    reporter.emit({ type: 'info', message: `tagged ${r.ids.join(', ')} in ${r.region}: ${Object.keys(plan.tags).join(', ')}` });
  }
  const published: Published[] = [{ kind: 'ami', id: amiId, location: plan.region }];
  const copies: { region: string; id: string }[] = [];
  for (const c of plan.copies) {
    let id = c.existing;
    const there = awsClients(settingsOf(ctx.options, ctx.env), ctx.env, c.region);
    try {
      if (!id) {
        let resource = findResource(journal.resources(), KIND.ami, (d, r) => d.copyOf === amiId && r.location === c.region);
        if (resource?.state === 'created') id = resource.id;
        else {
          resource ??= await journal.begin({ kind: KIND.ami, id: `${plan.amiName} copy`, location: c.region, data: { name: plan.amiName, copyOf: amiId, key } });
          reporter.emit({ type: 'info', message: `copying ${amiId} to ${c.region}` });
          id = await copyImage(there.ec2, { region: c.region, sourceRegion: plan.region, sourceImageId: amiId, name: plan.amiName, description: plan.description, clientToken: clientToken(key, `copy ${c.region}`), tags }, signal);
          await journal.created(resource, { id });
        }
      }
      await waitImageAvailable(there.ec2, c.region, id, signal);
      copies.push({ region: c.region, id });
    } finally {
      there.destroy();
    }
    published.push({ kind: 'ami', id, location: c.region });
  }
  if (plan.share.public || plan.share.accounts.length > 0) {
    await shareImage(clients.ec2, amiId, plan.share, signal);
    for (const c of copies) {
      const there = awsClients(settingsOf(ctx.options, ctx.env), ctx.env, c.region);
      try {
        await shareImage(there.ec2, c.id, plan.share, signal);
      } finally {
        there.destroy();
      }
    }
    reporter.emit({ type: 'info', message: `launch permission: ${[plan.share.public ? 'everyone (public)' : '', ...plan.share.accounts].filter(Boolean).join(', ')}` });
  }
  return published;
}
