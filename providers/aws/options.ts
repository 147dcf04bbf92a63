import { z } from 'zod';
import { REGION_SHAPE } from './region.js';
import { tagProblems } from './names.js';

const region = z.string().regex(REGION_SHAPE, { error: (issue) => `"${String(issue.input)}" is not an AWS region name (like eu-west-1)` });
const account = z.string().regex(/^\d{12}$/, { error: (issue) => `"${String(issue.input)}" is not a 12-digit AWS account id` });

/**
 * The options of `aim ship aws`: flags, environment variables, help and validation come from here.
 * Credentials are never options: the SDK's default chain finds them (environment, profiles, SSO,
 * instance roles).
 */
export const awsOptions = z
  .object({
    region: region.optional().meta({ description: 'region to publish the AMI in (default: AWS_REGION, else the profile’s region)', env: 'AWS_REGION' }),
    profile: z.string().min(1).optional().meta({ description: 'named profile of the shared AWS config and credentials files', env: 'AWS_PROFILE' }),
    arch: z.enum(['x86_64', 'arm64']).default('x86_64').meta({ description: 'architecture of the AMI (aim builds x86_64 disks)' }),
    'boot-mode': z.enum(['uefi', 'legacy-bios', 'uefi-preferred']).default('uefi').meta({ description: 'boot mode of the AMI (aim’s disks boot with UEFI)' }),
    tpm: z.boolean().default(false).meta({ description: 'NitroTPM (TpmSupport v2.0; needs --boot-mode uefi)' }),
    name: z
      .string()
      .regex(/^[A-Za-z0-9()[\] ./\-'@_]{1,100}$/, { error: 'letters, digits, spaces and ( ) [ ] . / - \' @ _ (at most 100)' })
      .optional()
      .meta({ description: 'name of the AMI lineage (default: the image’s name); the AMI is <name>-<image id>' }),
    tag: z
      .array(z.string())
      .default([])
      .superRefine((tags, ctx) => {
        for (const p of tagProblems(tags)) ctx.addIssue({ code: 'custom', message: p });
      })
      .meta({ description: 'tag KEY=VALUE on the AMI and its snapshot (repeatable)' }),
    'copy-to-regions': z.array(region).default([]).meta({ description: 'copy the AMI to these regions too (repeatable, or comma-separated)', commaSeparated: true }),
    public: z.boolean().default(false).meta({ description: 'make the AMI public (launch permission for all)' }),
    share: z.array(account).default([]).meta({ description: 'share the AMI with these account ids (repeatable, or comma-separated)', commaSeparated: true }),
    encrypted: z.boolean().default(false).meta({ description: 'encrypt the snapshot (every block is written: no zero-block skipping)' }),
    'kms-key-id': z.string().min(1).optional().meta({ description: 'KMS key ARN for --encrypted (default: the account’s EBS key)' }),
    via: z.enum(['ebs', 'import-snapshot']).default('ebs').meta({ description: 'ebs: EBS direct APIs, changed blocks only (default); import-snapshot: S3 + VM Import' }),
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'not an S3 bucket name' }).optional().meta({ description: 'S3 bucket for --via import-snapshot' }),
    'role-name': z.string().min(1).default('vmimport').meta({ description: 'VM Import service role for --via import-snapshot' }),
    'disk-format': z.enum(['vmdk', 'raw']).default('vmdk').meta({ description: 'disk uploaded by --via import-snapshot: stream-optimized VMDK or raw' }),
    'endpoint-url': z.url({ protocol: /^https?$/ }).optional().meta({ description: 'send every AWS call to this endpoint (a local stand-in); per service: AWS_ENDPOINT_URL_EC2, _EBS, _S3' }),
    parallel: z.number().int().min(1).max(64).default(16).meta({ description: 'parallel block writes or part uploads' }),
    kernel: z.string().min(1).optional().meta({ description: 'kernel core image for images without a kernel (default: the newest core/kernel:*)', env: 'AIM_KERNEL' }),
    module: z.array(z.string().regex(/^[A-Za-z0-9_-]+$/)).default([]).meta({ description: 'extra kernel module for the initramfs (repeatable)' }),
  })
  .superRefine((o, ctx) => {
    if (o.via === 'import-snapshot' && !o.bucket) ctx.addIssue({ code: 'custom', path: ['bucket'], message: 'bucket is required with --via import-snapshot' });
    if (o.via === 'ebs' && o.bucket) ctx.addIssue({ code: 'custom', path: ['bucket'], message: '--bucket is for --via import-snapshot' });
    if (o['kms-key-id'] && !o.encrypted) ctx.addIssue({ code: 'custom', path: ['kms-key-id'], message: '--kms-key-id needs --encrypted' });
    if (o.tpm && o['boot-mode'] !== 'uefi') ctx.addIssue({ code: 'custom', path: ['tpm'], message: 'NitroTPM needs --boot-mode uefi' });
    if (o['boot-mode'] === 'legacy-bios') ctx.addIssue({ code: 'custom', path: ['boot-mode'], message: 'aim’s disks boot with UEFI (systemd-boot, no BIOS boot loader): an AMI in legacy-bios mode would not boot' });
    if (o.arch === 'arm64') ctx.addIssue({ code: 'custom', path: ['arch'], message: 'aim builds x86_64 disks only (systemd-boot x64, kernel core amd64): an arm64 AMI of them would not boot' });
    if (o.region && o['copy-to-regions'].includes(o.region)) ctx.addIssue({ code: 'custom', path: ['copy-to-regions'], message: `${o.region} is the region the AMI is made in` });
  });

export type AwsOptions = z.output<typeof awsOptions>;
