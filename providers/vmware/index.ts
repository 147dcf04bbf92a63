import { stat } from 'node:fs/promises';
import { ConfigError, defineProvider, z, type Artifact, type BuildResult, type JournalResource, type PlanStep, type ProviderPlan, type Published, type ShipImage } from '../../src/api/provider.js';
import { OVA_DEFAULT_MEMORY_MIB } from '../../src/core/build/ovf.js';
import { addCredentials } from '../../src/lib/redact.js';
import { DatastoreClient, datastoreFileUrl, datastorePath, parseDatastoreUrl, type DatastoreSettings, type RemoteFile } from './datastore.js';
import { DATASTORE_FILE, headFiles, journalledFile, refuseForeign, removeFile, uploadFiles } from './upload.js';

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The options of `aim ship vmware`: flags, environment, help and validation all come from here. */
export const vmwareOptions = z.object({
  'datastore-url': z
    .string()
    .superRefine((text, ctx) => {
      try {
        parseDatastoreUrl(text);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
      }
    })
    .optional()
    .meta({ description: 'upload to https://<host>/folder/<dir>?dcPath=<dc>&dsName=<ds> (credentials: AIM_VMWARE_USER, AIM_VMWARE_PASSWORD)', env: 'AIM_VMWARE_DATASTORE_URL' }),
  name: z
    .string()
    .regex(FILE_NAME, { error: (issue) => `"${String(issue.input)}" must be letters, digits, ".", "_" and "-"` })
    .optional()
    .meta({ description: 'base name of the files and the VM (default: from the image name)' }),
  insecure: z.boolean().default(false).meta({ description: 'accept a self-signed certificate (ESXi default)' }),
  overwrite: z.boolean().default(false).meta({ description: 'replace files that already exist on the datastore and are not this publication’s' }),
  kernel: z.string().min(1).optional().meta({ description: 'kernel core image to boot when the image has no kernel of its own (default: the newest core/kernel:*)', env: 'AIM_KERNEL' }),
  memory: z
    .number()
    .int('a whole number of MiB')
    .min(4, 'the VM needs at least 4 MiB')
    .default(OVA_DEFAULT_MEMORY_MIB)
    .meta({ description: 'memory of the VM in the OVF descriptor, MiB' }),
});
export type VmwareOptions = z.output<typeof vmwareOptions>;

/** Safe file base name: --name, else from the image reference ("slim/nginx:1" → "slim-nginx-1"). */
export function fileBaseName(options: Pick<VmwareOptions, 'name'>, image: ShipImage): string {
  if (options.name) return options.name;
  return image.ref.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '') || image.id.slice(0, 12);
}

const fileNames = (name: string) => [`${name}.vmdk`, `${name}.ova`];

/** The datastore to upload to, with the credentials from the environment; undefined without --datastore-url. */
export function datastoreSettings(options: Pick<VmwareOptions, 'datastore-url' | 'insecure'>, env: NodeJS.ProcessEnv): DatastoreSettings | undefined {
  const url = options['datastore-url'];
  if (url === undefined) return undefined;
  const target = parseDatastoreUrl(url);
  const user = env.AIM_VMWARE_USER;
  const password = env.AIM_VMWARE_PASSWORD;
  if (!user || !password) {
    const missing = [user ? undefined : 'AIM_VMWARE_USER', password ? undefined : 'AIM_VMWARE_PASSWORD'].filter(Boolean).join(' and ');
    throw new ConfigError(`uploading to a datastore needs credentials: ${missing} not set`, { hint: 'export AIM_VMWARE_USER=… AIM_VMWARE_PASSWORD=… (never on the command line)' });
  }
  // hidden from every message and log from now on, also as the basic-auth header a server may echo
  addCredentials(user, password);
  return { target, credentials: { user, password }, insecure: options.insecure === true };
}

/** What observe saw: the datastore's files and the journal's record of them, or the local builds. */
export interface VmwareObserved {
  name: string;
  /** Datastore file name → what HEAD said and what the journal records. */
  remote?: Record<string, { remote: RemoteFile; journalled?: { state: JournalResource['state']; bytes?: number; sha256?: string } }>;
  /** Without a datastore: the journal's builds whose files are all still there (same size). */
  localBuilds: { format: string; artifacts: Artifact[] }[];
}

