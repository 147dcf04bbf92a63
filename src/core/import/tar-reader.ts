import { closeSync, fstatSync, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { InputError, InternalError } from '../../lib/errors.js';
import { readFullSync } from '../../lib/fs.js';
import { encodePath } from '../../lib/path-codec.js';
import type { EntryType } from '../model/entry.js';
import type { ContentChunk } from '../model/sparse.js';
import { detectFormat, openDecompressed, type DecompressedInput } from './decompress.js';
import { checkSparseMap, MapTextParser, OldGnuSparseParser, paxSparse, SparseMapError, sparseChunks, type SparseHeader, type SparseMap } from './tar-sparse.js';
import type { Source, SourceEntry, SourceReadOptions, SourceReader } from './source.js';

/**
 * A streaming tar parser of our own: ustar, GNU (long names and links, base-256 numbers) and pax
 * (path, linkpath, size, uid, gid, mtime with nanoseconds, SCHILY/LIBARCHIVE xattrs with binary
 * values, SCHILY device numbers). Names and pax values are kept as raw bytes: nothing is decoded
 * as text, so non-UTF-8 names and binary capabilities survive. Every header's checksum is
 * verified; truncation is an InputError.
 */

const BLOCK = 512;
/** Largest pax or GNU long-name payload held in memory (xattrs are at most 64 KiB on Linux). */
const MAX_META = 16 << 20;
/** Largest content chunk handed out at once (a subarray of the input chunk, never a copy). */
const MAX_CHUNK = 1 << 20;
/** Bytes walkTarFile reads at a header's position (several headers and small data at once). */
const HEADER_WINDOW = 4096;

export interface TarEntry extends SourceEntry {
  /** Offset of the entry's first header (pax and GNU extension headers included) in the tar stream. */
  headerOffset: number;
  /** Offset of the entry's data (content of a file) in the tar stream. */
  dataOffset: number;
}

export interface ReadTarOptions {
  /** Name of the input for messages (a file path). */
  label?: string;
  /**
   * Length of the uncompressed tar when known (a plain tar file): a header declaring more data
   * than remains fails at once instead of at the end of the input.
   */
  inputSize?: number;
  /** After the end-of-archive marker, read the input to its end (default true). */
  drainTrailing?: boolean;
}

const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;

// ---------------------------------------------------------------------------------------------
// Header fields

interface RawHeader {
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkName: Buffer;
  devMajor: number;
  devMinor: number;
  /** 'posix' (ustar\0, has a prefix field), 'gnu' (ustar  \0), 'v7' (no magic). */
  flavour: 'posix' | 'gnu' | 'v7';
}

interface Ctx {
  label: string;
  offset: number;
}

function corrupt(ctx: Ctx, what: string): InputError {
  return new InputError('E_CORRUPT_ARCHIVE', `${ctx.label}: corrupt tar archive: ${what} (header at byte ${ctx.offset})`, {
    hint: 'the archive is damaged; create or download it again',
  });
}

function truncated(label: string, what: string): InputError {
  return new InputError('E_TRUNCATED', `${label}: truncated tar archive: ${what}`, {
    hint: 'the archive is incomplete (an interrupted download or copy?); get a complete copy',
  });
}

function cString(b: Buffer, off: number, len: number): Buffer {
  let end = b.indexOf(0, off);
  if (end < 0 || end > off + len) end = off + len;
  return Buffer.from(b.subarray(off, end));
}

/**
 * Octal (ASCII, space/NUL padded) or GNU base-256 number: a two's complement big-endian number
 * over the whole field whose first byte has its top bit set as a marker (0x80 positive, 0xff
 * negative); it is read exactly (BigInt) and refused beyond a safe integer. Only times may be
 * negative.
 */
function parseNumber(b: Buffer, off: number, len: number, field: string, ctx: Ctx, allowNegative = false): number {
  const first = b[off]!;
  if (first & 0x80) {
    let v = BigInt(first & 0x7f);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(b[off + i]!);
    if (first & 0x40) v -= 1n << BigInt(8 * len - 1);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw corrupt(ctx, `${field} ${v} is out of range`);
    if (v < 0n && !allowNegative) throw corrupt(ctx, `${field} ${v} is negative`);
    return Number(v);
  }
  let i = off;
  const end = off + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  while (i < end) {
    const c = b[i]!;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) throw corrupt(ctx, `${field} field is not an octal number`);
    v = v * 8 + (c - 0x30);
    i++;
  }
  for (; i < end; i++) if (b[i] !== 0x20 && b[i] !== 0) throw corrupt(ctx, `${field} field is not an octal number`);
  return v;
}

