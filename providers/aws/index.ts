import { defineProvider, type ApplyContext, type BuildResult } from '../../src/api/provider.js';
import { snapshotByEbs } from './apply-ebs.js';
import { snapshotByImport } from './apply-import.js';
import { publishAmi } from './apply-ami.js';
import { awsClients, resolveCredentials } from './clients.js';
import { TAG } from './names.js';
import { observeAws, settingsOf, targetOf, type AwsObserved } from './observe.js';
import { awsOptions, type AwsOptions } from './options.js';
import { planAws, type AwsPlan } from './plan.js';
import { removeAwsResource } from './remove.js';

/** The tags of everything this publication makes: aim's, then the user's. */
function tagsFor(plan: AwsPlan, ctx: ApplyContext<AwsOptions>): Record<string, string> {
  return { ...plan.tags, [TAG.imageId]: ctx.target.image.id, [TAG.name]: plan.lineage, [TAG.publication]: ctx.publication, [TAG.key]: ctx.target.key };
}

function disk(build: BuildResult): { path: string; sha256: string } {
  const a = build.artifacts.find((x) => /\.(raw|vmdk)$/.test(x.path)) ?? build.artifacts[0]!;
  return { path: a.path, sha256: a.sha256 };
}

/**
 * EC2: the image as an AMI. The disk is built for the ec2 platform (NVMe and ENA in the
 * initramfs, serial console, DHCP, the SSH key from IMDSv2) and goes up block by block through the
 * EBS direct APIs (only blocks holding data; on a new version of an image, only the blocks that
 * changed), or with --via import-snapshot through S3 and VM Import; then RegisterImage (UEFI, ENA,
 * IMDSv2), copies and launch permissions. Every resource is journalled as it is created.
 */
export const aws = defineProvider({
  name: 'aws',
  summary: 'AMIs on Amazon EC2: the disk block by block through the EBS direct APIs (changed blocks only), or S3 + VM Import.',
  options: awsOptions,

  target(options, { image }) {
    return targetOf(options, image, process.env);
  },

  observe(target, ctx): Promise<AwsObserved> {
    ctx.requireFormat('raw');
    if (target.options.via === 'import-snapshot' && target.options['disk-format'] === 'vmdk') ctx.requireFormat('vmdk');
    return observeAws(target, ctx);
  },

  plan(image, observed: AwsObserved, options): AwsPlan {
    return planAws(image, observed, options);
  },

  async apply(plan, ctx) {
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
  },

  remove(resource, ctx) {
    return removeAwsResource(resource, ctx);
  },
});
