import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTar, type TarWriteEntry } from '../../src/core/export/tar-writer.js';
import { detectArchiveKind, dockerArchiveSource, ociSource, readDockerArchive, readOciImage, type OciReadOptions } from '../../src/core/import/oci-reader.js';
import type { SourceEntry, StoredBlob } from '../../src/core/import/source.js';
import { isHole, type ContentChunk } from '../../src/core/model/sparse.js';
import { tempDir } from '../helpers/tmp.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('aim-oci-'));
});
afterAll(async () => {
  await cleanup();
});

// ---- fixtures -------------------------------------------------------------------------------

const T = 1_700_000_000;
const meta = { mode: 0o644, uid: 0, gid: 0, mtime: T };
const d = (name: string, extra: Partial<TarWriteEntry> = {}): TarWriteEntry => ({ ...meta, mode: 0o755, name: Buffer.from(name), type: 'dir', ...extra });
const f = (name: string, text: string, extra: Partial<TarWriteEntry> = {}): TarWriteEntry => ({
  ...meta,
  name: Buffer.from(name),
  type: 'file',
  size: Buffer.byteLength(text),
  content: [Buffer.from(text)] as unknown as AsyncIterable<Buffer>,
  ...extra,
});
const hl = (name: string, target: string): TarWriteEntry => ({ ...meta, name: Buffer.from(name), type: 'hardlink', linkName: Buffer.from(target) });
const sl = (name: string, target: string): TarWriteEntry => ({ ...meta, mode: 0o777, name: Buffer.from(name), type: 'symlink', linkName: Buffer.from(target) });

async function tarBytes(entries: TarWriteEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(Buffer.from(c));
      cb();
    },
  });
  await writeTar(
    entries.map((e) => ({ ...e, content: e.content ? (async function* () { yield* e.content as unknown as Buffer[]; })() : undefined })),
    out,
  );
  return Buffer.concat(chunks);
}

interface Layer {
  blob: Buffer;
  diffId: string;
  mediaType: string;
}