/** Parses a 512-byte header; null for an all-zero block (end of archive). */
function parseHeader(b: Buffer, ctx: Ctx): RawHeader | null {
  let unsigned = 0;
  let signed = 0;
  let any = 0;
  for (let i = 0; i < BLOCK; i++) {
    const raw = b[i]!;
    any |= raw;
    const v = i >= 148 && i < 156 ? 0x20 : raw;
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  if (any === 0) return null;
  let stored: number;
  try {
    stored = parseNumber(b, 148, 8, 'checksum', ctx);
  } catch {
    stored = -1;
  }
  if (stored !== unsigned && stored !== signed) throw corrupt(ctx, `header checksum mismatch (stored ${stored}, computed ${unsigned})`);

  const magic = b.toString('latin1', 257, 265);
  const flavour = magic === 'ustar  \0' ? 'gnu' : magic.startsWith('ustar\0') ? 'posix' : 'v7';
  let name = cString(b, 0, 100);
  if (flavour === 'posix' && b[345] !== 0) {
    const prefix = cString(b, 345, 155);
    name = Buffer.concat([prefix, Buffer.from('/'), name]);
  }
  return {
    name,
    mode: parseNumber(b, 100, 8, 'mode', ctx),
    uid: parseNumber(b, 108, 8, 'uid', ctx),
    gid: parseNumber(b, 116, 8, 'gid', ctx),
    size: parseNumber(b, 124, 12, 'size', ctx),
    mtime: parseNumber(b, 136, 12, 'mtime', ctx, true),
    typeflag: b[156]!,
    linkName: cString(b, 157, 100),
    devMajor: flavour === 'v7' ? 0 : parseNumber(b, 329, 8, 'devmajor', ctx),
    devMinor: flavour === 'v7' ? 0 : parseNumber(b, 337, 8, 'devminor', ctx),
    flavour,
  };
}

/** pax extended header records: "<len> <key>=<value>\n"; values stay raw bytes. */
interface PaxRecords {
  records: Map<string, Buffer>;
  /** GNU sparse 0.0 lists its map as repeated GNU.sparse.offset / GNU.sparse.numbytes records, in order. */
  pairs: number[];
}

function parsePax(buf: Buffer, ctx: Ctx): PaxRecords {
  const out = new Map<string, Buffer>();
  const pairs: number[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) break; // NUL padding written by some tools
    let p = pos;
    let len = 0;
    while (p < buf.length && buf[p]! >= 0x30 && buf[p]! <= 0x39) {
      len = len * 10 + (buf[p]! - 0x30);
      if (len > buf.length) throw corrupt(ctx, 'pax record length exceeds the header');
      p++;
    }
    if (p === pos || buf[p] !== 0x20 || pos + len > buf.length || buf[pos + len - 1] !== 0x0a) {
      throw corrupt(ctx, `malformed pax record at offset ${pos}`);
    }
    const eq = buf.indexOf(0x3d, p + 1);
    if (eq < 0 || eq >= pos + len - 1) throw corrupt(ctx, `pax record without "=" at offset ${pos}`);
    const key = buf.toString('utf8', p + 1, eq);
    const value = Buffer.from(buf.subarray(eq + 1, pos + len - 1));
    if (key === 'GNU.sparse.offset' || key === 'GNU.sparse.numbytes') {
      if ((key === 'GNU.sparse.offset') !== (pairs.length % 2 === 0)) throw corrupt(ctx, 'GNU.sparse.offset and numbytes records do not alternate');
      pairs.push(paxInt(value, key, ctx));
    } else out.set(key, value);
    pos += len;
  }
  return { records: out, pairs };
}