export interface VmwarePlan extends ProviderPlan {
  name: string;
  memoryMiB: number;
  kernel?: string;
  builds: { format: 'vmdk' | 'ova'; dir: string }[];
  uploads: { file: string; destination: string; path: string; replaces: 'nothing' | 'ours' | 'foreign' }[];
}

async function localBuilds(journal: readonly JournalResource[]): Promise<VmwareObserved['localBuilds']> {
  const out: VmwareObserved['localBuilds'] = [];
  for (const r of journal) {
    const result = r.data.result as BuildResult | undefined;
    if (r.kind !== 'build' || r.state !== 'created' || !result) continue;
    const sizes = await Promise.all(result.artifacts.map((a) => stat(a.path).then((s) => s.size, () => -1)));
    if (sizes.every((s, i) => s === result.artifacts[i]!.bytes)) out.push({ format: result.format, artifacts: result.artifacts });
  }
  return out;
}

function pick(artifacts: Artifact[], ext: string, format: string): Artifact {
  const found = artifacts.find((a) => a.path.endsWith(ext));
  if (!found) throw new ConfigError(`the ${format} build wrote no ${ext} file`);
  return found;
}

/**
 * VMware: a stream-optimized VMDK and an OVA (OVF + that VMDK) built for the vmware platform into
 * the output directory and, with --datastore-url, uploaded through the ESXi/vCenter datastore HTTP
 * file API, each file journalled as it goes.
 */
