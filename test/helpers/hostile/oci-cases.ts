import { createHash } from 'node:crypto';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { inClass, type HostileCase } from './harness.js';
import { archive, dir, file, header, symlinkMember, writeTar, zeroBomb } from './tar-bytes.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const LAYER = 'application/vnd.oci.image.layer.v1.tar';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  [k: string]: unknown;
}

/** Writes a blob into the layout; returns its descriptor and path. */
async function blob(layout: string, bytes: Buffer, mediaType: string): Promise<Descriptor & { path: string }> {
  const hex = sha(bytes);
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  const path = join(layout, 'blobs', 'sha256', hex);
  await writeFile(path, bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length, path };
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const strip = ({ path: _p, ...d }: Descriptor & { path?: string }): Descriptor => d;

/** A valid OCI layout of the given layers (plain tar bytes); parts can be edited before writing. */
async function ociLayout(
  layout: string,
  layers: Buffer[],
  edit: { manifest?: (m: Record<string, unknown>) => void; index?: (i: Record<string, unknown>) => void; layerType?: string } = {},
) {
  await mkdir(layout, { recursive: true });
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const layerDescs = [];
  for (const l of layers) layerDescs.push(await blob(layout, l, edit.layerType ?? LAYER));
  const config = await blob(layout, json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha(l)}`) } }), 'application/vnd.oci.image.config.v1+json');
  const manifestDoc: Record<string, unknown> = { schemaVersion: 2, mediaType: MANIFEST, config: strip(config), layers: layerDescs.map(strip) };
  edit.manifest?.(manifestDoc);
  const manifest = await blob(layout, json(manifestDoc), MANIFEST);
  const indexDoc: Record<string, unknown> = { schemaVersion: 2, mediaType: INDEX, manifests: [{ ...strip(manifest), platform: { os: 'linux', architecture: 'amd64' } }] };
  edit.index?.(indexDoc);
  await writeFile(join(layout, 'index.json'), json(indexDoc));
  return { layers: layerDescs, config, manifest };
}

const simpleLayer = () => archive(dir('./'), dir('./etc/'), file('./etc/hostname', 'oci\n'));

/** Replaces `path` by a symlink to `target`. */
async function swapForLink(path: string, target: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
  await symlink(target, path);
}

const oci = inClass('OCI layout', [
  {
    name: 'index.json is a symlink to a host file',
    make: async ({ dir: d, secret }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [simpleLayer()]);
      await swapForLink(join(l, 'index.json'), secret);
      return l;
    },
    exitCode: 4,
    code: 'E_LAYOUT_SYMLINK',
  },
  {
    name: 'the image config blob is a symlink to a host file',
    make: async ({ dir: d, secret }) => {
      const l = join(d, 'layout');
      const { config } = await ociLayout(l, [simpleLayer()]);
      await swapForLink(config.path, secret);
      return l;
    },
    exitCode: 4,
    code: 'E_LAYOUT_SYMLINK',
  },
  {
    name: 'a layer blob is a symlink to a host tar',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      const host = join(d, 'host.tar');
      const { layers } = await ociLayout(l, [simpleLayer()]);
      await writeTar(host, simpleLayer());
      await swapForLink(layers[0]!.path, host);
      return l;
    },
    exitCode: 4,
    code: 'E_LAYOUT_SYMLINK',
  },
  {
    name: 'blobs/sha256 is a symlink to a host directory',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [simpleLayer()]);
      await rename(join(l, 'blobs', 'sha256'), join(d, 'elsewhere'));
      await symlink(join(d, 'elsewhere'), join(l, 'blobs', 'sha256'));
      return l;
    },
    exitCode: 4,
    code: 'E_LAYOUT_SYMLINK',
  },
  {
    name: 'index.json that is not JSON is never quoted',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [simpleLayer()]);
      await writeFile(join(l, 'index.json'), 'root:x:0:0:quoted-in-an-error?');
      return l;
    },
    exitCode: 4,
    code: 'E_BAD_MANIFEST',
    message: /^(?!.*quoted-in-an-error).*not valid JSON/,
  },
  {
    name: 'an index fanning out 200×200×200 to the same indexes',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      const { manifest } = await ociLayout(l, [simpleLayer()]);
      let child: Descriptor = { ...strip(manifest), platform: { os: 'linux', architecture: 'amd64' } };
      for (let level = 0; level < 2; level++) {
        const idx = await blob(l, json({ schemaVersion: 2, mediaType: INDEX, manifests: Array.from({ length: 200 }, () => child) }), INDEX);
        child = strip(idx);
      }
      await writeFile(join(l, 'index.json'), json({ schemaVersion: 2, mediaType: INDEX, manifests: Array.from({ length: 200 }, () => child) }));
      return l;
    },
    exitCode: 0,
    maxSeconds: 60,
  },
  {
    name: 'an index fanning out to 200 distinct indexes of 200 entries',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      const { manifest } = await ociLayout(l, [simpleLayer()]);
      const children = [];
      for (let i = 0; i < 200; i++) {
        const entries = Array.from({ length: 200 }, () => ({ ...strip(manifest), annotations: { n: String(i) } }));
        children.push(strip(await blob(l, json({ schemaVersion: 2, mediaType: INDEX, manifests: entries }), INDEX)));
      }
      await writeFile(join(l, 'index.json'), json({ schemaVersion: 2, mediaType: INDEX, manifests: children }));
      return l;
    },
    exitCode: 4,
    code: 'E_BAD_MANIFEST',
    message: /more than 10000 descriptors/,
    maxSeconds: 60,
  },
  {
    name: 'indexes nested five deep',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      const { manifest } = await ociLayout(l, [simpleLayer()]);
      let child: Descriptor = strip(manifest);
      for (let level = 0; level < 5; level++) child = strip(await blob(l, json({ schemaVersion: 2, mediaType: INDEX, manifests: [child] }), INDEX));
      await writeFile(join(l, 'index.json'), json({ schemaVersion: 2, mediaType: INDEX, manifests: [child] }));
      return l;
    },
    exitCode: 4,
    code: 'E_BAD_MANIFEST',
    message: /nested too deeply/,
  },
  {
    name: 'a descriptor with a negative size',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [simpleLayer()], { manifest: (m) => ((m.layers as Descriptor[])[0]!.size = -1) });
      return l;
    },
    exitCode: 4,
    code: 'E_BAD_MANIFEST',
    message: /invalid size/,
  },
  {
    name: 'a descriptor size that does not match the blob',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [simpleLayer()], { manifest: (m) => ((m.layers as Descriptor[])[0]!.size += 512) });
      return l;
    },
    exitCode: 4,
    code: 'E_DIGEST_MISMATCH',
  },
  {
    name: 'a layer whose content does not match its digest',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      const { layers } = await ociLayout(l, [simpleLayer()]);
      await writeFile(layers[0]!.path, archive(dir('./'), file('./etc/hostname', 'tampered\n')));
      return l;
    },
    exitCode: 4,
    code: 'E_DIGEST_MISMATCH',
  },
  {
    name: 'a layer missing from the layout',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      const { layers } = await ociLayout(l, [simpleLayer()]);
      await rm(layers[0]!.path);
      return l;
    },
    exitCode: 4,
    code: 'E_MISSING_BLOB',
  },
  {
    name: 'an index.json of 17 MiB',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [simpleLayer()]);
      await writeFile(join(l, 'index.json'), `{"schemaVersion":2,"manifests":[],"x":"${'a'.repeat(17 << 20)}"}`);
      return l;
    },
    exitCode: 4,
    code: 'E_BAD_MANIFEST',
    message: /too large/,
  },
  {
    name: 'a manifest of 1001 layers',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [simpleLayer()], { manifest: (m) => (m.layers = Array.from({ length: 1001 }, () => (m.layers as Descriptor[])[0])) });
      return l;
    },
    exitCode: 4,
    code: 'E_BAD_MANIFEST',
    message: /more than 1000/,
  },
  {
    name: 'a layer listing b/x, then b -> a host directory',
    make: async ({ dir: d, hostDir }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [archive(dir('./'), file('./b/x', 'x'), symlinkMember('./b', hostDir))]);
      return l;
    },
    exitCode: 4,
    code: 'E_CONFLICTING_ENTRIES',
  },
  {
    name: 'a layer listing a file, then an entry below it',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [archive(dir('./'), file('./a', 'a'), file('./a/x', 'x'))]);
      return l;
    },
    exitCode: 4,
    code: 'E_NOT_A_DIRECTORY',
  },
  {
    name: 'a whiteout escaping with ..',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [simpleLayer(), archive(header({ name: './etc/../../.wh.passwd', size: 0 }))]);
      return l;
    },
    exitCode: 4,
    code: 'E_PATH_TRAVERSAL',
  },
  {
    name: 'a layer entry with a negative size',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [archive(dir('./'), header({ name: './f', size: -1n }))]);
      return l;
    },
    exitCode: 4,
    code: 'E_CORRUPT_ARCHIVE',
  },
  {
    name: 'an encrypted layer',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [simpleLayer()], { layerType: 'application/vnd.oci.image.layer.v1.tar+encrypted' });
      return l;
    },
    exitCode: 4,
    code: 'E_UNSUPPORTED_LAYER',
  },
  {
    name: 'a hardlink to a file no layer has',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      await ociLayout(l, [archive(dir('./'), header({ name: './h', typeflag: '1', linkname: './etc/shadow' }))]);
      return l;
    },
    exitCode: 4,
    code: 'E_BAD_HARDLINK',
  },
  {
    name: 'a gzip layer holding a 2 GiB file of zeros',
    make: async ({ dir: d }) => {
      const l = join(d, 'layout');
      const bomb = await zeroBomb(join(d, 'layer.tar.gz'), 2 ** 31, 'gzip', './zeros');
      const { readFile } = await import('node:fs/promises');
      await ociLayout(l, [await readFile(bomb)], { layerType: `${LAYER}+gzip` });
      return l;
    },
    exitCode: 0,
    maxStoredBytes: 1 << 20,
    maxSeconds: 110,
    maxRssMiB: 400,
    check: (_json, { entries }) => {
      expect(entries.get('/zeros')).toMatchObject({ size: 2 ** 31, sparse: '[]' });
    },
  },
]);

/** `docker save` archives unpacked in a directory. */
async function dockerDir(root: string, layers: Buffer[]) {
  await mkdir(root, { recursive: true });
  const names: string[] = [];
  for (const l of layers) {
    const id = sha(Buffer.concat([l, Buffer.from(String(names.length))]));
    await mkdir(join(root, id));
    await writeFile(join(root, id, 'layer.tar'), l);
    names.push(`${id}/layer.tar`);
  }
  const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha(l)}`) } });
  const configName = `${sha(config)}.json`;
  await writeFile(join(root, configName), config);
  await writeFile(join(root, 'manifest.json'), json([{ Config: configName, RepoTags: ['hostile:1'], Layers: names }]));
  return { names, configName };
}