function paxInt(v: Buffer, key: string, ctx: Ctx): number {
  const s = v.toString('latin1');
  if (!/^\d+$/.test(s)) throw corrupt(ctx, `pax ${key} "${s}" is not a number`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw corrupt(ctx, `pax ${key} ${s} is out of range`);
  return n;
}

/** "1700000000.123456789" or "-1.5" to whole seconds (floor) and nanoseconds 0..999999999. */
function paxTime(v: Buffer, ctx: Ctx): { sec: number; nsec: number } {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(v.toString('latin1'));
  if (!m) throw corrupt(ctx, `pax mtime "${v.toString('latin1')}" is not a time`);
  const whole = Number(m[2]);
  if (!Number.isSafeInteger(whole)) throw corrupt(ctx, 'pax mtime out of range');
  const frac = Number(((m[3] ?? '') + '000000000').slice(0, 9));
  if (m[1] !== '-') return { sec: whole, nsec: frac };
  return frac === 0 ? { sec: -whole, nsec: 0 } : { sec: -whole - 1, nsec: 1_000_000_000 - frac };
}

/** LIBARCHIVE.xattr names are URL-encoded. */
function urlDecode(s: string): string {
  if (!s.includes('%')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else for (const b of Buffer.from(s[i]!, 'utf8')) bytes.push(b);
  }
  return Buffer.from(bytes).toString('utf8');
}

const TYPES: Record<string, EntryType | undefined> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
  D: 'dir', // GNU incremental dump directory: its data (a name list) is skipped
  S: 'file', // old GNU sparse file: its map is in the header (and extension blocks after it)
};

/** Extension headers seen before the entry they describe. */
interface Pending {
  headerOffset?: number;
  longName?: Buffer;
  longLink?: Buffer;
  pax?: PaxRecords;
}

type HeaderKind = 'entry' | 'pax' | 'global' | 'longname' | 'longlink' | 'skip';

function headerKind(h: RawHeader, ctx: Ctx): HeaderKind {
  const t = String.fromCharCode(h.typeflag);
  if (TYPES[t]) return 'entry';
  switch (t) {
    case 'x':
    case 'X': // Solaris pax
      return 'pax';
    case 'g':
      return 'global';
    case 'L':
      return 'longname';
    case 'K':
      return 'longlink';
    case 'V': // volume label
      return 'skip';
    case 'M':
    case 'N':
      throw new InputError('E_UNSUPPORTED_ENTRY', `${ctx.label}: GNU ${t === 'M' ? 'multi-volume' : 'old long-name'} header at byte ${ctx.offset} is not supported`);
    default:
      throw new InputError(
        'E_UNSUPPORTED_ENTRY',
        `${ctx.label}: "${encodePath(h.name)}" has the unknown tar entry type '${t.charCodeAt(0) < 32 ? `\\x${h.typeflag.toString(16)}` : t}'`,
      );
  }
}

/**
 * Combines a header with preceding extension headers into a SourceEntry (without content).
 * `dataSize` is what the archive holds for the entry; `sparse` is set for GNU pax sparse members
 * (the old GNU 'S' header's map is read by the caller, it follows the header).
 */
function buildEntry(h: RawHeader, pending: Pending, global: Map<string, Buffer>, ctx: Ctx): { entry: SourceEntry; dataSize: number; sparse?: SparseHeader } {
  const pax = new Map(global);
  for (const [k, v] of pending.pax?.records ?? []) {
    if (v.length === 0) pax.delete(k);
    else pax.set(k, v);
  }
  let name = pending.longName ?? h.name;
  let linkName = pending.longLink ?? h.linkName;
  let size = h.size;
  let { uid, gid, mtime, devMajor, devMinor } = h;
  let mtimeNsec = 0;
  let xattrs: Record<string, Buffer> | undefined;
  const libarchiveXattrs: Record<string, Buffer> = {};
  for (const [key, v] of pax) {
    switch (key) {
      case 'path':
        name = v;
        break;
      case 'linkpath':
        linkName = v;
        break;
      case 'size':
        size = paxInt(v, key, ctx);
        break;
      case 'uid':
        uid = paxInt(v, key, ctx);
        break;
      case 'gid':
        gid = paxInt(v, key, ctx);
        break;
      case 'mtime': {
        const t = paxTime(v, ctx);
        mtime = t.sec;
        mtimeNsec = t.nsec;
        break;
      }
      case 'SCHILY.devmajor':
        devMajor = paxInt(v, key, ctx);
        break;
      case 'SCHILY.devminor':
        devMinor = paxInt(v, key, ctx);
        break;
      case 'RHT.security.selinux':
        (xattrs ??= {})['security.selinux'] = v;
        break;
      default:
        if (key.startsWith('SCHILY.xattr.')) (xattrs ??= {})[key.slice(13)] = v;
        else if (key.startsWith('LIBARCHIVE.xattr.')) libarchiveXattrs[urlDecode(key.slice(17))] = Buffer.from(v.toString('latin1'), 'base64');
    }
  }
  // SCHILY values are the raw bytes; LIBARCHIVE ones only fill in names SCHILY did not give.
  for (const [k, v] of Object.entries(libarchiveXattrs)) if (!xattrs?.[k]) (xattrs ??= {})[k] = v;

  let type = TYPES[String.fromCharCode(h.typeflag)]!;
  // Old (pre-POSIX) archives mark directories only by a trailing slash.
  if (type === 'file' && (h.typeflag === 0 || h.flavour === 'v7') && name.length > 0 && name[name.length - 1] === 0x2f) type = 'dir';

  let sparse: SparseHeader | undefined;
  if (type === 'file') {
    try {
      sparse = paxSparse(pax, pending.pax?.pairs ?? [], (v, what) => paxInt(v, what, ctx));
    } catch (e) {
      throw badSparse(ctx, name, e);
    }
    const real = pax.get('GNU.sparse.name');
    if (sparse && real) name = real;
  }
  const entry: SourceEntry = { name, type, mode: h.mode & 0o7777, uid, gid, mtime };
  if (mtimeNsec) entry.mtimeNsec = mtimeNsec;
  if (xattrs) entry.xattrs = xattrs;
  if (type === 'file') entry.size = sparse ? sparse.realSize : size;
  if (type === 'symlink' || type === 'hardlink') entry.linkName = linkName;
  if (type === 'char' || type === 'block') {
    entry.devMajor = devMajor;
    entry.devMinor = devMinor;
  }
  return { entry, dataSize: size, sparse };
}