export const vmware = defineProvider({
  name: 'vmware',
  summary: 'VMDK (stream-optimized) and OVA for ESXi/vCenter; optionally uploaded to a datastore over HTTPS.',
  options: vmwareOptions,

  target(options, { image, outDir }) {
    const name = fileBaseName(options, image);
    const url = options['datastore-url'];
    if (url === undefined) {
      // the VMDK and OVA are what this ship gives: they stay where the user says, never in aim's scratch space
      if (outDir === undefined) throw new ConfigError('without --datastore-url, vmware only builds the VMDK and OVA locally: give --out DIR for them', { hint: 'add --out DIR (a new or empty directory), or --datastore-url to upload them' });
      return `local ${outDir} ${name}`;
    }
    const t = parseDatastoreUrl(url);
    return `datastore ${t.origin} ${t.dcPath} ${datastorePath(t, `${name}.{vmdk,ova}`)}`;
  },

  async observe(target, ctx) {
    ctx.requireFormat('vmdk');
    ctx.requireFormat('ova');
    const name = fileBaseName(target.options, target.image);
    const settings = datastoreSettings(target.options, ctx.env);
    if (!settings) return { name, localBuilds: await localBuilds(target.journal) } satisfies VmwareObserved;
    const client = new DatastoreClient(settings);
    try {
      const heads = await headFiles(client, settings, fileNames(name), ctx.signal);
      const remote: NonNullable<VmwareObserved['remote']> = {};
      for (const [file, head] of Object.entries(heads)) {
        const j = journalledFile(target.journal, settings, file);
        remote[file] = { remote: head, ...(j ? { journalled: { state: j.state, bytes: j.data.bytes as number | undefined, sha256: j.data.sha256 as string | undefined } } : {}) };
      }
      return { name, remote, localBuilds: [] } satisfies VmwareObserved;
    } finally {
      client.close();
    }
  },

  plan(_image, observed: VmwareObserved, options): VmwarePlan {
    const name = observed.name;
    const builds: VmwarePlan['builds'] = [
      { format: 'vmdk', dir: 'vmdk' },
      { format: 'ova', dir: 'ova' },
    ];
    const base = { name, memoryMiB: options.memory, ...(options.kernel ? { kernel: options.kernel } : {}), builds };
    const url = options['datastore-url'];
    if (url === undefined) {
      const done = builds.every((b) => observed.localBuilds.some((l) => l.format === b.format));
      const published: Published[] = observed.localBuilds.flatMap((l) => l.artifacts.map((a) => ({ kind: 'local file', location: a.path, bytes: a.bytes, sha256: a.sha256 })));
      return {
        ...base,
        uploads: [],
        steps: done ? [] : builds.map((b) => ({ action: 'build', subject: `${b.format} → ${b.dir}/` })),
        notes: ['no --datastore-url: artifacts are only written locally'],
        ...(done ? { upToDate: true, published } : {}),
      };
    }
    const settings = { target: parseDatastoreUrl(url) };
    const remote = observed.remote ?? {};
    refuseForeign(settings.target, Object.fromEntries(Object.entries(remote).map(([f, r]) => [f, r.remote])), (f) => remote[f]?.journalled !== undefined, options.overwrite);
    const uploads: VmwarePlan['uploads'] = fileNames(name).map((file) => ({
      file,
      destination: datastoreFileUrl(settings.target, file).href,
      path: datastorePath(settings.target, file),
      replaces: !remote[file]?.remote.exists ? 'nothing' : remote[file]?.journalled ? 'ours' : 'foreign',
    }));
    // created by this publication and still there at the size it had (apply checks the sha256 of the new build too)
    const uploaded = (file: string) => {
      const r = remote[file];
      return r?.journalled?.state === 'created' && r.remote.exists && r.journalled.bytes !== undefined && r.remote.bytes === r.journalled.bytes;
    };
    if (uploads.every((u) => uploaded(u.file))) {
      const published = uploads.map((u) => ({ kind: DATASTORE_FILE, location: u.path, bytes: remote[u.file]!.journalled!.bytes, sha256: remote[u.file]!.journalled!.sha256 }));
      return { ...base, uploads, steps: [], notes: ['every file is on the datastore as the journal records it'], upToDate: true, published };
    }
    const steps: PlanStep[] = [
      ...builds.map((b) => ({ action: 'build', subject: `${b.format} → ${b.dir}/` })),
      ...uploads.map((u) => ({ action: uploaded(u.file) ? 'keep' : 'upload', subject: u.file, detail: u.destination })),
    ];
    const replacing = uploads.filter((u) => u.replaces === 'foreign').map((u) => u.path);
    return {
      ...base,
      uploads,
      steps,
      notes: [
        replacing.length > 0 ? `--overwrite: replaces ${replacing.join(', ')}` : 'files that exist and are not this publication’s stop the run (--overwrite replaces them)',
        'each file is journalled as it uploads: aim ship resume continues an interrupted upload, aim ship rm removes what was sent',
      ],
    };
  },

  async apply(plan, ctx) {
    const kernelImage = plan.kernel;
    const vmdk = await ctx.build('vmdk', 'vmdk', { platform: 'vmware', kernelImage });
    const disk = pick(vmdk.artifacts, '.vmdk', 'vmdk');
    // the OVA packs the VMDK just built: the disk is built once
    const ova = await ctx.build('ova', 'ova', { platform: 'vmware', kernelImage, vmdk: disk.path, vmName: plan.name, memoryMiB: plan.memoryMiB });
    const artifacts = [...vmdk.artifacts, ...ova.artifacts];
    const settings = datastoreSettings(ctx.options, ctx.env);
    if (!settings) return { published: artifacts.map((a) => ({ kind: 'local file', location: a.path, bytes: a.bytes, sha256: a.sha256 })) };
    const appliance = pick(ova.artifacts, '.ova', 'ova');
    const files = [
      { path: disk.path, name: `${plan.name}.vmdk`, bytes: disk.bytes, sha256: disk.sha256 },
      { path: appliance.path, name: `${plan.name}.ova`, bytes: appliance.bytes, sha256: appliance.sha256 },
    ];
    ctx.reporter.emit({ type: 'info', message: `uploading ${files.map((f) => f.name).join(', ')} to ${settings.target.origin}` });
    return { published: await uploadFiles(settings, files, { journal: ctx.journal, reporter: ctx.reporter, signal: ctx.signal, overwrite: ctx.options.overwrite }) };
  },

  async remove(resource, ctx) {
    if (resource.kind !== DATASTORE_FILE) throw new ConfigError(`vmware does not know resources of kind "${resource.kind}"`);
    const url = new URL(String(resource.data.url));
    const settings = datastoreSettings({ 'datastore-url': `${url.origin}/folder?${url.searchParams}`, insecure: ctx.options.insecure }, ctx.env)!;
    if ((await removeFile(settings, resource, ctx.signal)) === 'gone') ctx.reporter.emit({ type: 'info', message: `${resource.id} was already gone from the datastore` });
  },
});
