import type { ApplyContext, ApplyResult, BuildResult } from '../../src/api/provider.js';
import { publishAmi } from './apply-ami.js';
import { snapshotByEbs } from './apply-ebs.js';
import { snapshotByImport } from './apply-import.js';
import { awsClients, resolveCredentials } from './clients.js';
import { TAG } from './names.js';
import type { AwsOptions } from './options.js';
import type { AwsPlan } from './plan.js';
import { settingsOf } from './settings.js';

/** The tags of everything this publication makes: aim's, then the user's. */
function tagsFor(plan: AwsPlan, ctx: ApplyContext<AwsOptions>): Record<string, string> {
  return { ...plan.tags, [TAG.imageId]: ctx.target.image.id, [TAG.name]: plan.lineage, [TAG.publication]: ctx.publication, [TAG.key]: ctx.target.key };
}

function disk(build: BuildResult): { path: string; sha256: string } {
  const a = build.artifacts.find((x) => /\.(raw|vmdk)$/.test(x.path)) ?? build.artifacts[0]!;
  return { path: a.path, sha256: a.sha256 };
}

/** Builds the ec2 disk, makes the snapshot (EBS direct or VM Import), registers the AMI, copies and shares it. */
export async function applyAws(plan: AwsPlan, ctx: ApplyContext<AwsOptions>): Promise<ApplyResult> {
  const clients = awsClients(settingsOf(ctx.options, ctx.env), ctx.env);
  try {
    await resolveCredentials(clients);
    const tags = tagsFor(plan, ctx);
    let snapshotId: string | undefined;
    if (!plan.existingAmi) {
      const built = await ctx.build(plan.build.format, plan.build.dir, { platform: 'ec2', modules: plan.build.modules, idSeed: plan.build.idSeed, ...(plan.build.kernel ? { kernelImage: plan.build.kernel } : {}) });
      snapshotId = plan.via === 'ebs' ? (await snapshotByEbs(plan, ctx, clients, disk(built).path, tags)).snapshotId : (await snapshotByImport(plan, ctx, clients, disk(built), tags)).snapshotId;
    }
    return { published: await publishAmi(plan, ctx, clients, snapshotId, tags) };
  } finally {
    clients.destroy();
  }
}