function badSparse(ctx: Ctx, name: Buffer, e: unknown): unknown {
  if (!(e instanceof SparseMapError)) return e;
  return corrupt(ctx, `sparse file "${encodePath(name)}": ${e.message}`);
}

/** Global pax records kept at most (they apply to every later entry, so they must stay small). */
const MAX_GLOBAL = 1 << 20;

function mergeGlobal(global: Map<string, Buffer>, pax: PaxRecords, ctx: Ctx): Map<string, Buffer> {
  const next = new Map(global);
  for (const [k, v] of pax.records) {
    // A global path, link, size or sparse map cannot sensibly apply to every later entry.
    if (k === 'path' || k === 'linkpath' || k === 'size' || k.startsWith('GNU.sparse.')) continue;
    if (v.length === 0) next.delete(k);
    else next.set(k, v);
  }
  let bytes = 0;
  for (const [k, v] of next) bytes += k.length + v.length;
  if (bytes > MAX_GLOBAL) throw corrupt(ctx, `global pax headers add up to ${bytes} bytes, more than ${MAX_GLOBAL}`);
  return next;
}

function pendingIsEmpty(p: Pending): boolean {
  return !p.longName && !p.longLink && !p.pax;
}

// ---------------------------------------------------------------------------------------------
// Streaming reader

const EMPTY = Buffer.alloc(0);

/** Pulls bytes from an async iterator; hands out subarrays of its chunks (no copies). */
class ByteReader {
  private chunk: Buffer = EMPTY;
  private pos = 0;
  private eof = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(private readonly it: AsyncIterator<Buffer | Uint8Array | string>) {}

  private async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      if (this.eof) return false;
      const r = await this.it.next();
      if (r.done) {
        this.eof = true;
        return false;
      }
      const c = r.value;
      if (typeof c === 'string') throw new InternalError('tar input stream must not have an encoding set');
      this.chunk = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      this.pos = 0;
    }
    return true;
  }

  /** Up to `max` bytes; null at the end of the input. */
  async read(max: number): Promise<Buffer | null> {
    if (this.pos >= this.chunk.length && !(await this.fill())) return null;
    const n = Math.min(max, this.chunk.length - this.pos);
    const out = this.chunk.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /** Exactly `n` bytes, or fewer when the input ends first. */
  async readExact(n: number): Promise<Buffer> {
    if (this.chunk.length - this.pos >= n) {
      const out = this.chunk.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return out;
    }
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const b = await this.read(n - got);
      if (!b) break;
      parts.push(b);
      got += b.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, got);
  }

  /** Skips up to `n` bytes; returns how many were skipped (fewer only at the end of the input). */
  async skip(n: number): Promise<number> {
    let done = 0;
    while (done < n) {
      const b = await this.read(n - done);
      if (!b) break;
      done += b.length;
    }
    return done;
  }
}

