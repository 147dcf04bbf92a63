import { defineProvider } from '../../src/api/provider.js';
import type { AwsObserved } from './observe.js';
import { awsOptions } from './options.js';
import { planAws, type AwsPlan } from './plan.js';
import { targetOf } from './settings.js';

/**
 * EC2: the image as an AMI. The disk is built for the ec2 platform (NVMe and ENA in the
 * initramfs, serial console, DHCP, the SSH key from IMDSv2) and goes up block by block through the
 * EBS direct APIs (only blocks holding data; on a new version of an image, only the blocks that
 * changed), or with --via import-snapshot through S3 and VM Import; then RegisterImage (UEFI, ENA,
 * IMDSv2), copies and launch permissions. Every resource is journalled as it is created. The AWS
 * SDK is loaded by the steps that call AWS, not with this object (help and provider lists stay fast).
 */
export const aws = defineProvider({
  name: 'aws',
  summary: 'AMIs on Amazon EC2: the disk block by block through the EBS direct APIs (changed blocks only), or S3 + VM Import.',
  options: awsOptions,

  target(options, { image }) {
    return targetOf(options, image, process.env);
  },

  async observe(target, ctx): Promise<AwsObserved> {
    ctx.requireFormat('raw');
    if (target.options.via === 'import-snapshot' && target.options['disk-format'] === 'vmdk') ctx.requireFormat('vmdk');
    return (await import('./observe.js')).observeAws(target, ctx);
  },

  plan(image, observed: AwsObserved, options): AwsPlan {
    return planAws(image, observed, options);
  },

  async apply(plan, ctx) {
    return (await import('./apply.js')).applyAws(plan, ctx);
  },

  async remove(resource, ctx) {
    return (await import('./remove.js')).removeAwsResource(resource, ctx);
  },
});
