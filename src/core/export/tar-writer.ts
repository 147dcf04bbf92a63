import type { Writable } from 'node:stream';
import { InputError, throwIfCancelled } from '../../lib/errors.js';
import { encodePath } from '../../lib/path-codec.js';
import type { EntryType } from '../model/entry.js';
import type { SourceEntry } from '../import/source.js';
import { checkExtents, dataLength, type DataExtent } from '../model/sparse.js';

/**
 * One member to write: a source entry without sockets. Names and link names are raw bytes,
 * written exactly; "" becomes "./" and directories get a trailing slash.
 */
export interface TarWriteEntry extends Omit<SourceEntry, 'type' | 'blob' | 'randomAccess'> {
  type: EntryType;
  /**
   * Files with holes: the data extents (model/sparse.ts). `size` stays the apparent size and
   * `content` streams only the extents' bytes; the member is written in GNU's pax sparse format
   * 1.0, which GNU tar, bsdtar and Go's archive/tar extract with the holes.
   */
  sparse?: DataExtent[];
}

const BLOCK = 512;
/** GNU tar and Python write whole records of 20 blocks; readers expect nothing less. */
const RECORD = 20 * BLOCK;
const MAX_OCTAL_7 = 0o7777777; // 8-byte fields: mode, uid, gid, devmajor, devminor
const MAX_OCTAL_11 = 0o77777777777; // 12-byte fields: size, mtime

const TYPEFLAG: Record<EntryType, number> = {
  file: 0x30,
  hardlink: 0x31,
  symlink: 0x32,
  char: 0x33,
  block: 0x34,
  dir: 0x35,
  fifo: 0x36,
};

function isAscii(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80) return false;
  return true;
}

function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

function writeOctal(h: Buffer, off: number, len: number, value: number): void {
  h.write(value.toString(8).padStart(len - 1, '0'), off, len - 1, 'latin1');
  h[off + len - 1] = 0;
}

/** Splits an ASCII name into ustar prefix (<=155) and name (<=100) at a slash, if possible. */
function splitUstar(name: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (name.length <= 100) return { prefix: Buffer.alloc(0), name };
  if (name.length > 256) return undefined;
  for (let i = Math.min(155, name.length - 2); i > 0; i--) {
    if (name[i] === 0x2f && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
    }
  }
  return undefined;
}

/** "<len> <key>=<value>\n" where len counts itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

function paxTime(sec: number, nsec: number): string {
  if (nsec === 0) return String(sec);
  if (sec >= 0) return `${sec}.${String(nsec).padStart(9, '0')}`;
  // floor representation (sec < 0, 0 < nsec): the value is sec + nsec/1e9 = -( -sec-1 + (1e9-nsec)/1e9 )
  return `-${-sec - 1}.${String(1_000_000_000 - nsec).padStart(9, '0')}`;
}

/** An ASCII stand-in for names that need a pax record (readers without pax support see it). */
function fallbackName(name: Buffer, max: number): Buffer {
  const ascii = Buffer.from(name.toString('latin1').replace(/[^\x20-\x7e]/g, '_'), 'latin1');
  return ascii.length <= max ? ascii : ascii.subarray(ascii.length - max);
}

function header(fields: {
  name: Buffer;
  prefix?: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkName?: Buffer;
  devMajor?: number;
  devMinor?: number;
}): Buffer {
  const h = Buffer.alloc(BLOCK);
  fields.name.copy(h, 0, 0, 100);
  writeOctal(h, 100, 8, fields.mode);
  writeOctal(h, 108, 8, fields.uid);
  writeOctal(h, 116, 8, fields.gid);
  writeOctal(h, 124, 12, fields.size);
  writeOctal(h, 136, 12, fields.mtime);
  h.fill(0x20, 148, 156);
  h[156] = fields.typeflag;
  fields.linkName?.copy(h, 157, 0, 100);
  h.write('ustar\x0000', 257, 8, 'latin1');
  writeOctal(h, 329, 8, fields.devMajor ?? 0);
  writeOctal(h, 337, 8, fields.devMinor ?? 0);
  fields.prefix?.copy(h, 345, 0, 155);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0'), 148, 6, 'latin1');
  h[154] = 0;
  h[155] = 0x20;
  return h;
}

/**
 * The sparse map that starts a pax 1.0 sparse member's data: the number of regions, then offset
 * and length of each, one decimal per line, padded to a block. As GNU tar does, a last region of
 * length 0 at the end of the file closes the map.
 */