/**
 * One file's content (data chunks, and holes of a sparse member): must be read before the next
 * entry is requested, or it is skipped.
 */
class EntryContent implements AsyncIterable<ContentChunk>, AsyncIterator<ContentChunk> {
  /** Bytes of the member's data in the archive not read yet. */
  remaining: number;
  private inFlight: Promise<unknown> | undefined;
  private detached = false;
  private readonly inner: AsyncGenerator<ContentChunk>;

  constructor(reader: ByteReader, dataSize: number, label: string, private readonly name: Buffer, map?: SparseMap) {
    this.remaining = dataSize;
    const read = async (n: number): Promise<Buffer> => {
      const b = await reader.read(Math.min(n, this.remaining));
      if (!b) throw truncated(label, `"${encodePath(name)}" ends ${this.remaining} bytes short of its declared data`);
      this.remaining -= b.length;
      return b;
    };
    this.inner = map ? sparseChunks(map, read, MAX_CHUNK) : denseChunks(dataSize, read);
  }

  [Symbol.asyncIterator](): AsyncIterator<ContentChunk> {
    return this;
  }

  async next(): Promise<IteratorResult<ContentChunk>> {
    if (this.detached) throw new InternalError(`content of tar entry "${encodePath(this.name)}" read after the next entry was requested`);
    const p = this.inner.next();
    this.inFlight = p;
    return p;
  }

  async return(): Promise<IteratorResult<ContentChunk>> {
    return { done: true, value: undefined };
  }

  /** Stops this content from being read; waits for a read in progress. */
  async detach(): Promise<void> {
    this.detached = true;
    if (this.inFlight) await this.inFlight.catch(() => {});
  }
}

async function* denseChunks(size: number, read: (n: number) => Promise<Buffer>): AsyncGenerator<Buffer> {
  for (let left = size; left > 0; ) {
    const b = await read(Math.min(left, MAX_CHUNK));
    left -= b.length;
    yield b;
  }
}

/** Largest GNU long name or link read (Linux paths are at most 4096 bytes). */
const MAX_LONG_NAME = 64 << 10;
/** After the end-of-archive marker, at most this much is read (to let a decompressor check its tail). */
const MAX_TRAILING = 16 << 20;

/**
 * Reads a tar stream entry by entry. File entries carry `content`, an async iterable of the data
 * (subarrays of the input chunks; holes of sparse members as Hole chunks) that must be consumed
 * before the next entry is requested; if it is not, it is skipped. Memory stays bounded by the
 * input's chunk size and the caps on extended headers. The input is not destroyed when iteration
 * stops: its owner does that.
 */
