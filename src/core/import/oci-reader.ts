import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, createReadStream, fstatSync, lstatSync, openSync } from 'node:fs';
import { lstat, open, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { InputError, NotFoundError, InternalError, errnoCode } from '../../lib/errors.js';
import { encodePath } from '../../lib/path-codec.js';
import { detectFormat, openDecompressed } from './decompress.js';
import type { Source, SourceEntry, SourceReadOptions, SourceReader, StoredBlob } from './source.js';
import { endOfInput, indexTarFile, readTar, type TarMember } from './tar-reader.js';

/**
 * Container images as sources: an OCI image layout (a directory, or packed in an uncompressed tar
 * as `skopeo copy … oci-archive:` writes it) and `docker save` archives (legacy `<id>/layer.tar`
 * members, or the OCI-style blobs of Docker 25+). The image's layers are applied in order with
 * whiteouts honoured; since the final tree is known only after the last layer, file contents are
 * stored through `options.storeBlob` as they are read and the final entries carry `blob`.
 */

export interface OciReadOptions extends SourceReadOptions {
  /**
   * Which image, when the layout or archive holds several: an `org.opencontainers.image.ref.name`
   * or `io.containerd.image.name` annotation, or a docker RepoTags entry ("nginx:1.25"; a
   * "docker.io/library/" style prefix of the stored name may be left out).
   */
  ref?: string;
  /** Which platform of a multi-platform image: "os/arch" or "os/arch/variant" (default: linux/amd64). */
  platform?: string;
}

export type ArchiveKind = 'tar' | 'oci' | 'docker-archive' | 'dir';

// ---------------------------------------------------------------------------------------------
// Where the layout's files are: a directory, or members of an uncompressed tar.

interface Located {
  file: string;
  start: number;
  length: number;
  label: string;
}

interface Container {
  label: string;
  locate(name: string): Promise<Located | undefined>;
  /** Releases what the container holds open. */
  close(): void;
  /** Budget of JSON bytes read from this container (see readJson). */
  jsonBytes: number;
  /** Blobs whose digest was checked, and JSON documents parsed, by digest: each is read once. */
  verified?: Map<string, Located>;
  parsed?: Map<string, unknown>;
}

/** "./blobs//sha256/x" → "blobs/sha256/x"; undefined for names leaving the root. */
function normalizeMember(name: string): string | undefined {
  const n = posix.normalize('/' + name).slice(1).replace(/\/$/, '');
  if (n.split('/').includes('..')) return undefined;
  return n;
}

const O_DIR = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
const O_MEMBER = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;

/**
 * An OCI layout or docker save archive unpacked in a directory. Its members (index.json,
 * manifest.json, blobs, layer tars) are never symlinks and nothing in them is followed: each name
 * is resolved component by component inside directories held open (through /proc/self/fd, an
 * openat) with O_NOFOLLOW. A located member stays open, and is read through its descriptor
 * (/proc/self/fd/N), so what was checked is what is read.
 */
function directoryContainer(dir: string): Container {
  let rootFd: number;
  try {
    rootFd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${dir} does not exist`);
    throw e;
  }
  const held: number[] = [rootFd];
  const located = new Map<string, Located | undefined>();
  const openIn = (fd: number, name: string, flags: number, member: string): number | undefined => {
    try {
      return openSync(Buffer.from(`/proc/self/fd/${fd}/${name}`), flags);
    } catch (e) {
      const code = errnoCode(e);
      // O_DIRECTORY|O_NOFOLLOW on a symlink says ENOTDIR: tell a symlink from a missing directory.
      const link = code === 'ELOOP' || (code === 'ENOTDIR' && lstatSync(Buffer.from(`/proc/self/fd/${fd}/${name}`), { throwIfNoEntry: false })?.isSymbolicLink());
      if (!link && (code === 'ENOENT' || code === 'ENOTDIR')) return undefined;
      if (link) {
        throw new InputError('E_LAYOUT_SYMLINK', `${dir}: "${member}" is or goes through a symlink, which aim does not follow in an image layout`, {
          hint: 'copy the layout with real files (skopeo copy, or cp -L into a new directory)',
        });
      }
      throw e;
    }
  };
  return {
    label: dir,
    jsonBytes: 0,
    async locate(name) {
      const n = normalizeMember(name);
      if (n === undefined || n === '') return undefined;
      if (located.has(n)) return located.get(n);
      const parts = n.split('/');
      let fd = rootFd;
      let result: Located | undefined;
      try {
        for (const [i, part] of parts.entries()) {
          const last = i === parts.length - 1;
          const next = openIn(fd, part, last ? O_MEMBER : O_DIR, n);
          if (fd !== rootFd) closeSync(fd);
          fd = rootFd;
          if (next === undefined) break;
          fd = next;
          if (!last) continue;
          const st = fstatSync(next);
          if (st.isFile()) {
            held.push(next);
            result = { file: `/proc/self/fd/${next}`, start: 0, length: st.size, label: join(dir, n) };
          } else closeSync(next);
          fd = rootFd;
        }
      } finally {
        if (fd !== rootFd) closeSync(fd);
      }
      located.set(n, result);
      return result;
    },
    close() {
      for (const fd of held.splice(0)) closeSync(fd);
    },
  };
}

async function tarContainer(path: string): Promise<Container> {
  await requireUncompressedTar(path);
  const { members } = await indexTarFile(path);
  const byName = new Map<string, TarMember>();
  for (const m of members) {
    const n = normalizeMember(m.name.toString('latin1'));
    if (n !== undefined) byName.set(n, m);
  }
  const resolve = (name: string, depth: number): TarMember | undefined => {
    const m = byName.get(name);
    if (!m || depth > 16) return undefined;
    if (m.type === 'symlink' && m.linkName) {
      const target = normalizeMember(posix.join(posix.dirname(name), m.linkName.toString('latin1')));
      return target === undefined ? undefined : resolve(target, depth + 1);
    }
    if (m.type === 'hardlink' && m.linkName) {
      const target = normalizeMember(m.linkName.toString('latin1'));
      return target === undefined ? undefined : resolve(target, depth + 1);
    }
    // A sparse member's data is not its content: no layout writes blobs that way.
    return m.type === 'file' && !m.content ? m : undefined;
  };
  return {
    label: path,
    jsonBytes: 0,
    async locate(name) {
      const n = normalizeMember(name);
      const m = n === undefined ? undefined : resolve(n, 0);
      return m && { file: path, start: m.dataOffset, length: m.dataSize, label: `${path}:${n}` };
    },
    close() {},
  };
}

async function requireUncompressedTar(path: string): Promise<void> {
  const fh = await open(path, 'r').catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${path} does not exist`);
    throw e;
  });
  const head = Buffer.alloc(512);
  let n: number;
  try {
    n = (await fh.read(head, 0, 512, 0)).bytesRead;
  } finally {
    await fh.close();
  }
  if (n === 0) throw new InputError('E_EMPTY_INPUT', `${path} is empty`);
  const format = detectFormat(head.subarray(0, n));
  if (format === 'tar') return;
  if (format) {
    throw new InputError('E_COMPRESSED_ARCHIVE', `${path}: a ${format}-compressed image archive cannot be read in place`, {
      hint: `decompress it first (the archives docker save and skopeo write are uncompressed tars)`,
    });
  }
  throw new InputError('E_UNKNOWN_FORMAT', `${path}: not a tar archive (starts with ${head.subarray(0, 8).toString('hex')})`);
}