function sparseMap(extents: readonly DataExtent[], size: number): Buffer {
  const lines = [String(extents.length + 1)];
  for (const [off, len] of extents) lines.push(String(off), String(len));
  lines.push(String(size), '0');
  const text = Buffer.from(lines.join('\n') + '\n', 'latin1');
  return Buffer.concat([text, Buffer.alloc((BLOCK - (text.length % BLOCK)) % BLOCK)]);
}

function bad(name: Buffer, what: string): InputError {
  return new InputError('E_BAD_ENTRY', `cannot write "${encodePath(name)}" to tar: ${what}`);
}

/** The header blocks (pax extended header first when needed) for one entry. */
export function encodeHeaders(e: TarWriteEntry): Buffer {
  let name = e.name;
  if (e.type === 'dir') {
    if (name.length === 0) name = Buffer.from('./');
    else if (name[name.length - 1] !== 0x2f) name = Buffer.concat([name, Buffer.from('/')]);
  }
  if (name.length === 0) throw bad(name, 'empty name');
  if (name.includes(0)) throw bad(name, 'name contains a NUL byte');
  const link = e.type === 'symlink' || e.type === 'hardlink' ? e.linkName : undefined;
  if ((e.type === 'symlink' || e.type === 'hardlink') && (!link || link.length === 0)) throw bad(name, `${e.type} without a target`);
  if (link?.includes(0)) throw bad(name, 'link target contains a NUL byte');
  const realSize = e.type === 'file' ? (e.size ?? 0) : 0;
  if (!Number.isSafeInteger(realSize) || realSize < 0) throw bad(name, `invalid size ${realSize}`);
  const sparse = e.type === 'file' ? e.sparse : undefined;
  const mapProblem = sparse && checkExtents(sparse, realSize);
  if (mapProblem) throw bad(name, `invalid sparse map: ${mapProblem}`);
  // A sparse member's data is its map and then the data of its extents.
  const size = sparse ? sparseMap(sparse, realSize).length + dataLength(sparse) : realSize;
  const nsec = e.mtimeNsec ?? 0;
  if (!Number.isInteger(e.mtime) || !Number.isInteger(nsec) || nsec < 0 || nsec > 999_999_999) throw bad(name, 'invalid mtime');
  for (const [n, v] of [['uid', e.uid], ['gid', e.gid], ['mode', e.mode]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw bad(name, `invalid ${n} ${v}`);
  }

  const records: Buffer[] = [];
  const record = (key: string, value: Buffer | string) => records.push(paxRecord(key, typeof value === 'string' ? Buffer.from(value, 'utf8') : value));

  const realName = name;
  if (sparse) {
    // The member's own name, for readers without sparse support: GNU tar's "<dir>/GNUSparseFile.<n>/<name>".
    const slash = name.lastIndexOf(0x2f);
    name = Buffer.concat([name.subarray(0, slash + 1), Buffer.from('GNUSparseFile.0/'), name.subarray(slash + 1)]);
  }
  const split = isAscii(name) ? splitUstar(name) : undefined;
  const linkFits = link === undefined || (isAscii(link) && link.length <= 100);
  if ((!split && !isUtf8(realName)) || (!linkFits && !isUtf8(link!))) record('hdrcharset', 'BINARY');
  if (!split) record('path', name);
  if (sparse) {
    record('GNU.sparse.major', '1');
    record('GNU.sparse.minor', '0');
    record('GNU.sparse.name', realName);
    record('GNU.sparse.realsize', String(realSize));
  }
  if (!linkFits) record('linkpath', link!);
  if (size > MAX_OCTAL_11) record('size', String(size));
  if (e.uid > MAX_OCTAL_7) record('uid', String(e.uid));
  if (e.gid > MAX_OCTAL_7) record('gid', String(e.gid));
  const mtimeFits = e.mtime >= 0 && e.mtime <= MAX_OCTAL_11;
  if (nsec !== 0 || !mtimeFits) record('mtime', paxTime(e.mtime, nsec));
  const devMajor = e.devMajor ?? 0;
  const devMinor = e.devMinor ?? 0;
  const devices = e.type === 'char' || e.type === 'block';
  if (devices && devMajor > MAX_OCTAL_7) record('SCHILY.devmajor', String(devMajor));
  if (devices && devMinor > MAX_OCTAL_7) record('SCHILY.devminor', String(devMinor));
  const xattrNames = Object.keys(e.xattrs ?? {}).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const x of xattrNames) {
    if (x.includes('=') || x.includes('\n') || x.includes('\0')) throw bad(name, `xattr name "${x}" cannot be stored in a pax header`);
    record(`SCHILY.xattr.${x}`, e.xattrs![x]!);
  }

  const mtimeField = mtimeFits ? e.mtime : e.mtime < 0 ? 0 : MAX_OCTAL_11;
  const main = header({
    name: split ? split.name : fallbackName(name, 100),
    prefix: split?.prefix,
    mode: e.mode & 0o7777,
    uid: e.uid > MAX_OCTAL_7 ? 0 : e.uid,
    gid: e.gid > MAX_OCTAL_7 ? 0 : e.gid,
    size: size > MAX_OCTAL_11 ? 0 : size,
    mtime: mtimeField,
    typeflag: TYPEFLAG[e.type],
    linkName: link === undefined ? undefined : linkFits ? link : fallbackName(link, 100),
    devMajor: devices && devMajor <= MAX_OCTAL_7 ? devMajor : 0,
    devMinor: devices && devMinor <= MAX_OCTAL_7 ? devMinor : 0,
  });
  if (records.length === 0) return main;

  const pax = Buffer.concat(records);
  const base = name.subarray(name.lastIndexOf(0x2f, name.length - 2) + 1);
  const paxHeader = header({
    name: fallbackName(Buffer.concat([Buffer.from('PaxHeaders/'), base]), 100),
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: pax.length,
    mtime: mtimeField,
    typeflag: 0x78, // 'x'
  });
  const pad = (BLOCK - (pax.length % BLOCK)) % BLOCK;
  return Buffer.concat([paxHeader, pax, Buffer.alloc(pad), main]);
}