export async function* readTar(input: Readable | AsyncIterable<Buffer>, options: ReadTarOptions = {}): AsyncGenerator<TarEntry> {
  const label = options.label ?? 'tar stream';
  const r = new ByteReader((input as AsyncIterable<Buffer>)[Symbol.asyncIterator]());
  let global = new Map<string, Buffer>();
  let pending: Pending = {};
  let content: EntryContent | undefined;
  let skipAfter = 0;

  const readData = async (size: number, ctx: Ctx, what: string, max = MAX_META): Promise<Buffer> => {
    if (size > max) throw corrupt(ctx, `${what} of ${size} bytes is too large`);
    const data = await r.readExact(size);
    if (data.length < size) throw truncated(label, `input ends inside a ${what}`);
    const pad = padding(size);
    if ((await r.skip(pad)) < pad) throw truncated(label, `input ends inside a ${what}`);
    return data;
  };
  const readBlock = async (what: string): Promise<Buffer> => {
    const b = await r.readExact(BLOCK);
    if (b.length < BLOCK) throw truncated(label, `input ends inside a ${what}`);
    return b;
  };

  try {
    for (;;) {
      if (content) {
        await content.detach();
        skipAfter = content.remaining + skipAfter;
        content = undefined;
      }
      if (skipAfter > 0) {
        const want = skipAfter;
        skipAfter = 0;
        if ((await r.skip(want)) < want) throw truncated(label, 'input ends inside an entry\'s data');
      }
      const at = r.offset;
      const ctx: Ctx = { label, offset: at };
      const block = await r.readExact(BLOCK);
      if (block.length === 0) {
        if (!pendingIsEmpty(pending)) throw truncated(label, 'input ends after an extended header');
        break; // clean end at a block boundary without end-of-archive marker
      }
      if (block.length < BLOCK) throw truncated(label, `input ends inside a header at byte ${at}`);
      const h = parseHeader(block, ctx);
      if (h === null) {
        if (!pendingIsEmpty(pending)) throw corrupt(ctx, 'end of archive right after an extended header');
        break;
      }
      if (options.inputSize !== undefined && h.size > options.inputSize - r.offset) {
        throw truncated(label, `"${encodePath(h.name)}" declares ${h.size} bytes but only ${Math.max(0, options.inputSize - r.offset)} remain`);
      }
      pending.headerOffset ??= at;
      const kind = headerKind(h, ctx);
      if (kind === 'pax') {
        pending.pax = parsePax(await readData(h.size, ctx, 'pax header'), ctx);
        continue;
      }
      if (kind === 'global') {
        global = mergeGlobal(global, parsePax(await readData(h.size, ctx, 'pax global header'), ctx), ctx);
        if (pendingIsEmpty(pending)) pending = {};
        continue;
      }
      if (kind === 'longname' || kind === 'longlink') {
        const data = await readData(h.size, ctx, 'GNU long name', MAX_LONG_NAME);
        const end = data.indexOf(0);
        const value = Buffer.from(end < 0 ? data : data.subarray(0, end));
        if (kind === 'longname') pending.longName = value;
        else pending.longLink = value;
        continue;
      }
      if (kind === 'skip') {
        skipAfter = h.size + padding(h.size);
        continue;
      }
      const { entry, dataSize, sparse: paxMap } = buildEntry(h, pending, global, ctx);
      let sparse = paxMap;
      if (h.typeflag === 0x53 /* 'S' */) {
        try {
          const old = new OldGnuSparseParser(block, (b, off, len, what) => parseNumber(b, off, len, what, ctx));
          while (old.more) old.push(await readBlock('GNU sparse header'));
          sparse = old;
        } catch (e) {
          throw badSparse(ctx, entry.name, e);
        }
        entry.size = sparse.realSize;
      }
      if (options.inputSize !== undefined && dataSize > options.inputSize - r.offset) {
        throw truncated(label, `"${encodePath(entry.name)}" declares ${dataSize} bytes but only ${Math.max(0, options.inputSize - r.offset)} remain`);
      }
      const tarEntry = entry as TarEntry;
      tarEntry.headerOffset = pending.headerOffset;
      tarEntry.dataOffset = r.offset;
      pending = {};
      if (entry.type === 'file') {
        let map: SparseMap | undefined;
        let mapBytes = 0;
        if (sparse) {
          try {
            let regions = sparse.regions;
            if (!regions) {
              const text = new MapTextParser(dataSize);
              while (!text.push(await readBlock('GNU sparse map')));
              regions = text.regions;
              mapBytes = text.bytes;
            }
            map = { realSize: sparse.realSize, regions };
            checkSparseMap(map, dataSize - mapBytes);
          } catch (e) {
            throw badSparse(ctx, entry.name, e);
          }
        }
        content = new EntryContent(r, dataSize - mapBytes, label, entry.name, map);
        skipAfter = padding(dataSize);
        tarEntry.content = content;
      } else {
        skipAfter = dataSize + padding(dataSize);
      }
      yield tarEntry;
    }
    if (options.drainTrailing ?? true) {
      // Padding after the end-of-archive marker: reading it lets a decompressor check its tail.
      // Beyond a generous bound it is not padding, and reading on (a bomb of zeros) is pointless.
      let trailing = 0;
      for (let b = await r.read(MAX_CHUNK); b !== null && trailing <= MAX_TRAILING; b = await r.read(MAX_CHUNK)) trailing += b.length;
    }
  } finally {
    await content?.detach();
  }
}

// ---------------------------------------------------------------------------------------------
// Random access index (uncompressed tar files)

export interface TarMember extends SourceEntry {
  headerOffset: number;
  dataOffset: number;
  /** Length of the member's data (files; hardlinks and directories may have some too). */
  dataSize: number;
}

export interface IndexTarOptions {
  label?: string;
  /** Stop after this many entries (extension headers are not counted). */
  limit?: number;
  /** Stop when this returns true for a member (it is included). */
  stopAt?: (m: TarMember) => boolean;
}

/**
 * Lists the members of an uncompressed tar file by reading only its headers (positional reads,
 * data is seeked over): cheap even for archives of many gigabytes. `complete` is false when the
 * listing stopped at `limit` or `stopAt`.
 */