async function openContainer(path: string): Promise<Container> {
  const st = await stat(path).catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${path} does not exist`);
    throw e;
  });
  return st.isDirectory() ? directoryContainer(path) : tarContainer(path);
}

// ---------------------------------------------------------------------------------------------
// Blobs, digests, JSON

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

const MAX_JSON = 16 << 20;
/** JSON read from one layout or archive at most, all documents together. */
const MAX_JSON_TOTAL = 64 << 20;
/** Descriptors (index entries) visited at most while choosing the image. */
const MAX_DESCRIPTORS = 10_000;
/** Layers of one image at most (overlay filesystems stop at 128). */
const MAX_LAYERS = 1000;

function badManifest(label: string, what: string): InputError {
  return new InputError('E_BAD_MANIFEST', `${label}: ${what}`, { hint: 'the image layout or archive is malformed' });
}

function parseDigest(digest: unknown, label: string): { alg: 'sha256' | 'sha512'; hex: string } {
  const m = typeof digest === 'string' ? /^(sha256|sha512):([a-f0-9]+)$/.exec(digest) : null;
  if (!m || m[2]!.length !== (m[1] === 'sha256' ? 64 : 128)) throw badManifest(label, `invalid or unsupported digest ${JSON.stringify(digest)}`);
  return { alg: m[1] as 'sha256' | 'sha512', hex: m[2]! };
}

async function hashRange(at: Located, alg: string): Promise<string> {
  const h = createHash(alg);
  if (at.length > 0) {
    for await (const chunk of createReadStream(at.file, { start: at.start, end: at.start + at.length - 1, highWaterMark: 1 << 20 })) {
      h.update(chunk as Buffer);
    }
  }
  return h.digest('hex');
}

async function readRange(at: Located): Promise<Buffer> {
  const buf = Buffer.alloc(at.length);
  const fh = await open(at.file, 'r');
  try {
    const { bytesRead } = await fh.read(buf, 0, at.length, at.start);
    if (bytesRead !== at.length) throw new InputError('E_TRUNCATED', `${at.label}: file ends early`);
  } finally {
    await fh.close();
  }
  return buf;
}

function mismatch(label: string, what: string): InputError {
  return new InputError('E_DIGEST_MISMATCH', `${label}: ${what}`, {
    hint: 'the archive was modified or damaged after it was written; get a fresh copy',
  });
}

/** Locates a blob by digest and checks its size and digest. */
async function verifiedBlob(c: Container, desc: Descriptor, what: string): Promise<Located> {
  const { alg, hex } = parseDigest(desc.digest, `${c.label}: ${what}`);
  const known = c.verified?.get(desc.digest);
  if (known) {
    if (desc.size !== undefined && desc.size !== known.length) throw mismatch(known.label, `${what} ${desc.digest} is ${known.length} bytes, a descriptor says ${desc.size}`);
    return known;
  }
  const at = await c.locate(`blobs/${alg}/${hex}`);
  if (!at) {
    throw new InputError('E_MISSING_BLOB', `${c.label}: ${what} ${desc.digest} is not in the layout`, {
      hint: 'foreign or non-distributable layers must be pulled into the layout first (skopeo copy)',
    });
  }
  if (desc.size !== undefined && desc.size !== at.length) {
    throw mismatch(at.label, `${what} ${desc.digest} is ${at.length} bytes, the manifest says ${desc.size}`);
  }
  const actual = await hashRange(at, alg);
  if (actual !== hex) throw mismatch(at.label, `${what} has digest ${alg}:${actual}, the manifest says ${desc.digest}`);
  (c.verified ??= new Map()).set(desc.digest, at);
  return at;
}

/** A blob holding JSON, checked and parsed once per digest. */
async function jsonBlob(c: Container, desc: Descriptor, what: string): Promise<{ json: unknown; label: string }> {
  const at = await verifiedBlob(c, desc, what);
  const cache = (c.parsed ??= new Map());
  if (!cache.has(desc.digest)) cache.set(desc.digest, await readJson(c, at));
  return { json: cache.get(desc.digest), label: at.label };
}

/**
 * A JSON document of the layout. Its size is bounded (alone and with every other one read), and a
 * parse error never quotes the content: a layout is untrusted, and error messages are shown.
 */
async function readJson(c: Container, at: Located): Promise<unknown> {
  if (at.length > MAX_JSON) throw badManifest(at.label, `JSON document of ${at.length} bytes is too large`);
  c.jsonBytes += at.length;
  if (c.jsonBytes > MAX_JSON_TOTAL) throw badManifest(c.label, `its JSON documents add up to more than ${MAX_JSON_TOTAL} bytes`);
  const text = (await readRange(at)).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badManifest(at.label, 'not valid JSON');
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function asDescriptor(v: unknown, label: string): Descriptor {
  if (!isObject(v) || typeof v.digest !== 'string') throw badManifest(label, 'descriptor without a digest');
  if (v.size !== undefined && (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0)) {
    throw badManifest(label, `descriptor ${v.digest.slice(0, 80)} has an invalid size`);
  }
  if (v.mediaType !== undefined && typeof v.mediaType !== 'string') throw badManifest(label, 'descriptor with a non-string mediaType');
  return v as unknown as Descriptor;
}

// ---------------------------------------------------------------------------------------------
// Choosing the image

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX_TYPES = new Set([OCI_INDEX, 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set([OCI_MANIFEST, 'application/vnd.docker.distribution.manifest.v2+json']);

interface Candidate {
  desc: Descriptor;
  refs: string[];
  platform?: { os?: string; architecture?: string; variant?: string };
}

interface ImageManifest {
  config?: Descriptor;
  layers: Descriptor[];
}

function refsOf(d: Descriptor): string[] {
  const a = d.annotations ?? {};
  return [a['org.opencontainers.image.ref.name'], a['io.containerd.image.name']].filter((r): r is string => typeof r === 'string' && r !== '');
}

/** "nginx:1.25" matches "nginx:1.25" and "docker.io/library/nginx:1.25". */
function refMatches(stored: string, wanted: string): boolean {
  return stored === wanted || stored.endsWith('/' + wanted);
}

function parsePlatform(p: string): { os: string; architecture: string; variant?: string } {
  const [os, architecture, variant] = p.split('/');
  if (!os || !architecture) throw new InputError('E_BAD_PLATFORM', `platform "${p}" is not os/arch[/variant] (e.g. linux/amd64)`);
  return { os, architecture, variant };
}

const platformName = (p: Candidate['platform']) => (p ? [p.os ?? '?', p.architecture ?? '?', p.variant].filter(Boolean).join('/') : 'unknown platform');

/**
 * The images an index lists, through nested indexes. Each index is expanded once, however often
 * it is listed, and the walk stops at MAX_DESCRIPTORS: an index fanning out to itself or to
 * thousands of others cannot make it loop or run long.
 */
async function collectCandidates(
  c: Container,
  index: unknown,
  label: string,
  inherited: string[],
  depth: number,
  walk = { seen: new Set<string>(), descriptors: 0 },
): Promise<Candidate[]> {
  if (!isObject(index) || !Array.isArray(index.manifests)) throw badManifest(label, 'image index without a "manifests" list');
  const out: Candidate[] = [];
  for (const raw of index.manifests) {
    if (++walk.descriptors > MAX_DESCRIPTORS) throw badManifest(c.label, `its image indexes list more than ${MAX_DESCRIPTORS} descriptors`);
    const d = asDescriptor(raw, label);
    if (d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') continue;
    const refs = [...inherited, ...refsOf(d)];
    let type = d.mediaType;
    if (!type || (!INDEX_TYPES.has(type) && !MANIFEST_TYPES.has(type))) {
      if (type) continue; // artifacts, signatures: not images
      const { json } = await jsonBlob(c, d, 'manifest');
      type = isObject(json) && Array.isArray(json.manifests) ? OCI_INDEX : OCI_MANIFEST;
    }
    if (INDEX_TYPES.has(type)) {
      if (depth >= 4) throw badManifest(label, 'image indexes nested too deeply');
      if (walk.seen.has(d.digest)) continue; // its images are listed already
      walk.seen.add(d.digest);
      const nested = await jsonBlob(c, d, 'image index');
      out.push(...(await collectCandidates(c, nested.json, nested.label, refs, depth + 1, walk)));
    } else {
      if (d.platform?.os === 'unknown') continue;
      out.push({ desc: d, refs, platform: d.platform });
    }
  }
  return out;
}

async function loadManifest(c: Container, d: Descriptor): Promise<{ manifest: ImageManifest; label: string }> {
  const { json: m, label } = await jsonBlob(c, d, 'image manifest');
  if (!isObject(m) || !Array.isArray(m.layers)) throw badManifest(label, 'image manifest without a "layers" list');
  if (m.layers.length > MAX_LAYERS) throw badManifest(label, `the image has ${m.layers.length} layers, more than ${MAX_LAYERS}`);
  return {
    manifest: { config: m.config === undefined ? undefined : asDescriptor(m.config, label), layers: m.layers.map((l) => asDescriptor(l, label)) },
    label,
  };
}

async function platformOf(c: Container, cand: Candidate): Promise<Candidate['platform']> {
  if (cand.platform?.os && cand.platform.architecture) return cand.platform;
  const { manifest } = await loadManifest(c, cand.desc);
  if (!manifest.config) return undefined;
  const { json: cfg } = await jsonBlob(c, manifest.config, 'image config');
  if (!isObject(cfg)) return undefined;
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return { os: text(cfg.os), architecture: text(cfg.architecture), variant: text(cfg.variant) };
}

async function chooseImage(c: Container, options: OciReadOptions): Promise<Candidate> {
  const indexAt = await c.locate('index.json');
  if (!indexAt) {
    throw new InputError('E_NOT_OCI_LAYOUT', `${c.label}: no index.json, so not an OCI image layout`, {
      hint: (await c.locate('manifest.json')) ? 'this is a docker save archive: import it as docker-archive' : undefined,
    });
  }
  const all = await collectCandidates(c, await readJson(c, indexAt), indexAt.label, [], 0);
  // The same manifest listed twice (under two tags) is one image.
  const unique = (list: Candidate[]) => list.filter((x, i) => list.findIndex((o) => o.desc.digest === x.desc.digest) === i);
  const describe = async (list: Candidate[]) =>
    (await Promise.all(unique(list).map(async (x) => `${x.refs[0] ?? x.desc.digest.slice(0, 19)} (${platformName(await platformOf(c, x))})`))).join(', ');
  if (all.length === 0) throw new InputError('E_IMAGE_NOT_FOUND', `${c.label}: the layout holds no image`);
  const ref = options.ref;
  const picked = unique(ref ? all.filter((x) => x.refs.some((r) => refMatches(r, ref))) : all);
  if (picked.length === 0) throw new InputError('E_IMAGE_NOT_FOUND', `${c.label}: no image "${ref}"; it holds: ${await describe(all)}`);
  const wanted = options.platform ? parsePlatform(options.platform) : undefined;
  if (wanted || picked.length > 1) {
    const want = wanted ?? { os: 'linux', architecture: 'amd64', variant: undefined };
    const matching: Candidate[] = [];
    for (const x of picked) {
      const p = await platformOf(c, x);
      if (p?.os === want.os && p.architecture === want.architecture && (!want.variant || p.variant === want.variant)) matching.push(x);
    }
    if (matching.length === 1) return matching[0]!;
    if (wanted && matching.length === 0) {
      throw new InputError('E_IMAGE_NOT_FOUND', `${c.label}: no image for platform ${options.platform}; it holds: ${await describe(picked)}`);
    }
    throw new InputError('E_AMBIGUOUS_IMAGE', `${c.label} holds several images: ${await describe(matching.length > 1 ? matching : picked)}`, {
      hint: 'choose one with a ref (tag) and/or a platform such as linux/arm64',
    });
  }
  return picked[0]!;
}

// ---------------------------------------------------------------------------------------------
// Applying layers

interface Inode {
  entry: SourceEntry;
  blob: StoredBlob;
}

interface Node {
  /** Undefined for directories only implied by deeper paths. */
  entry?: SourceEntry;
  inode?: Inode;
  children?: Map<string, Node>;
  /** Layer markers: `.wh..wh..opq` and `.wh.<name>` seen in this directory of the layer. */
  opaque?: boolean;
  whiteouts?: Set<string>;
}

const isDir = (n: Node) => n.entry === undefined || n.entry.type === 'dir';

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** Layer member name → path components (bytes as latin1 strings, so each char is one byte). */
function components(name: Buffer, label: string): string[] {
  const parts: string[] = [];
  for (const p of name.toString('latin1').split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new InputError('E_PATH_TRAVERSAL', `${label}: layer entry "${encodePath(name)}" contains "..", which would escape the image`);
    if (p.includes('\0')) throw new InputError('E_BAD_NAME', `${label}: layer entry name contains a NUL byte`);
    parts.push(p);
  }
  return parts;
}

/**
 * The directory `name` of a layer being read, made when only implied. A layer is one tar: as in
 * ingest, nothing may lie below a non-directory of the same layer (in a lower layer it is simply
 * replaced).
 */
function dirChild(parent: Node, name: string, where: () => string): Node {
  parent.children ??= new Map();
  let n = parent.children.get(name);
  if (n && !isDir(n)) {
    const type = n.inode ? 'file' : n.entry!.type;
    throw new InputError(type === 'symlink' ? 'E_PATH_THROUGH_SYMLINK' : 'E_NOT_A_DIRECTORY', `${where()}, which the same layer lists as a ${type}`);
  }
  if (!n) {
    n = { children: new Map() };
    parent.children.set(name, n);
  }
  n.children ??= new Map();
  return n;
}

function lookup(root: Node, parts: string[]): Node | undefined {
  let n: Node | undefined = root;
  for (const p of parts) {
    n = n.children?.get(p);
    if (!n) return undefined;
  }
  return n;
}

/** True when a path of the lower tree is hidden by whiteouts of the current layer. */
function hiddenByLayer(upper: Node, parts: string[]): boolean {
  let n: Node | undefined = upper;
  for (const p of parts) {
    if (!n) return false;
    if (n.opaque || n.whiteouts?.has(p)) return true;
    n = n.children?.get(p);
  }
  return false;
}

function merge(lower: Node, upper: Node): void {
  lower.children ??= new Map();
  if (upper.opaque) lower.children.clear();
  for (const w of upper.whiteouts ?? []) lower.children.delete(w);
  if (upper.entry) lower.entry = upper.entry;
  for (const [name, u] of upper.children ?? []) {
    const l = lower.children.get(name);
    if (l && isDir(l) && isDir(u)) merge(l, u);
    else lower.children.set(name, u);
  }
  lower.opaque = undefined;
  lower.whiteouts = undefined;
}

interface LayerSource {
  at: Located;
  /** sha256 of the uncompressed tar, checked after reading (docker archives' diff_ids). */
  diffId?: string;
}

async function applyLayer(root: Node, layer: LayerSource, storeBlob: NonNullable<SourceReadOptions['storeBlob']>): Promise<void> {
  const label = layer.at.label;
  const d = await openDecompressed(layer.at.file, { start: layer.at.start, length: layer.at.length, label });
  const upper: Node = { children: new Map() };
  const diffHash = layer.diffId ? createHash('sha256') : undefined;
  let ok = false;
  try {
    const it = d.stream[Symbol.asyncIterator]();
    const input: AsyncIterable<Buffer> = diffHash
      ? {
          [Symbol.asyncIterator]: () => ({
            async next() {
              const r = await it.next();
              if (!r.done) diffHash.update(r.value as Buffer);
              return r;
            },
          }),
        }
      : { [Symbol.asyncIterator]: () => it };
    for await (const e of readTar(input, { label, inputSize: d.format === 'tar' ? d.rawSize : undefined })) {
      const parts = components(e.name, label);
      if (parts.length === 0) {
        if (e.type === 'dir') upper.entry = strip(e);
        continue;
      }
      const base = parts[parts.length - 1]!;
      let parent = upper;
      for (const [i, p] of parts.slice(0, -1).entries()) {
        parent = dirChild(parent, p, () => `${label}: layer entry "${encodePath(e.name)}" is below "${parts.slice(0, i + 1).join('/')}"`);
      }
      if (base.startsWith(WH)) {
        if (base === OPAQUE) parent.opaque = true;
        else if (!base.startsWith(WH + WH)) (parent.whiteouts ??= new Set()).add(base.slice(WH.length));
        continue; // other .wh..wh. names are aufs bookkeeping
      }
      parent.children ??= new Map();
      const existing = parent.children.get(base);
      if (e.type !== 'dir' && existing && isDir(existing) && (existing.children?.size || existing.whiteouts?.size || existing.opaque)) {
        const child = existing.children?.keys().next().value;
        throw new InputError(
          'E_CONFLICTING_ENTRIES',
          `${label}: layer entry "${encodePath(e.name)}" is a ${e.type} but the same layer lists ${child ? `"${encodePath(e.name)}/${child}"` : 'whiteouts'} below it as a directory`,
          { hint: 'the layer contradicts itself; rebuild the image' },
        );
      }
      let node: Node;
      switch (e.type) {
        case 'dir':
          if (existing && isDir(existing)) {
            existing.entry = strip(e);
            continue;
          }
          node = { entry: strip(e), children: new Map() };
          break;
        case 'file': {
          const blob = await storeBlob(e.content ?? noContent());
          if (e.size !== undefined && blob.size !== e.size) throw new InputError('E_SIZE_MISMATCH', `${label}: "${encodePath(e.name)}" declared ${e.size} bytes but has ${blob.size}`);
          const entry = strip(e);
          node = { entry, inode: { entry, blob } };
          break;
        }
        case 'hardlink': {
          const targetParts = components(e.linkName ?? Buffer.alloc(0), label);
          let target = lookup(upper, targetParts);
          if (!target?.entry && !hiddenByLayer(upper, targetParts)) target = lookup(root, targetParts);
          if (!target?.entry || target.entry.type === 'dir') {
            throw new InputError('E_BAD_HARDLINK', `${label}: hardlink "${encodePath(e.name)}" points at "${encodePath(e.linkName ?? Buffer.alloc(0))}", which is not a file of this or a lower layer`);
          }
          node = target.inode ? { entry: target.inode.entry, inode: target.inode } : { entry: { ...target.entry } };
          break;
        }
        default:
          node = { entry: strip(e) };
      }
      parent.children.set(base, node);
    }
    await endOfInput(d, input[Symbol.asyncIterator]());
    ok = true;
  } finally {
    if (!ok) d.close();
  }
  if (diffHash && layer.diffId) {
    const actual = `sha256:${diffHash.digest('hex')}`;
    if (actual !== layer.diffId) throw mismatch(label, `uncompressed layer has digest ${actual}, the image config says ${layer.diffId}`);
  }
  merge(root, upper);
}

async function* noContent(): AsyncGenerator<Buffer> {
  // a file entry without data
}

/** The entry without its stream and tar offsets. */
function strip(e: SourceEntry): SourceEntry {
  const out: SourceEntry = { name: e.name, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
  if (e.mtimeNsec) out.mtimeNsec = e.mtimeNsec;
  if (e.size !== undefined) out.size = e.size;
  if (e.linkName) out.linkName = e.linkName;
  if (e.devMajor !== undefined) out.devMajor = e.devMajor;
  if (e.devMinor !== undefined) out.devMinor = e.devMinor;
  if (e.xattrs) out.xattrs = e.xattrs;
  return out;
}

/** The final tree in path order; the first path of each inode is the file, the others hardlinks to it. */
function* emit(root: Node): Generator<SourceEntry> {
  const first = new Map<Inode, Buffer>();
  const implicitDir = (name: Buffer): SourceEntry => ({ name, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
  function* walk(node: Node, path: string): Generator<SourceEntry> {
    const name = Buffer.from(path, 'latin1');
    if (node.inode) {
      const seen = first.get(node.inode);
      const { blob, entry } = node.inode;
      if (seen) {
        yield { ...entry, name, type: 'hardlink', linkName: seen, size: undefined };
      } else {
        first.set(node.inode, name);
        yield { ...entry, name, type: 'file', size: blob.size, blob };
      }
      return;
    }
    if (path !== '' || node.entry) yield node.entry ? { ...node.entry, name } : implicitDir(name);
    if (!isDir(node) || !node.children) return;
    // latin1 strings compare char by char exactly as their bytes do
    const names = [...node.children.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const n of names) yield* walk(node.children.get(n)!, path === '' ? n : `${path}/${n}`);
  }
  yield* walk(root, '');
}

async function* applyLayers(layers: LayerSource[], options: SourceReadOptions): AsyncGenerator<SourceEntry> {
  if (!options.storeBlob) throw new InternalError('reading container images needs options.storeBlob (layers are flattened before entries are known)');
  const root: Node = { children: new Map() };
  let i = 0;
  for (const layer of layers) {
    options.reporter?.emit({ type: 'progress', stage: 'layers', done: i++, total: layers.length, unit: 'blobs' });
    await applyLayer(root, layer, options.storeBlob);
  }
  options.reporter?.emit({ type: 'progress', stage: 'layers', done: layers.length, total: layers.length, unit: 'blobs' });
  yield* emit(root);
}

const LAYER_TYPE = /(^|[./])(tar|rootfs\.diff\.tar)(\.gzip|\+gzip|\+zstd)?$/;

function checkLayerType(d: Descriptor, label: string): void {
  if (!d.mediaType) return;
  if (d.mediaType.includes('encrypted')) throw new InputError('E_UNSUPPORTED_LAYER', `${label}: layer ${d.digest} is encrypted (${d.mediaType})`);
  if (!LAYER_TYPE.test(d.mediaType)) throw new InputError('E_UNSUPPORTED_LAYER', `${label}: layer ${d.digest} has the unsupported media type ${d.mediaType}`);
}

// ---------------------------------------------------------------------------------------------
// Readers

/** Reads the chosen image of an OCI layout (directory or uncompressed tar) as its final tree. */
export async function* readOciImage(path: string, options: OciReadOptions = {}): AsyncGenerator<SourceEntry> {
  const c = await openContainer(path);
  try {
    const layoutAt = await c.locate('oci-layout');
    if (layoutAt) {
      const layout = await readJson(c, layoutAt);
      if (!isObject(layout) || typeof layout.imageLayoutVersion !== 'string') throw badManifest(layoutAt.label, 'oci-layout has no imageLayoutVersion');
    }
    const chosen = await chooseImage(c, options);
    const { manifest, label } = await loadManifest(c, chosen.desc);
    // The config is part of the image: its digest holds even when nothing else needs it.
    if (manifest.config) await verifiedBlob(c, manifest.config, 'image config');
    const layers: LayerSource[] = [];
    for (const l of manifest.layers) {
      checkLayerType(l, label);
      layers.push({ at: await verifiedBlob(c, l, 'layer') });
    }
    yield* applyLayers(layers, options);
  } finally {
    c.close();
  }
}

interface DockerManifestItem {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** Reads the chosen image of a `docker save` archive (or such an archive unpacked in a directory). */
export async function* readDockerArchive(path: string, options: OciReadOptions = {}): AsyncGenerator<SourceEntry> {
  const c = await openContainer(path);
  try {
    const manifestAt = await c.locate('manifest.json');
    if (!manifestAt) {
      throw new InputError('E_NOT_DOCKER_ARCHIVE', `${c.label}: no manifest.json, so not a docker save archive`, {
        hint: (await c.locate('index.json')) ? 'this is an OCI image layout: import it as oci' : undefined,
      });
    }
    const items = await readJson(c, manifestAt);
    if (!Array.isArray(items) || items.some((x) => !isObject(x) || typeof x.Config !== 'string' || !Array.isArray(x.Layers) || x.Layers.some((l) => typeof l !== 'string'))) {
      throw badManifest(manifestAt.label, 'expected a list of {Config, RepoTags, Layers}');
    }
    let picked = items as DockerManifestItem[];
    const tags = (x: DockerManifestItem) => x.RepoTags ?? [];
    if (options.ref) {
      picked = picked.filter((x) => tags(x).some((t) => refMatches(t, options.ref!)));
      if (picked.length === 0) throw new InputError('E_IMAGE_NOT_FOUND', `${c.label}: no image "${options.ref}"; it holds: ${(items as DockerManifestItem[]).map((x) => tags(x).join(' ') || x.Config).join(', ')}`);
    }
    if (picked.length === 0) throw new InputError('E_IMAGE_NOT_FOUND', `${c.label}: the archive holds no image`);
    if (picked.length > 1) {
      throw new InputError('E_AMBIGUOUS_IMAGE', `${c.label} holds several images: ${picked.map((x) => tags(x).join(' ') || x.Config).join(', ')}`, {
        hint: 'choose one with a ref (repository:tag)',
      });
    }
    const item = picked[0]!;
    if (item.Layers.length > MAX_LAYERS) throw badManifest(manifestAt.label, `the image has ${item.Layers.length} layers, more than ${MAX_LAYERS}`);
    const digestIn = (name: string) => /(?:^|\/)(?:blobs\/sha256\/)?([a-f0-9]{64})(?:\.json|\.tar)?$/.exec(name)?.[1];
    const configAt = await c.locate(item.Config);
    if (!configAt) throw new InputError('E_MISSING_BLOB', `${c.label}: image config ${item.Config} is missing`);
    const configDigest = digestIn(item.Config);
    if (configDigest && (await hashRange(configAt, 'sha256')) !== configDigest) throw mismatch(configAt.label, `image config does not match its digest ${configDigest}`);
    const config = await readJson(c, configAt);
    const diffIds = isObject(config) && isObject(config.rootfs) && Array.isArray(config.rootfs.diff_ids) ? (config.rootfs.diff_ids as unknown[]) : [];
    if (diffIds.length > 0 && diffIds.length !== item.Layers.length) {
      throw badManifest(configAt.label, `config lists ${diffIds.length} layers, manifest.json ${item.Layers.length}`);
    }
    const layers: LayerSource[] = [];
    for (const [i, name] of item.Layers.entries()) {
      const at = await c.locate(name);
      if (!at) throw new InputError('E_MISSING_BLOB', `${c.label}: layer ${name} is missing`);
      const diffId = typeof diffIds[i] === 'string' ? (diffIds[i] as string) : undefined;
      const blobDigest = /(?:^|\/)blobs\/sha256\/([a-f0-9]{64})$/.exec(name)?.[1];
      if (blobDigest) {
        const actual = await hashRange(at, 'sha256');
        if (actual !== blobDigest) throw mismatch(at.label, `layer has digest sha256:${actual}, its name says sha256:${blobDigest}`);
      }
      layers.push({ at, diffId });
    }
    yield* applyLayers(layers, options);
  } finally {
    c.close();
  }
}

/** The SourceReader for OCI image layouts, as directories or uncompressed tars (kind 'oci'). */
export const ociSource: SourceReader = {
  kind: 'oci',
  read(path: string, options: SourceReadOptions): Source {
    return readOciImage(path, options);
  },
};

/** The SourceReader for `docker save` archives (kind 'docker-archive'). */
export const dockerArchiveSource: SourceReader = {
  kind: 'docker-archive',
  read(path: string, options: SourceReadOptions): Source {
    return readDockerArchive(path, options);
  },
};

// ---------------------------------------------------------------------------------------------
// Detection

/** Member names an image archive has: layout files, blobs, docker's `<id>/…` and `<id>.json`. */
const IMAGE_MEMBER = /^(|oci-layout|index\.json|manifest\.json|repositories|blobs(\/.*)?|[a-f0-9]{64}(\/.*|\.json|\.tar)?)$/;

function classify(names: Set<string>): ArchiveKind {
  if (names.has('oci-layout') && names.has('index.json')) return 'oci';
  if (names.has('manifest.json')) return 'docker-archive';
  return 'tar';
}

/**
 * Tells a plain root filesystem tar from an OCI layout tar and a `docker save` tar by member
 * names, reading headers only and stopping at the first member no image archive has. Compressed
 * files are looked into too (their first members), so a compressed image archive is reported as
 * such rather than imported as a root filesystem. Directories: 'oci' with an oci-layout file,
 * 'docker-archive' with a manifest.json, else 'dir'.
 */
export async function detectArchiveKind(path: string): Promise<ArchiveKind> {
  const st = await stat(path).catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${path} does not exist`);
    throw e;
  });
  if (st.isDirectory()) {
    // By name only, never following: a layout member that is a symlink is then refused by the reader.
    const has = async (name: string) => (await lstat(join(path, name)).catch(() => undefined)) !== undefined;
    if ((await has('oci-layout')) && (await has('index.json'))) return 'oci';
    if (await has('manifest.json')) return 'docker-archive';
    return 'dir';
  }
  const names = new Set<string>();
  let plain = false;
  const see = (raw: Buffer): boolean => {
    const n = normalizeMember(raw.toString('latin1'));
    if (n === undefined || !IMAGE_MEMBER.test(n)) {
      plain = true;
      return true;
    }
    names.add(n);
    return false;
  };
  const d = await openDecompressed(path);
  if (d.format === 'tar') {
    d.close();
    await indexTarFile(path, { stopAt: (m) => see(m.name) });
    return plain ? 'tar' : classify(names);
  }
  // Compressed: decompress only the first few members.
  try {
    let n = 0;
    for await (const e of readTar(d.stream, { label: path, drainTrailing: false })) {
      if (see(e.name) || ++n >= 8) break;
    }
  } finally {
    d.close();
  }
  if (plain) return 'tar';
  if (names.has('oci-layout') || [...names].some((n) => n.startsWith('blobs/'))) return 'oci';
  return names.size > 1 || names.has('manifest.json') ? 'docker-archive' : 'tar';
}
