import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { InputError, NotFoundError, errnoCode } from '../../lib/errors.js';
import { encodePath } from '../../lib/path-codec.js';
import { fieldValue, foldedValue, parseDeb822 } from '../analyze/deb822.js';
import { openDecompressed, type InputFormat } from '../import/decompress.js';
import { normalizeName } from '../import/ingest.js';
import type { StoredContent } from '../import/source.js';
import { endOfInput, readTar, type TarEntry } from '../import/tar-reader.js';
import type { EntryType } from '../model/entry.js';
import { isHole, SparsePacker, type ContentChunk } from '../model/sparse.js';
import { listArMembers, type ArMember } from './ar.js';
import { parseDebianVersion } from './version.js';

/**
 * Reads a Debian binary package (.deb) in TypeScript: the ar wrapper, control.tar and data.tar
 * (each uncompressed or gzip, xz or zstd compressed, told by magic bytes through the import's
 * decompressors), the control fields, maintainer scripts and conffiles, and every file of
 * data.tar with its content hashed exactly as the repository stores it (sha256 of the data,
 * long zero runs as holes: model/sparse.ts), so it compares with image entries' blobs. `aim
 * impact` compares; `aim update` can pass `storeContent` to store the contents as blobs instead.
 */

export interface DebFile {
  /** Image path ("/usr/lib/x86_64-linux-gnu/libssl.so.3"), as dpkg would install it. */
  path: string;
  type: EntryType | 'socket';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  /** Regular files: the content as hashed (or stored) by the reader. */
  content?: StoredContent;
  /** Symlinks: the target; hardlinks: the image path of the file linked to. */
  target?: string;
}

/** A member of control.tar other than control itself: what dpkg keeps in /var/lib/dpkg/info. */
export interface DebControlMember {
  name: string;
  mode: number;
  data: Buffer;
}

/** A maintainer script or trigger file of control.tar. */
export interface DebScript {
  name: string;
  size: number;
  /** The text (scripts are small; longer ones are cut at MAX_CONTROL_FILE). */
  text: string;
}

export interface DebPackage {
  file: string;
  package: string;
  version: string;
  arch: string;
  /** Source package; the binary name when the control file has no Source field. */
  source: string;
  /** Source version; the binary version when not given. */
  sourceVersion: string;
  multiArch?: string;
  /** Installed-Size in bytes (the control file says KiB). */
  installedSize?: number;
  depends?: string;
  preDepends?: string;
  description?: string;
  /** Maintainer scripts present (preinst, postinst, prerm, postrm, config) and the triggers file. */
  scripts: DebScript[];
  conffiles: string[];
  /** The control file as written in the package. */
  controlText: string;
  /** Every other member of control.tar (scripts, triggers, md5sums, shlibs, symbols, templates…), as dpkg installs them into its info directory. */
  controlMembers: DebControlMember[];
  files: DebFile[];
  compression: { control: InputFormat; data: InputFormat };
}

export interface ReadDebOptions {
  /** Stores a file's content instead of only hashing it (aim update: into the blob store). */
  storeContent?: (content: AsyncIterable<ContentChunk>) => Promise<StoredContent>;
  /** Refuses a data.tar declaring more bytes than this in all (default 16 GiB). */
  maxDataBytes?: number;
  /** Refuses a data.tar with more entries than this (default 1,000,000). */
  maxEntries?: number;
  /** Reads the control data only (`files` is then empty): which package and version a .deb holds. */
  skipData?: boolean;
}

const SCRIPTS = new Set(['preinst', 'postinst', 'prerm', 'postrm', 'config', 'triggers']);
/** Largest control file, and the longest script text shown. */
const MAX_CONTROL_FILE = 1 << 20;
const MAX_CONTROL_ENTRIES = 1000;
/** Largest other control member (md5sums of a package with many files, symbols). */
const MAX_CONTROL_MEMBER = 64 << 20;

/** Hashes content the way the blob store names it: sha256 of the data, holes (model/sparse.ts) left out and mapped. */
export async function hashContent(content: AsyncIterable<ContentChunk>): Promise<StoredContent> {
  const packer = new SparsePacker();
  const hash = createHash('sha256');
  const out: Buffer[] = [];
  let size = 0;
  const drain = () => {
    for (const b of out) hash.update(b);
    out.length = 0;
  };
  for await (const c of content) {
    if (isHole(c)) {
      packer.hole(c.hole, out);
      size += c.hole;
    } else {
      packer.data(c, out);
      size += c.length;
    }
    drain();
  }
  const sparse = packer.finish(out);
  drain();
  return sparse ? { hash: hash.digest('hex'), size, sparse } : { hash: hash.digest('hex'), size };
}

async function* nothing(): AsyncGenerator<ContentChunk> {}

