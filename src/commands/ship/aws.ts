import { Args } from '@oclif/core';
import { awsOptions } from '../../../providers/aws/options.js';
import type { ShipResult } from '../../core/ship/ship-image.js';
import Ship, { optionFlags, shipOwnFlags } from '../ship.js';

/**
 * `aim ship aws <image>`: the same as `aim ship` with the aws provider (its options are its flags
 * here, so `aim ship aws --help` lists them); `aim ship aws list` and `aim ship aws rm` sit beside it.
 */
export default class ShipAws extends Ship {
  static override summary = 'Ship an image to Amazon EC2 as an AMI: its disk block by block through the EBS direct APIs (changed blocks only), or S3 + VM Import.';
  static override description = `The disk is built for the ec2 platform (NVMe and ENA drivers in the initramfs, serial console, DHCP, the SSH key of the instance's key pair from instance metadata with IMDSv2) and registered as an HVM AMI with UEFI, ENA and IMDSv2 only. By default only the 512 KiB blocks that hold data go up, through the EBS direct APIs; when an AMI of the same image name that aim shipped exists, only the blocks that differ from it. Shipping the same image again changes nothing and names the existing AMI. With --via import-snapshot the disk (a stream-optimized VMDK, or raw) goes through S3 and VM Import (service role --role-name, default vmimport). The disk is built in aim's scratch space in the repository and removed once the AMI is registered (a later version diffs against the block map the journal recorded, not against the old disk); --out DIR keeps it in DIR.

Credentials come from the AWS SDK's default chain (environment, --profile / AWS_PROFILE, SSO, instance roles); the region from --region, AWS_REGION or the profile. The IAM actions it needs: ec2:DescribeRegions, DescribeImages, DescribeSnapshots, RegisterImage, DeregisterImage, DeleteSnapshot, CreateTags, CopyImage, ModifyImageAttribute, DescribeImageAttribute; ebs:StartSnapshot, PutSnapshotBlock, CompleteSnapshot; for --via import-snapshot also ec2:ImportSnapshot, DescribeImportSnapshotTasks, CancelImportTask, s3 Put/Get/DeleteObject, AbortMultipartUpload, ListMultipartUploadParts, ListBucket on the bucket, and iam:PassRole on the service role.`;
  static override examples = [
    '<%= config.bin %> ship aws slim/nginx:1 --region eu-west-1',
    '<%= config.bin %> ship aws slim/nginx:2 --region eu-west-1   # only the blocks that changed since slim/nginx:1',
    '<%= config.bin %> ship aws slim/nginx:1 --region eu-west-1 --copy-to-regions us-east-1 --share 123456789012 --tag team=web',
    '<%= config.bin %> ship aws slim/nginx:1 --region eu-west-1 --via import-snapshot --bucket my-images',
    '<%= config.bin %> ship aws slim/nginx:1 --region eu-west-1 --dry-run --json',
    '<%= config.bin %> ship aws slim/nginx:1 --region eu-west-1 --out build/aws   # keep the disk it uploads in build/aws',
  ];
  // one argument here (the provider is this command): Ship.run sees `aws` put back in front
  static override args = { image: Args.string({ description: 'image (name:tag or id)', required: true }) } as unknown as (typeof Ship)['args'];
  static override flags = { ...Ship.flags, ...optionFlags('aws', awsOptions, shipOwnFlags()) };

  override async run(): Promise<ShipResult> {
    this.argv = ['aws', ...this.argv];
    return super.run();
  }
}