export async function indexTarFile(path: string, options: IndexTarOptions = {}): Promise<{ members: TarMember[]; complete: boolean }> {
  const members: TarMember[] = [];
  for (const member of walkTarFile(path, options.label ?? path)) {
    members.push(member);
    if (options.stopAt?.(member) || (options.limit !== undefined && members.length >= options.limit)) return { members, complete: false };
  }
  return { members, complete: true };
}

/**
 * The map of a sparse member read in place: from the old GNU header and its extension blocks, or
 * the 1.0 map text at the start of the data (`readBlock` hands out the blocks after the header).
 * Checked against the data the member holds.
 */
function sparseMapAt(h: RawHeader, block: Buffer, sparse: SparseHeader | undefined, readBlock: () => Buffer, dataSize: number, ctx: Ctx): SparseMap & { mapBytes: number } {
  let map: SparseMap & { mapBytes: number };
  if (h.typeflag === 0x53) {
    const old = new OldGnuSparseParser(block, (b, off, len, what) => parseNumber(b, off, len, what, ctx));
    while (old.more) old.push(readBlock());
    map = { realSize: old.realSize, regions: old.regions, mapBytes: 0 };
  } else if (sparse!.regions) {
    map = { realSize: sparse!.realSize, regions: sparse!.regions, mapBytes: 0 };
  } else {
    const text = new MapTextParser(dataSize);
    while (!text.push(readBlock()));
    map = { realSize: sparse!.realSize, regions: text.regions, mapBytes: text.bytes };
  }
  checkSparseMap(map, dataSize - map.mapBytes);
  return map;
}

/**
 * The members of an uncompressed tar file, one at a time, from synchronous positional reads of
 * the headers only. Every header's checksum is verified; a member whose data would run past the
 * end of the file is E_TRUNCATED before it is handed out.
 */