const docker = inClass('docker save archive', [
  {
    name: 'layer.tar is a symlink to a host tar',
    make: async ({ dir: d }) => {
      const root = join(d, 'docker');
      const { names } = await dockerDir(root, [simpleLayer()]);
      const host = await writeTar(join(d, 'host.tar'), simpleLayer());
      await swapForLink(join(root, names[0]!), host);
      return { args: ['image', 'import', root, '--kind', 'docker-archive'] };
    },
    exitCode: 4,
    code: 'E_LAYOUT_SYMLINK',
  },
  {
    name: 'manifest.json is a symlink to a host file',
    make: async ({ dir: d, secret }) => {
      const root = join(d, 'docker');
      await dockerDir(root, [simpleLayer()]);
      await swapForLink(join(root, 'manifest.json'), secret);
      return { args: ['image', 'import', root, '--kind', 'docker-archive'] };
    },
    exitCode: 4,
    code: 'E_LAYOUT_SYMLINK',
  },
  {
    name: 'the config JSON is a symlink to a host file',
    make: async ({ dir: d, secret }) => {
      const root = join(d, 'docker');
      const { configName } = await dockerDir(root, [simpleLayer()]);
      await swapForLink(join(root, configName), secret);
      return { args: ['image', 'import', root, '--kind', 'docker-archive'] };
    },
    exitCode: 4,
    code: 'E_LAYOUT_SYMLINK',
  },
  {
    name: 'a layer directory is a symlink to a host directory',
    make: async ({ dir: d }) => {
      const root = join(d, 'docker');
      const { names } = await dockerDir(root, [simpleLayer()]);
      const layerDir = join(root, names[0]!.split('/')[0]!);
      await rename(layerDir, join(d, 'moved'));
      await symlink(join(d, 'moved'), layerDir);
      return { args: ['image', 'import', root, '--kind', 'docker-archive'] };
    },
    exitCode: 4,
    code: 'E_LAYOUT_SYMLINK',
  },
  {
    name: 'a layer named ../../ outside the archive',
    make: async ({ dir: d }) => {
      const root = join(d, 'docker');
      const { configName } = await dockerDir(root, [simpleLayer()]);
      await writeFile(join(root, 'manifest.json'), json([{ Config: configName, RepoTags: ['hostile:1'], Layers: ['../../../etc/passwd'] }]));
      return { args: ['image', 'import', root, '--kind', 'docker-archive'] };
    },
    exitCode: 4,
    code: ['E_MISSING_BLOB', 'E_BAD_MANIFEST'],
  },
  {
    name: 'a manifest listing 2000 layers',
    make: async ({ dir: d }) => {
      const root = join(d, 'docker');
      const { names, configName } = await dockerDir(root, [simpleLayer()]);
      await writeFile(join(root, 'manifest.json'), json([{ Config: configName, RepoTags: ['hostile:1'], Layers: Array.from({ length: 2000 }, () => names[0]) }]));
      return { args: ['image', 'import', root, '--kind', 'docker-archive'] };
    },
    exitCode: 4,
    code: 'E_BAD_MANIFEST',
  },
  {
    name: 'manifest.json that is not a list',
    make: async ({ dir: d }) => {
      const root = join(d, 'docker');
      await dockerDir(root, [simpleLayer()]);
      await writeFile(join(root, 'manifest.json'), json({ Config: 'x', Layers: [] }));
      return { args: ['image', 'import', root, '--kind', 'docker-archive'] };
    },
    exitCode: 4,
    code: 'E_BAD_MANIFEST',
  },
  {
    name: 'a layer whose diff_id does not match',
    make: async ({ dir: d }) => {
      const root = join(d, 'docker');
      const { names } = await dockerDir(root, [simpleLayer()]);
      await writeFile(join(root, names[0]!), archive(dir('./'), file('./etc/hostname', 'changed\n')));
      return { args: ['image', 'import', root, '--kind', 'docker-archive'] };
    },
    exitCode: 4,
    code: 'E_DIGEST_MISMATCH',
  },
  {
    name: 'a docker save tar whose layer member is a symlink leaving the archive',
    make: async ({ dir: d }) => {
      const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
      const configName = `${sha(config)}.json`;
      const manifest = json([{ Config: configName, RepoTags: ['hostile:1'], Layers: ['abc/layer.tar'] }]);
      const tar = await writeTar(join(d, 'docker.tar'), archive(file('manifest.json', manifest), file(configName, config), dir('abc/'), symlinkMember('abc/layer.tar', '../../../../etc/passwd')));
      return { args: ['image', 'import', tar, '--kind', 'docker-archive'] };
    },
    exitCode: 4,
    code: ['E_MISSING_BLOB', 'E_BAD_MANIFEST'],
  },
]);

export const OCI_CASES: HostileCase[] = [...oci, ...docker];