async function collect(content: AsyncIterable<ContentChunk> | undefined, max: number, what: string, label: string): Promise<{ data: Buffer; size: number }> {
  const parts: Buffer[] = [];
  let kept = 0;
  let size = 0;
  for await (const c of content ?? []) {
    const chunk = isHole(c) ? Buffer.alloc(Math.min(c.hole, max)) : c;
    size += isHole(c) ? c.hole : c.length;
    if (kept < max) {
      const part = Buffer.from(chunk.subarray(0, max - kept));
      parts.push(part);
      kept += part.length;
    }
  }
  if (what !== 'script' && size > max) throw badDeb(label, `its ${what} member of control.tar is ${size} bytes (more than ${max})`);
  return { data: Buffer.concat(parts), size };
}

function badDeb(label: string, why: string): InputError {
  return new InputError('E_BAD_DEB', `${label}: not a valid Debian package: ${why}`, { hint: 'give a .deb file as built by dpkg-deb' });
}

/** Entries of a tar member of the ar archive, decompressed as its magic bytes say. */
async function* tarMember(file: string, member: ArMember, label: string, onFormat: (f: InputFormat) => void): AsyncGenerator<TarEntry> {
  if (member.size === 0) throw badDeb(label, `${member.name} is empty`);
  const d = await openDecompressed(file, { start: member.offset, length: member.size, label: `${label} (${member.name})` });
  onFormat(d.format);
  let finished = false;
  try {
    const it = d.stream[Symbol.asyncIterator]();
    yield* readTar({ [Symbol.asyncIterator]: () => it }, { label: `${label} (${member.name})`, inputSize: d.format === 'tar' ? d.rawSize : undefined });
    await endOfInput(d, it);
    finished = true;
  } finally {
    if (!finished) d.close();
  }
}

/** A member name with its compression suffix: "control.tar", "control.tar.xz"… */
const memberKind = (name: string): 'control' | 'data' | undefined =>
  /^control\.tar(\.[a-z0-9]+)?$/.test(name) ? 'control' : /^data\.tar(\.[a-z0-9]+)?$/.test(name) ? 'data' : undefined;

/** The ar members in the order deb(5) requires: debian-binary, control.tar*, data.tar* ("_" members skipped). */
function checkLayout(members: ArMember[], label: string): { control: ArMember; data: ArMember; binary: ArMember } {
  const [binary, ...rest] = members;
  if (!binary || binary.name !== 'debian-binary') throw badDeb(label, `its first ar member is ${binary ? `"${binary.name}"` : 'missing'}, not "debian-binary"`);
  const real = rest.filter((m) => !m.name.startsWith('_'));
  const control = real[0];
  const data = real[1];
  if (!control || memberKind(control.name) !== 'control') throw badDeb(label, `expected control.tar after debian-binary, found ${control ? `"${control.name}"` : 'nothing'}`);
  if (!data || memberKind(data.name) !== 'data') throw badDeb(label, `expected data.tar after ${control.name}, found ${data ? `"${data.name}"` : 'nothing'}`);
  if (real.length > 2) throw badDeb(label, `unexpected ar member "${real[2]!.name}" after ${data.name}`);
  return { binary, control, data };
}

