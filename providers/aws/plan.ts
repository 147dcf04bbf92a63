import type { NewResource, PlanStep, ProviderPlan, Published, ShipImage } from '../../src/api/provider.js';
import type { AmiInfo } from './ami.js';
import type { AwsObserved, ObservedParent } from './observe.js';
import type { AwsOptions } from './options.js';
import { KIND } from './resources.js';

/** What `aim ship aws` will do, from the image, what observe saw and the options (JSON; journalled and printed). */
export interface AwsPlan extends ProviderPlan {
  region: string;
  lineage: string;
  amiName: string;
  description: string;
  via: AwsOptions['via'];
  build: { format: 'raw' | 'vmdk'; dir: string; platform: 'ec2'; modules: string[]; kernel?: string; idSeed: string };
  /** This ship's AMI as observe found it (registered by an earlier run): only copies and sharing remain. */
  existingAmi?: string;
  parent?: ObservedParent;
  copies: { region: string; existing?: string }[];
  share: { public: boolean; accounts: string[] };
  encrypted: boolean;
  kmsKeyId?: string;
  import?: { bucket: string; key: string; roleName: string; format: 'VMDK' | 'RAW' };
  architecture: AwsOptions['arch'];
  bootMode: AwsOptions['boot-mode'];
  tpm: boolean;
  tags: Record<string, string>;
  /** AMIs (this ship's and its copies) that exist without some of `tags`, each with its snapshots: tagged again. */
  retag?: { region: string; ids: string[] }[];
  parallel: number;
}

const published = (region: string, id: string): Published => ({ kind: 'ami', id, location: region });

/** Pure: the plan for these inputs, what `aim ship aws --dry-run` prints. */
export function planAws(image: ShipImage, observed: AwsObserved, o: AwsOptions): AwsPlan {
  const region = observed.region;
  const ebs = o.via === 'ebs';
  const format: 'raw' | 'vmdk' = ebs || o['disk-format'] === 'raw' ? 'raw' : 'vmdk';
  const tags = Object.fromEntries(o.tag.map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]));
  const base = {
    region,
    lineage: observed.lineage,
    amiName: observed.amiName,
    description: `${image.ref} (aim ${image.id.slice(0, 12)})`,
    via: o.via,
    build: { format, dir: format, platform: 'ec2' as const, modules: o.module, ...(o.kernel ? { kernel: o.kernel } : {}), idSeed: `aws ${observed.lineage}` },
    copies: o['copy-to-regions'].map((r) => ({ region: r, ...(observed.copies[r] ? { existing: observed.copies[r].id } : {}) })),
    share: { public: o.public, accounts: o.share },
    encrypted: o.encrypted,
    ...(o['kms-key-id'] ? { kmsKeyId: o['kms-key-id'] } : {}),
    ...(ebs ? {} : { import: { bucket: o.bucket!, key: `aim/${observed.amiName}.${format}`, roleName: o['role-name'], format: format === 'raw' ? ('RAW' as const) : ('VMDK' as const) } }),
    architecture: o.arch,
    bootMode: o['boot-mode'],
    tpm: o.tpm,
    tags,
    parallel: o.parallel,
  };
  const steps: PlanStep[] = [];
  const notes: string[] = [];
  const existing = observed.existing;
  if (!existing) {
    steps.push({ action: 'build', subject: `${format} for the ec2 platform → ${format}/`, detail: `modules nvme, ena${o.module.length ? `, ${o.module.join(', ')}` : ''}` });
    if (ebs && observed.parent) {
      steps.push({ action: 'upload', subject: `changed 512 KiB blocks to a new EBS snapshot of ${observed.parent.snapshotId}`, detail: `parent: ${observed.parent.amiId} (${observed.parent.imageRef})` });
      notes.push(`blocks equal to ${observed.parent.snapshotId}'s (per its recorded block map) are not sent; a block now zero that held data is written as zeros`);
    } else if (ebs) {
      steps.push({ action: 'upload', subject: o.encrypted ? 'every 512 KiB block (encrypted) to a new EBS snapshot' : 'the 512 KiB blocks holding data to a new EBS snapshot', detail: 'EBS direct APIs' });
    } else {
      steps.push({ action: 'upload', subject: `${format} → s3://${o.bucket}/${base.import!.key}`, detail: 'multipart' });
      steps.push({ action: 'import', subject: `ImportSnapshot with role ${o['role-name']}`, detail: 'the S3 object is deleted once the snapshot exists' });
    }
    steps.push({ action: 'register', subject: `AMI ${observed.amiName} in ${region}`, detail: `${o.arch}, ${o['boot-mode']}, ENA, IMDSv2${o.tpm ? ', NitroTPM' : ''}` });
  } else {
    notes.push(`AMI ${existing.id} of this ship exists in ${region} (${existing.state}): nothing is uploaded`);
  }
  for (const c of base.copies) if (!c.existing) steps.push({ action: 'copy', subject: `AMI to ${c.region}` });
  // tags are not part of the target: a ship again with more of them adds them to what exists
  const lacking = (ami: AmiInfo | undefined) => ami !== undefined && Object.entries(tags).some(([k, v]) => ami.tags[k] !== v);
  const retag = [
    ...(lacking(existing) ? [{ region, ids: [existing!.id, ...existing!.snapshotIds] }] : []),
    ...base.copies.flatMap((c) => (lacking(observed.copies[c.region]) ? [{ region: c.region, ids: [observed.copies[c.region]!.id, ...observed.copies[c.region]!.snapshotIds] }] : [])),
  ];
  for (const r of retag) steps.push({ action: 'tag', subject: r.ids.join(', '), detail: Object.keys(tags).join(', ') });
  const granted = new Set(observed.launchPermissions);
  const shareMissing = (o.public && !granted.has('all')) || o.share.some((a) => !granted.has(a));
  if ((o.public || o.share.length > 0) && (!existing || shareMissing)) steps.push({ action: 'share', subject: [o.public ? 'public' : '', ...o.share].filter(Boolean).join(', ') });
  const plan: AwsPlan = { ...base, ...(retag.length ? { retag } : {}), ...(existing ? { existingAmi: existing.id } : {}), ...(observed.parent && !existing ? { parent: observed.parent } : {}), steps, notes };
  if (existing?.state === 'available' && base.copies.every((c) => c.existing) && !shareMissing && retag.length === 0) {
    const adopt: NewResource[] = [
      { kind: KIND.ami, id: existing.id, location: region, data: { name: observed.amiName } },
      ...base.copies.map((c) => ({ kind: KIND.ami, id: c.existing!, location: c.region, data: { name: observed.amiName, copyOf: existing.id } })),
    ];
    return { ...plan, upToDate: true, published: [published(region, existing.id), ...base.copies.map((c) => published(c.region, c.existing!))], adopt };
  }
  return plan;
}
