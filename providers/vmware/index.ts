import { basename } from 'node:path';
import { OVA_DEFAULT_MEMORY_MIB } from '../../src/core/build/ovf.js';
import { ConfigError } from '../../src/lib/errors.js';
import { addCredentials } from '../../src/lib/redact.js';
import type { Artifact } from '../../src/core/build/types.js';
import type { Provider, ProviderOptions, ShipContext, ShipRequest } from '../../src/core/ship/provider.js';
import { checkDatastore, datastoreFileUrl, parseDatastoreUrl, uploadToDatastore, type DatastoreOptions } from './datastore.js';

/** Safe file base name from the image reference: "slim/nginx:1" → "slim-nginx-1". */
export function fileBaseName(request: ShipRequest): string {
  const given = request.options.name;
  if (typeof given === 'string') {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(given)) throw new ConfigError(`--name "${given}" must be letters, digits, ".", "_" and "-"`);
    return given;
  }
  return request.imageRef.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '') || request.imageId.slice(0, 12);
}

/** The datastore settings from options and environment; undefined when no upload was asked for. */
export function datastoreSettings(options: ProviderOptions, env: NodeJS.ProcessEnv, context: Pick<ShipContext, 'reporter' | 'signal'>): DatastoreOptions | undefined {
  const url = options['datastore-url'];
  if (typeof url !== 'string') return undefined;
  const target = parseDatastoreUrl(url);
  const user = env.AIM_VMWARE_USER;
  const password = env.AIM_VMWARE_PASSWORD;
  if (!user || !password) {
    const missing = [user ? undefined : 'AIM_VMWARE_USER', password ? undefined : 'AIM_VMWARE_PASSWORD'].filter(Boolean).join(' and ');
    throw new ConfigError(`uploading to a datastore needs credentials: ${missing} not set`, { hint: 'export AIM_VMWARE_USER=… AIM_VMWARE_PASSWORD=… (never on the command line)' });
  }
  // hidden from every message and log from now on, also as the basic-auth header a server may echo
  addCredentials(user, password);
  return { target, credentials: { user, password }, insecure: options.insecure === true, overwrite: options.overwrite === true, reporter: context.reporter, signal: context.signal };
}

/** --memory as MiB; a ConfigError before any work when it is not a whole number of at least 4. */
export function memoryMiB(options: ProviderOptions): number {
  const given = options.memory;
  if (typeof given !== 'string') return OVA_DEFAULT_MEMORY_MIB;
  if (!/^\d+$/.test(given) || Number(given) < 4) throw new ConfigError(`--memory ${given}: expected the VM's memory in MiB (at least 4)`);
  return Number(given);
}

function pick(artifacts: Artifact[], ext: string, format: string): Artifact {
  const found = artifacts.find((a) => a.path.endsWith(ext));
  if (!found) throw new ConfigError(`the ${format} build wrote no ${ext} file`);
  return found;
}

/**
 * VMware: a stream-optimized VMDK and an OVA (OVF + that VMDK) built for the vmware platform, written
 * to the output directory and, with --datastore-url, uploaded through the ESXi/vCenter datastore
 * HTTP file API.
 */
export const vmware = {
  name: 'vmware',
  summary: 'VMDK (stream-optimized) and OVA for ESXi/vCenter; optionally uploaded to a datastore over HTTPS.',
  options: [
    { name: 'datastore-url', type: 'string', env: 'AIM_VMWARE_DATASTORE_URL', description: 'upload to https://<host>/folder/<dir>?dcPath=<dc>&dsName=<ds> (credentials: AIM_VMWARE_USER, AIM_VMWARE_PASSWORD)' },
    { name: 'name', type: 'string', description: 'base name of the uploaded files (default: from the image name)' },
    { name: 'insecure', type: 'boolean', description: 'accept a self-signed certificate (ESXi default)' },
    { name: 'overwrite', type: 'boolean', description: 'replace files that already exist on the datastore' },
    { name: 'kernel', type: 'string', env: 'AIM_KERNEL', description: 'kernel core image to boot when the image has no kernel of its own (default: the newest core/kernel:*)' },
    { name: 'memory', type: 'string', description: `memory of the VM in the OVF descriptor, MiB (default ${OVA_DEFAULT_MEMORY_MIB})` },
  ],
  plan(request) {
    const name = fileBaseName(request);
    const url = request.options['datastore-url'];
    const target = typeof url === 'string' ? parseDatastoreUrl(url) : undefined;
    return {
      builds: [
        { format: 'vmdk', dir: 'vmdk' },
        { format: 'ova', dir: 'ova' },
      ],
      uploads: target
        ? ['vmdk', 'ova'].map((ext) => ({ file: `${name}.${ext}`, destination: datastoreFileUrl(target, `${name}.${ext}`).href }))
        : [],
      notes: target ? [`existing files are ${request.options.overwrite === true ? 'replaced' : 'kept (the run stops)'}; a failed upload removes what it sent; no automatic retry`] : ['no --datastore-url: artifacts are only written locally'],
    };
  },
  async check(request, context) {
    context.requireFormat('vmdk');
    context.requireFormat('ova');
    memoryMiB(request.options);
    const settings = datastoreSettings(request.options, context.env, context);
    const name = fileBaseName(request);
    if (settings) await checkDatastore(settings, [`${name}.vmdk`, `${name}.ova`]);
  },
  async ship(request, context) {
    const name = fileBaseName(request);
    const kernelImage = typeof request.options.kernel === 'string' ? request.options.kernel : undefined;
    const vmdk = await context.build('vmdk', 'vmdk', { platform: 'vmware', kernelImage });
    // the OVA packs the VMDK just built: the disk is built once
    const ova = await context.build('ova', 'ova', { platform: 'vmware', kernelImage, vmdk: pick(vmdk.artifacts, '.vmdk', 'vmdk').path, vmName: name, memoryMiB: memoryMiB(request.options) });
    const artifacts = [...vmdk.artifacts, ...ova.artifacts];
    const settings = datastoreSettings(request.options, context.env, context);
    if (!settings) return { artifacts, published: artifacts.map((a) => ({ kind: 'local file', location: a.path, bytes: a.bytes, sha256: a.sha256 })) };
    const files = [
      { path: pick(vmdk.artifacts, '.vmdk', 'vmdk').path, name: `${name}.vmdk` },
      { path: pick(ova.artifacts, '.ova', 'ova').path, name: `${name}.ova` },
    ];
    context.reporter.emit({ type: 'info', message: `uploading ${files.map((f) => basename(f.path)).join(', ')} to ${settings.target.origin}` });
    return { artifacts, published: await uploadToDatastore(settings, files) };
  },
} satisfies Provider;