/**
 * Writes entries as a POSIX pax tar archive that GNU tar, bsdtar and Python's tarfile read:
 * ustar headers, with a pax extended header only where ustar cannot hold a value (long or
 * non-ASCII names with hdrcharset=BINARY when not UTF-8, nanosecond or out-of-range times, large
 * ids and sizes, xattrs as raw SCHILY.xattr values). The output depends on the entries only, so
 * the same entries give the same bytes. `out` is not ended: the caller ends it. Aborting the
 * signal stops it before its next write, with the signal's cancellation error.
 */
export async function writeTar(entries: AsyncIterable<TarWriteEntry> | Iterable<TarWriteEntry>, out: Writable, signal?: AbortSignal): Promise<void> {
  let failed: Error | undefined;
  const onError = (e: Error) => {
    failed ??= e;
  };
  out.on('error', onError);
  let written = 0;
  const write = async (b: Buffer) => {
    if (failed) throw failed;
    throwIfCancelled(signal);
    written += b.length;
    if (!out.write(b)) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          out.off('drain', done);
          out.off('error', fail);
          out.off('close', done);
          resolve();
        };
        const fail = (e: Error) => {
          out.off('drain', done);
          out.off('close', done);
          reject(e);
        };
        out.on('drain', done);
        out.on('error', fail);
        out.on('close', done);
      });
      if (failed) throw failed;
    }
  };
  try {
    for await (const e of entries) {
      await write(encodeHeaders(e));
      if (e.type !== 'file') continue;
      const map = e.sparse && sparseMap(e.sparse, e.size ?? 0);
      if (map) await write(map);
      const size = e.sparse ? dataLength(e.sparse) : (e.size ?? 0);
      let got = 0;
      if (e.content) {
        for await (const chunk of e.content as AsyncIterable<Buffer>) {
          got += chunk.length;
          if (got > size) throw new InputError('E_SIZE_MISMATCH', `"${encodePath(e.name)}" has more content than its size ${size}`);
          await write(chunk);
        }
      }
      if (got !== size) throw new InputError('E_SIZE_MISMATCH', `"${encodePath(e.name)}" has ${got} bytes of content, not its size ${size}`);
      const pad = (BLOCK - ((size + (map?.length ?? 0)) % BLOCK)) % BLOCK;
      if (pad) await write(Buffer.alloc(pad));
    }
    const end = 2 * BLOCK + ((RECORD - ((written + 2 * BLOCK) % RECORD)) % RECORD);
    await write(Buffer.alloc(end));
  } finally {
    out.off('error', onError);
  }
}
