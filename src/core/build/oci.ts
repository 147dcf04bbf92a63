import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, InputError, throwIfCancelled } from '../../lib/errors.js';
import { tarEntries } from '../export/export-image.js';
import { writeTar } from '../export/tar-writer.js';
import type { Entry } from '../model/entry.js';
import { readEntrypoint } from '../slim/entrypoint.js';
import { writeGzipLayer, writeJsonBlob, type OciDescriptor } from './oci-blobs.js';
import { architectureFromElf, hostArchitecture, imageConfig } from './oci-config.js';
import type { FormatBuilder } from './types.js';

const WHITEOUT_PREFIX = '.wh.';
/** The grammar of org.opencontainers.image.ref.name (image-spec annotations.md). */
const REF_NAME = /^[A-Za-z0-9]+(?:(?:[._-]|__|[:/@+])?[A-Za-z0-9]+)*$/;

/**
 * In an OCI layer a name beginning with ".wh." is a whiteout (it deletes a path of the layers
 * below), so such a file cannot be carried by a layer: readers would drop it and delete another.
 */
export function refuseWhiteoutNames(entries: Entry[]): void {
  const bad = entries.filter((e) => e.path.slice(e.path.lastIndexOf('/') + 1).startsWith(WHITEOUT_PREFIX));
  if (bad.length === 0) return;
  throw new InputError(
    'E_OCI_WHITEOUT_NAME',
    `${bad[0]!.path} cannot be put in an OCI layer: names beginning with ".wh." are whiteouts there${bad.length > 1 ? ` (${bad.length} such paths)` : ''}`,
    { hint: 'rename or drop those files (aim slim --drop), or build --format tar, which keeps any name' },
  );
}

export function checkRefName(ref: string): void {
  if (!REF_NAME.test(ref)) {
    throw new ConfigError(`--ref "${ref}" is not a valid OCI reference name`, { hint: 'use letters, digits and . _ - : / @ + between them, e.g. "1.0" or "nginx:slim"' });
  }
}

/**
 * An OCI image layout (oci-layout, index.json, blobs/sha256) holding the image as one gzip layer.
 * Reproducible: the tar comes from the deterministic tar writer, gzip has a fixed header, the
 * config's times are fixed, so the same image gives the same digests.
 */
export const buildOci: FormatBuilder = async ({ repo, request, entries, reporter, signal }) => {
  refuseWhiteoutNames(entries);
  const ref = request.ref ?? 'latest';
  checkRefName(ref);
  const members = tarEntries(entries, repo.blobs); // the manifest is checked before anything is written
  const elf = await repo.catalog.elfFacts([...new Set(entries.filter((e) => e.blob).map((e) => e.blob!))]);
  let architecture = architectureFromElf(entries, elf);
  if (!architecture) {
    architecture = hostArchitecture();
    reporter.emit({ type: 'warn', code: 'W_OCI_ARCH_GUESSED', message: `no ELF executables in the image: platform set to linux/${architecture} (this machine's)` });
  }
  const entrypoint = request.entrypoint ?? (await readEntrypoint(repo, request.imageId));
  const layout = request.outDir;
  const total = entries.reduce((n, e) => n + (e.type === 'file' ? (e.size ?? 0) : 0), 0);

  const { descriptor: layer, diffId } = await writeGzipLayer(
    layout,
    (out) => writeTar(members, out),
    (done) => reporter.emit({ type: 'progress', stage: 'oci layer', done, total, unit: 'bytes' }),
    signal,
  );
  throwIfCancelled(signal);
  const config = await writeJsonBlob(
    layout,
    'application/vnd.oci.image.config.v1+json',
    imageConfig({ architecture, diffId, imageId: request.imageId, entrypoint }),
  );
  const manifest = await writeJsonBlob(layout, 'application/vnd.oci.image.manifest.v1+json', {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config,
    layers: [layer],
  });
  const listed: OciDescriptor = { ...manifest, annotations: { 'org.opencontainers.image.ref.name': ref }, platform: { architecture, os: 'linux' } };
  const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [listed] };
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  const blob = (d: OciDescriptor) => join(layout, 'blobs', 'sha256', d.digest.slice('sha256:'.length));
  return [
    { path: join(layout, 'index.json'), kind: `OCI index (ref ${ref}, linux/${architecture})` },
    { path: join(layout, 'oci-layout'), kind: 'OCI layout marker' },
    { path: blob(manifest), kind: 'OCI manifest' },
    { path: blob(config), kind: 'OCI config' },
    { path: blob(layer), kind: 'OCI layer (tar+gzip)' },
  ];
};