async function layer(entries: TarWriteEntry[], compression: 'none' | 'gzip' | 'zstd'): Promise<Layer> {
  const tar = await tarBytes(entries);
  const diffId = `sha256:${sha(tar)}`;
  if (compression === 'gzip') return { blob: gzipSync(tar), diffId, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  if (compression === 'zstd') {
    const { stdout } = await execa('zstd', ['-c', '-q'], { input: tar, encoding: 'buffer' });
    return { blob: Buffer.from(stdout as Uint8Array), diffId, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' };
  }
  return { blob: tar, diffId, mediaType: 'application/vnd.oci.image.layer.v1.tar' };
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

function putBlob(layout: string, data: Buffer, mediaType: string): Descriptor {
  const hex = sha(data);
  writeFileSync(join(layout, 'blobs', 'sha256', hex), data);
  return { mediaType, digest: `sha256:${hex}`, size: data.length };
}

/** An image manifest (with config) in the layout; returns its descriptor. */
function putImage(layout: string, layers: Layer[], platform = { os: 'linux', architecture: 'amd64' }): Descriptor {
  const config = putBlob(
    layout,
    Buffer.from(JSON.stringify({ ...platform, config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } })),
    'application/vnd.oci.image.config.v1+json',
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config,
    layers: layers.map((l) => putBlob(layout, l.blob, l.mediaType)),
  };
  return putBlob(layout, Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
}

async function newLayout(name: string): Promise<string> {
  const layout = join(dir, name);
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return layout;
}

function writeIndex(layout: string, manifests: Descriptor[]): void {
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
}

const withRef = (desc: Descriptor, ref: string): Descriptor => ({ ...desc, annotations: { 'org.opencontainers.image.ref.name': ref } });

/** storeBlob into memory, keyed by sha256. */
function memoryStore() {
  const blobs = new Map<string, Buffer>();
  const storeBlob = async (content: AsyncIterable<ContentChunk> | NodeJS.ReadableStream): Promise<StoredBlob> => {
    const chunks: Buffer[] = [];
    for await (const c of content as AsyncIterable<ContentChunk>) chunks.push(isHole(c) ? Buffer.alloc(c.hole) : Buffer.from(c));
    const data = Buffer.concat(chunks);
    const hash = sha(data);
    blobs.set(hash, data);
    return { hash, size: data.length };
  };
  return { blobs, storeBlob };
}

async function readImage(source: AsyncIterable<SourceEntry>, blobs: Map<string, Buffer>) {
  const out = new Map<string, { type: string; mode: number; uid: number; mtimeNsec?: number; text?: string; link?: string; blob?: string; dev?: number[]; xattrs?: Record<string, string> }>();
  for await (const e of source) {
    const name = e.name.toString('latin1');
    expect(out.has(name)).toBe(false);
    expect(e.content).toBeUndefined();
    const v: ReturnType<typeof out.get> & object = { type: e.type, mode: e.mode, uid: e.uid };
    if (e.mtimeNsec) v.mtimeNsec = e.mtimeNsec;
    if (e.blob) {
      v.blob = e.blob.hash;
      v.text = blobs.get(e.blob.hash)!.toString('latin1');
      expect(e.blob.size).toBe(blobs.get(e.blob.hash)!.length);
    }
    if (e.linkName) v.link = e.linkName.toString('latin1');
    if (e.type === 'char') v.dev = [e.devMajor!, e.devMinor!];
    if (e.xattrs) v.xattrs = Object.fromEntries(Object.entries(e.xattrs).map(([k, x]) => [k, x.toString('hex')]));
    out.set(name, v);
  }
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? `no code: ${String(e)}`;
  }
  return 'no error';
}

const drain = async (s: AsyncIterable<unknown>) => {
  for await (const _ of s) void _;
};

const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex');

/** Three layers: gzip, zstd, uncompressed, exercising whiteouts, opaque dirs and hardlinks. */
async function layeredImage(): Promise<Layer[]> {
  const l1 = await layer(
    [
      d('./'),
      d('./etc/'),
      f('./etc/keep', 'old\n'),
      d('./del/'),
      f('./del/a', 'a'),
      d('./del/sub/'),
      f('./del/sub/b', 'b'),
      d('./opq/', { mode: 0o700 }),
      f('./opq/x', 'x'),
      f('./opq/y', 'y'),
      d('./bin/'),
      f('./bin/tool', 'tool', { mode: 0o4755 }),
      hl('./bin/tool-link', './bin/tool'),
      d('./lib/'),
      f('./lib/orig', 'shared'),
      hl('./lib/alias', './lib/orig'),
      { ...meta, name: Buffer.from('./dev/null'), type: 'char', mode: 0o666, devMajor: 1, devMinor: 3 },
      { ...meta, name: Buffer.from('./fifo'), type: 'fifo' },
      sl('./etc/link', '../lib/orig'),
      f('./gone', 'to be removed'),
    ],
    'gzip',
  );
  const l2 = await layer(
    [
      f('./.wh.del', ''),
      d('./opq/', { mode: 0o750 }),
      f('./opq/.wh..wh..opq', ''),
      f('./opq/z', 'z'),
      f('./lib/.wh.orig', ''),
      f('./etc/keep', 'new\n'),
      f('./etc/new', 'capable', { uid: 7, mtimeNsec: 123456789, xattrs: { 'security.capability': CAP } }),
      f('./.wh.gone', ''),
    ],
    'zstd',
  );
  const l3 = await layer([hl('bin/again', 'etc/new'), d('del/'), f('del/fresh', 'fresh'), f('.wh..wh.plnk', '')], 'none');
  return [l1, l2, l3];
}

// ---- tests ----------------------------------------------------------------------------------

describe('OCI layout: applying layers', () => {
  let layout: string;
  let expected: Awaited<ReturnType<typeof readImage>>;

  beforeAll(async () => {
    layout = await newLayout('layered');
    writeIndex(layout, [withRef(putImage(layout, await layeredImage()), 'v1')]);
  });

  it('flattens gzip, zstd and plain layers honouring whiteouts, opaque dirs and hardlinks', async () => {
    const { blobs, storeBlob } = memoryStore();
    const img = await readImage(ociSource.read(layout, { storeBlob }), blobs);
    expected = img;
    expect([...img.keys()]).toEqual([
      '',
      'bin',
      'bin/again',
      'bin/tool',
      'bin/tool-link',
      'del',
      'del/fresh',
      'dev',
      'dev/null',
      'etc',
      'etc/keep',
      'etc/link',
      'etc/new',
      'fifo',
      'lib',
      'lib/alias',
      'opq',
      'opq/z',
    ]);
    expect(img.get('etc/keep')).toMatchObject({ type: 'file', text: 'new\n' });
    expect(img.get('opq')).toMatchObject({ type: 'dir', mode: 0o750 });
    // the hardlink whose target was removed by a later layer becomes the file, same content
    expect(img.get('lib/alias')).toMatchObject({ type: 'file', text: 'shared', blob: sha(Buffer.from('shared')) });
    expect(img.get('bin/tool')).toMatchObject({ type: 'file', mode: 0o4755, text: 'tool' });
    expect(img.get('bin/tool-link')).toMatchObject({ type: 'hardlink', link: 'bin/tool', mode: 0o4755 });
    // a hardlink to a lower layer's file: the first path in order is the file, the other links to it
    expect(img.get('bin/again')).toMatchObject({ type: 'file', text: 'capable', uid: 7, mtimeNsec: 123456789, xattrs: { 'security.capability': CAP.toString('hex') } });
    expect(img.get('etc/new')).toMatchObject({ type: 'hardlink', link: 'bin/again' });
    expect(img.get('dev/null')).toMatchObject({ type: 'char', dev: [1, 3], mode: 0o666 });
    expect(img.get('etc/link')).toMatchObject({ type: 'symlink', link: '../lib/orig' });
    expect([...img.keys()].some((k) => k.includes('.wh.'))).toBe(false);
  });

  it('reads the same image from the layout packed in a tar, read by member offsets', async () => {
    const packed = join(dir, 'layered.tar');
    await execa('tar', ['-C', layout, '-cf', packed, '.']);
    expect(await detectArchiveKind(packed)).toBe('oci');
    expect(await detectArchiveKind(layout)).toBe('oci');
    const { blobs, storeBlob } = memoryStore();
    expect(await readImage(ociSource.read(packed, { storeBlob }), blobs)).toEqual(expected);
  });

  it('a layer blob that does not match its digest is E_DIGEST_MISMATCH', async () => {
    const bad = await newLayout('tampered');
    const layers = await layeredImage();
    writeIndex(bad, [putImage(bad, layers)]);
    const blobPath = join(bad, 'blobs', 'sha256', sha(layers[2]!.blob));
    const bytes = readFileSync(blobPath);
    bytes[600] = bytes[600]! ^ 1;
    writeFileSync(blobPath, bytes);
    const { storeBlob } = memoryStore();
    await expect(drain(ociSource.read(bad, { storeBlob }))).rejects.toMatchObject({ code: 'E_DIGEST_MISMATCH', message: expect.stringContaining(sha(layers[2]!.blob)) });
    await rm(blobPath);
    expect(await codeOf(drain(ociSource.read(bad, { storeBlob })))).toBe('E_MISSING_BLOB');
  });

  it('refuses a compressed outer archive and a hardlink to nothing', async () => {
    const gz = join(dir, 'layered.tar.gz');
    writeFileSync(gz, gzipSync(readFileSync(join(dir, 'layered.tar'))));
    const { storeBlob } = memoryStore();
    expect(await codeOf(drain(ociSource.read(gz, { storeBlob })))).toBe('E_COMPRESSED_ARCHIVE');
    expect(await detectArchiveKind(gz)).toBe('oci');
    const broken = await newLayout('broken');
    writeIndex(broken, [putImage(broken, [await layer([f('a', 'a'), hl('b', 'missing')], 'none')])]);
    expect(await codeOf(drain(ociSource.read(broken, { storeBlob })))).toBe('E_BAD_HARDLINK');
  });
});

describe('OCI layout: choosing the image', () => {
  let layout: string;
  let amd: Descriptor;
  let arm: Descriptor;

  beforeAll(async () => {
    layout = await newLayout('multi');
    amd = putImage(layout, [await layer([f('which', 'amd64')], 'gzip')], { os: 'linux', architecture: 'amd64' });
    arm = putImage(layout, [await layer([f('which', 'arm64')], 'gzip')], { os: 'linux', architecture: 'arm64', variant: 'v8' } as never);
  });

  const which = async (options: OciReadOptions) => {
    const { blobs, storeBlob } = memoryStore();
    return (await readImage(ociSource.read(layout, { ...options, storeBlob }), blobs)).get('which')?.text;
  };

  it('picks linux/amd64 by default and the asked platform otherwise', async () => {
    writeIndex(layout, [
      { ...arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { ...amd, platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    expect(await which({})).toBe('amd64');
    expect(await which({ platform: 'linux/arm64' })).toBe('arm64');
    expect(await which({ platform: 'linux/arm64/v8' })).toBe('arm64');
    expect(await codeOf(which({ platform: 'linux/s390x' }))).toBe('E_IMAGE_NOT_FOUND');
  });

  it('follows a nested image index and reads platforms from configs when descriptors lack them', async () => {
    const nested = putBlob(
      layout,
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [arm, amd] })),
      'application/vnd.oci.image.index.v1+json',
    );
    writeIndex(layout, [withRef(nested, 'multi:1')]);
    expect(await which({})).toBe('amd64');
    expect(await which({ ref: 'multi:1', platform: 'linux/arm64' })).toBe('arm64');
  });

  it('is a clear error when several images fit, and a ref chooses', async () => {
    writeIndex(layout, [withRef(amd, 'first'), withRef(putImage(layout, [await layer([f('which', 'second')], 'none')]), 'second')]);
    await expect(which({})).rejects.toMatchObject({ code: 'E_AMBIGUOUS_IMAGE', message: expect.stringMatching(/first \(linux\/amd64\).*second \(linux\/amd64\)/) });
    expect(await which({ ref: 'second' })).toBe('second');
    expect(await which({ ref: 'first' })).toBe('amd64');
    expect(await codeOf(which({ ref: 'third' }))).toBe('E_IMAGE_NOT_FOUND');
  });
});

describe('archives written by skopeo and umoci', () => {
  let layout: string;

  beforeAll(async () => {
    layout = await newLayout('for-skopeo');
    const layers = await layeredImage();
    // docker-archive needs layers it can decompress to plain tars; use the gzip and plain ones
    const top = await layer([d('del/'), f('del/fresh', 'fresh'), hl('del/tool', 'bin/tool')], 'none');
    writeIndex(layout, [withRef(putImage(layout, [layers[0]!, top]), 't1')]);
  });

  it('reads skopeo docker-archive and oci-archive output to the same tree as the layout', async () => {
    const { blobs, storeBlob } = memoryStore();
    const fromLayout = await readImage(ociSource.read(layout, { storeBlob }), blobs);
    expect(fromLayout.get('del/fresh')).toMatchObject({ text: 'fresh' });
    expect(fromLayout.get('del/a')).toMatchObject({ text: 'a' });
    expect(fromLayout.get('del/tool')).toMatchObject({ type: 'hardlink', link: 'bin/tool' });

    const docker = join(dir, 'skopeo-docker.tar');
    await execa('skopeo', ['--insecure-policy', 'copy', `oci:${layout}:t1`, `docker-archive:${docker}:example/app:1`]);
    expect(await detectArchiveKind(docker)).toBe('docker-archive');
    expect(await readImage(dockerArchiveSource.read(docker, { storeBlob }), blobs)).toEqual(fromLayout);
    expect(await readImage(readDockerArchive(docker, { storeBlob, ref: 'example/app:1' }), blobs)).toEqual(fromLayout);
    expect(await codeOf(drain(readDockerArchive(docker, { storeBlob, ref: 'other:2' })))).toBe('E_IMAGE_NOT_FOUND');

    const ociArchive = join(dir, 'skopeo-oci.tar');
    await execa('skopeo', ['--insecure-policy', 'copy', `oci:${layout}:t1`, `oci-archive:${ociArchive}:t1`]);
    expect(await detectArchiveKind(ociArchive)).toBe('oci');
    expect(await readImage(ociSource.read(ociArchive, { storeBlob }), blobs)).toEqual(fromLayout);
  });

  it('applies the whiteouts umoci writes for deleted files and directories', async () => {
    const L = join(dir, 'umoci-layout');
    const bundle = join(dir, 'bundle');
    await execa('umoci', ['init', '--layout', L]);
    await execa('umoci', ['new', '--image', `${L}:t`]);
    await execa('umoci', ['unpack', '--image', `${L}:t`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    await mkdir(join(rootfs, 'srv', 'sub'), { recursive: true });
    await writeFile(join(rootfs, 'srv', 'sub', 'deep'), 'deep');
    await writeFile(join(rootfs, 'srv', 'keep'), 'keep');
    await writeFile(join(rootfs, 'drop'), 'drop');
    await symlink('srv/keep', join(rootfs, 'to-keep'));
    await execa('umoci', ['repack', '--image', `${L}:t`, bundle]);
    // a fresh unpack of the new image, so the next repack is a second layer on top of it
    const bundle2 = join(dir, 'bundle2');
    await execa('umoci', ['unpack', '--image', `${L}:t`, bundle2]);
    const rootfs2 = join(bundle2, 'rootfs');
    await rm(join(rootfs2, 'srv', 'sub'), { recursive: true });
    await rm(join(rootfs2, 'drop'));
    await writeFile(join(rootfs2, 'srv', 'added'), 'added');
    await execa('umoci', ['repack', '--image', `${L}:t`, bundle2]);
    const members = async (blob: string) => (await execa('tar', ['-tzf', blob])).stdout.split('\n');
    const layerNames = await Promise.all(
      (await readdir(join(L, 'blobs', 'sha256'))).map(async (b) => members(join(L, 'blobs', 'sha256', b)).catch(() => [] as string[])),
    );
    expect(layerNames.flat()).toEqual(expect.arrayContaining(['.wh.drop', 'srv/.wh.sub']));

    const { blobs, storeBlob } = memoryStore();
    const img = await readImage(readOciImage(L, { storeBlob, ref: 't' }), blobs);
    const names = [...img.keys()].filter((n) => n !== '');
    const onDisk = (await readdir(rootfs2, { recursive: true })).sort();
    expect(names.sort()).toEqual(onDisk);
    expect(img.get('srv/added')).toMatchObject({ type: 'file', text: 'added' });
    expect(img.get('to-keep')).toMatchObject({ type: 'symlink', link: 'srv/keep' });
    expect(img.has('drop')).toBe(false);
    expect(img.has('srv/sub')).toBe(false);
  });
});

describe('docker save archives (legacy layout)', () => {
  async function legacyArchive(name: string, tamper = false): Promise<string> {
    const root = join(dir, name);
    const l1 = await tarBytes([d('etc/'), f('etc/os-release', 'ID=test\n'), f('tmpfile', 'x')]);
    const l2 = await tarBytes([f('.wh.tmpfile', ''), f('etc/motd', 'hi\n')]);
    const id1 = sha(Buffer.from('layer1'));
    const id2 = sha(Buffer.from('layer2'));
    const id3 = sha(Buffer.from('layer3'));
    for (const [id, bytes] of [[id1, l1], [id2, l2]] as const) {
      await mkdir(join(root, id), { recursive: true });
      writeFileSync(join(root, id, 'layer.tar'), bytes);
      writeFileSync(join(root, id, 'VERSION'), '1.0');
      writeFileSync(join(root, id, 'json'), '{}');
    }
    // docker save writes a repeated layer once and links to it
    await mkdir(join(root, id3));
    await symlink(`../${id1}/layer.tar`, join(root, id3, 'layer.tar'));
    const diffIds = [l1, l2, l1].map((b) => `sha256:${sha(b)}`);
    if (tamper) diffIds[1] = `sha256:${sha(Buffer.from('something else'))}`;
    const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: diffIds } }));
    writeFileSync(join(root, `${sha(config)}.json`), config);
    writeFileSync(
      join(root, 'manifest.json'),
      JSON.stringify([{ Config: `${sha(config)}.json`, RepoTags: ['docker.io/library/legacy:1'], Layers: [`${id1}/layer.tar`, `${id2}/layer.tar`, `${id3}/layer.tar`] }]),
    );
    writeFileSync(join(root, 'repositories'), '{}');
    const out = join(dir, `${name}.tar`);
    await execa('tar', ['-C', root, '-cf', out, '.']);
    return out;
  }

  it('reads layer.tar members (symlinked duplicates too) and verifies diff_ids', async () => {
    const archive = await legacyArchive('legacy');
    expect(await detectArchiveKind(archive)).toBe('docker-archive');
    const { blobs, storeBlob } = memoryStore();
    const img = await readImage(dockerArchiveSource.read(archive, { storeBlob, ref: 'legacy:1' } as OciReadOptions), blobs);
    expect([...img.keys()]).toEqual(['etc', 'etc/motd', 'etc/os-release', 'tmpfile']);
    expect(img.get('tmpfile')).toMatchObject({ text: 'x' }); // re-added by the repeated first layer
    const tampered = await legacyArchive('legacy-bad', true);
    expect(await codeOf(drain(dockerArchiveSource.read(tampered, { storeBlob })))).toBe('E_DIGEST_MISMATCH');
    expect(await codeOf(drain(ociSource.read(archive, { storeBlob })))).toBe('E_NOT_OCI_LAYOUT');
  });

  it('detects a plain root filesystem tar as tar without reading it all', async () => {
    const root = join(dir, 'rootfs');
    await mkdir(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc', 'hostname'), 'x\n');
    writeFileSync(join(root, 'manifest.json'), '[]'); // a stray name must not fool it
    const out = join(dir, 'rootfs.tar');
    await execa('tar', ['-C', root, '-cf', out, './etc', './manifest.json']);
    expect(await detectArchiveKind(out)).toBe('tar');
    const zst = join(dir, 'rootfs.tar.zst');
    await execa('zstd', ['-q', '-o', zst, out]);
    expect(await detectArchiveKind(zst)).toBe('tar');
  });
});