export function* walkTarFile(path: string, label = path): Generator<TarMember> {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    let global = new Map<string, Buffer>();
    let pending: Pending = {};
    let pos = 0;
    const block = Buffer.alloc(BLOCK);
    // A small window: an entry's pax header, its data and the entry's own header come with one read.
    const win = Buffer.alloc(HEADER_WINDOW);
    let winAt = 0;
    let winLen = 0;
    const readAt = (buf: Buffer, at: number) => {
      if (buf.length <= win.length) {
        if (at < winAt || at + buf.length > winAt + winLen) {
          winAt = at;
          winLen = readFullSync(fd, win, win.length, at);
        }
        return win.copy(buf, 0, at - winAt, Math.min(winLen, at - winAt + buf.length));
      }
      return readFullSync(fd, buf, buf.length, at);
    };
    for (;;) {
      const ctx: Ctx = { label, offset: pos };
      const n = readAt(block, pos);
      if (n === 0) {
        if (!pendingIsEmpty(pending)) throw truncated(label, 'input ends after an extended header');
        return;
      }
      if (n < BLOCK) throw truncated(label, `input ends inside a header at byte ${pos}`);
      const h = parseHeader(block, ctx);
      if (h === null) {
        if (!pendingIsEmpty(pending)) throw corrupt(ctx, 'end of archive right after an extended header');
        return;
      }
      const dataAt = pos + BLOCK;
      if (h.size > fileSize - dataAt) {
        throw truncated(label, `"${encodePath(h.name)}" declares ${h.size} bytes but only ${Math.max(0, fileSize - dataAt)} remain`);
      }
      pending.headerOffset ??= pos;
      const kind = headerKind(h, ctx);
      if (kind !== 'entry') {
        if (kind !== 'skip') {
          const max = kind === 'longname' || kind === 'longlink' ? MAX_LONG_NAME : MAX_META;
          if (h.size > max) throw corrupt(ctx, `extended header of ${h.size} bytes is too large`);
          const data = Buffer.alloc(h.size);
          if (readAt(data, dataAt) < h.size) throw truncated(label, 'input ends inside an extended header');
          if (kind === 'pax') pending.pax = parsePax(data, ctx);
          else if (kind === 'global') {
            global = mergeGlobal(global, parsePax(data, ctx), ctx);
            if (pendingIsEmpty(pending)) pending = {};
          } else {
            const end = data.indexOf(0);
            const value = Buffer.from(end < 0 ? data : data.subarray(0, end));
            if (kind === 'longname') pending.longName = value;
            else pending.longLink = value;
          }
        }
        pos = dataAt + h.size + padding(h.size);
        continue;
      }
      const { entry, dataSize, sparse } = buildEntry(h, pending, global, ctx);
      let at = dataAt;
      const readBlock = () => {
        const b = Buffer.alloc(BLOCK);
        if (readAt(b, at) < BLOCK) throw truncated(label, 'input ends inside a GNU sparse header or map');
        at += BLOCK;
        return b;
      };
      let map: SparseMap | undefined;
      if (entry.type === 'file' && (sparse || h.typeflag === 0x53)) {
        try {
          map = sparseMapAt(h, block, sparse, readBlock, dataSize, ctx);
        } catch (e) {
          throw badSparse(ctx, entry.name, e);
        }
        entry.size = map.realSize;
      }
      const dataFrom = h.typeflag === 0x53 ? at : dataAt;
      if (dataSize > fileSize - dataFrom) {
        throw truncated(label, `"${encodePath(entry.name)}" declares ${dataSize} bytes but only ${Math.max(0, fileSize - dataFrom)} remain`);
      }
      const member: TarMember = { ...entry, headerOffset: pending.headerOffset, dataOffset: dataFrom, dataSize };
      if (map) {
        let next = at;
        const sparseMap = map;
        member.content = sparseChunks(sparseMap, async (n) => {
          const b = Buffer.alloc(n);
          if (readFullSync(fd, b, n, next) < n) throw truncated(label, `"${encodePath(entry.name)}" ends inside its data`);
          next += n;
          return b;
        }, MAX_CHUNK);
      }
      pending = {};
      pos = dataFrom + dataSize + padding(dataSize);
      yield member;
    }
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Tar files as a source

/**
 * Reads a tar file, uncompressed or gzip/xz/zstd/bzip2-compressed (told by magic bytes). The
 * decompressor is stopped when iteration stops early; after the end of the archive the rest of
 * the input is read so a damaged compressed tail is still reported.
 */
export async function* readTarFile(path: string, options: ReadTarOptions = {}): AsyncGenerator<TarEntry> {
  const d = await openDecompressed(path, { label: options.label });
  let finished = false;
  try {
    const it = d.stream[Symbol.asyncIterator]();
    yield* readTar(
      { [Symbol.asyncIterator]: () => it },
      { ...options, label: options.label ?? path, inputSize: d.format === 'tar' ? d.rawSize : undefined },
    );
    await endOfInput(d, it);
    finished = true;
  } finally {
    if (!finished) d.close();
  }
}

/**
 * The SourceReader for tar archives (kind 'tar'). An uncompressed tar file is read in place: its
 * headers are walked with positional reads and each file's content is handed to ingest as a byte
 * range of the tar (stored by BlobStore.putLocal without passing through a parser's buffers).
 * Compressed tars are streamed through their decompressor.
 */
export const tarSource: SourceReader = {
  kind: 'tar',
  read(path: string, _options: SourceReadOptions): Source {
    return readTarSource(path);
  },
};

/**
 * After readTar returned: waits for the decompressor to finish cleanly when readTar read the input
 * to its end, else (it stopped reading a long trailer) stops it.
 */
export async function endOfInput(d: DecompressedInput, it: AsyncIterator<unknown>): Promise<void> {
  const rest = await it.next();
  if (rest.done) await d.done;
  else d.close();
}

async function* readTarSource(path: string): AsyncGenerator<SourceEntry> {
  let count = 0;
  if (!(await isPlainTar(path))) {
    for await (const e of readTarFile(path)) {
      count++;
      yield e;
    }
  } else {
    for (const m of walkTarFile(path)) {
      if (m.type === 'file' && !m.content) m.local = { path, offset: m.dataOffset, length: m.dataSize };
      count++;
      yield m;
    }
  }
  if (count === 0) {
    throw new InputError('E_EMPTY_ARCHIVE', `${path}: the archive holds no entries`, { hint: 'an archive of only zeros or an end-of-archive marker is not an image' });
  }
}

/** True for a non-empty regular file that starts with a tar header (not compressed). */
async function isPlainTar(path: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return false; // the streaming reader reports why
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size === 0) return false;
    const head = Buffer.alloc(Math.min(512, st.size));
    await fh.read(head, 0, head.length, 0);
    return detectFormat(head) === 'tar';
  } finally {
    await fh.close();
  }
}