/** Reads a .deb: its control data and every file of data.tar with its content hash. */
export async function readDeb(file: string, options: ReadDebOptions = {}): Promise<DebPackage> {
  const label = file;
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${file} does not exist`, { cause: e });
    throw e;
  }
  let members: ArMember[];
  let binaryVersion: string;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new InputError('E_NOT_A_FILE', `${file} is not a regular file`);
    members = await listArMembers(fh, st.size, label);
    const { binary } = checkLayout(members, label);
    const head = Buffer.alloc(Math.min(binary.size, 16));
    await fh.read(head, 0, head.length, binary.offset);
    binaryVersion = head.toString('latin1').split('\n')[0]!.trim();
  } finally {
    await fh.close();
  }
  if (!/^2\.\d+$/.test(binaryVersion)) throw badDeb(label, `format version "${binaryVersion}" in debian-binary is not 2.x`);
  const { control, data } = checkLayout(members, label);

  const compression = { control: 'tar' as InputFormat, data: 'tar' as InputFormat };
  let controlText: string | undefined;
  let conffilesText = '';
  const scripts: DebScript[] = [];
  const controlMembers: DebControlMember[] = [];
  let count = 0;
  for await (const e of tarMember(file, control, label, (f) => (compression.control = f))) {
    if (++count > MAX_CONTROL_ENTRIES) throw badDeb(label, `control.tar holds more than ${MAX_CONTROL_ENTRIES} entries`);
    if (e.type !== 'file') continue;
    const name = encodePath(e.name).replace(/^(\.\/)+/, '').replace(/^\//, '');
    if (name === 'control') {
      controlText = (await collect(e.content, MAX_CONTROL_FILE, 'control', label)).data.toString('utf8');
      continue;
    }
    if (name.includes('/') || name === '') {
      await collect(e.content, 0, 'script', label);
      continue;
    }
    const { data, size } = await collect(e.content, MAX_CONTROL_MEMBER, name, label);
    controlMembers.push({ name, mode: e.mode, data });
    if (name === 'conffiles') conffilesText = data.toString('utf8');
    else if (SCRIPTS.has(name)) scripts.push({ name, size, text: data.subarray(0, MAX_CONTROL_FILE).toString('utf8') });
  }
  if (controlText === undefined) throw badDeb(label, 'control.tar has no control file');
  const fields = parseControl(controlText, label);

  if (options.skipData) return { file, ...fields, scripts, conffiles: conffileList(conffilesText), controlText, controlMembers, files: [], compression };
  const maxBytes = options.maxDataBytes ?? 16 * 2 ** 30;
  const maxEntries = options.maxEntries ?? 1_000_000;
  const store = options.storeContent ?? hashContent;
  const files: DebFile[] = [];
  const byPath = new Map<string, DebFile>();
  let declared = 0;
  for await (const e of tarMember(file, data, label, (f) => (compression.data = f))) {
    if (files.length >= maxEntries) throw new InputError('E_DEB_TOO_LARGE', `${label}: data.tar holds more than ${maxEntries} entries`);
    const path = normalizeName(e.name, `${label} (data.tar)`);
    const f: DebFile = { path, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
    if (e.type === 'file') {
      declared += e.size ?? 0;
      if (declared > maxBytes) {
        throw new InputError('E_DEB_TOO_LARGE', `${label}: data.tar declares more than ${maxBytes} bytes of files`, { hint: 'a package this large is not a real update; check the file' });
      }
      f.content = await store((e.content ?? nothing()) as AsyncIterable<ContentChunk>);
    } else if (e.type === 'symlink') f.target = encodePath(e.linkName ?? Buffer.alloc(0));
    else if (e.type === 'hardlink') {
      const target = normalizeName(e.linkName ?? Buffer.alloc(0), `${label} (data.tar)`, 'hard link target');
      const to = byPath.get(target);
      if (to?.type !== 'file') throw badDeb(label, `hard link ${path} points to ${target}, which is not an earlier file of data.tar`);
      f.target = target;
      f.content = to.content;
    }
    if (path === '/' && e.type === 'dir') continue;
    files.push(f);
    byPath.set(path, f);
  }
  return { file, ...fields, scripts, conffiles: conffileList(conffilesText), controlText, controlMembers, files, compression };
}

/** The paths of a conffiles member ("remove-on-upgrade /etc/x" lines give their path too). */
function conffileList(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => l.slice(l.indexOf('/')))
    .filter((l) => l.startsWith('/'));
}

type ControlFields = Pick<DebPackage, 'package' | 'version' | 'arch' | 'source' | 'sourceVersion' | 'multiArch' | 'installedSize' | 'depends' | 'preDepends' | 'description'>;

/** The fields of a control file impact and update need; Package, Version and Architecture are required. */
export function parseControl(text: string, label: string): ControlFields {
  const [p] = parseDeb822(text);
  const name = p ? fieldValue(p, 'Package') : undefined;
  const version = p ? fieldValue(p, 'Version') : undefined;
  const arch = p ? fieldValue(p, 'Architecture') : undefined;
  if (!p || !name || !version || !arch) {
    throw badDeb(label, `its control file lacks ${[!name && 'Package', !version && 'Version', !arch && 'Architecture'].filter(Boolean).join(', ')}`);
  }
  if (!/^[a-z0-9][a-z0-9+.-]+$/.test(name)) throw badDeb(label, `package name "${name}" is invalid`);
  parseDebianVersion(version, `${label}: Version`);
  const src = /^(\S+)(?:\s*\(\s*([^)\s]+)\s*\))?/.exec(fieldValue(p, 'Source') ?? '');
  const out: ControlFields = { package: name, version, arch, source: src?.[1] ?? name, sourceVersion: src?.[2] ?? version };
  const multiArch = fieldValue(p, 'Multi-Arch');
  if (multiArch) out.multiArch = multiArch;
  const size = fieldValue(p, 'Installed-Size');
  if (size && /^\d+$/.test(size)) out.installedSize = Number(size) * 1024;
  const depends = foldedValue(p, 'Depends');
  if (depends) out.depends = depends;
  const preDepends = foldedValue(p, 'Pre-Depends');
  if (preDepends) out.preDepends = preDepends;
  const description = fieldValue(p, 'Description');
  if (description) out.description = description;
  return out;
}
