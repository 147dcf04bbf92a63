import { createHash } from 'node:crypto';
import { InputError, IntegrityError, throwIfCancelled } from '../../lib/errors.js';
import type { ContentSource } from './content.js';

/**
 * A deterministic writer for the "newc" cpio format the kernel unpacks as its initramfs. An
 * archive is laid out first (records in order, inode numbers, every header field and so its exact
 * length) and its bytes streamed after: contents are read one file at a time as they are written,
 * so an archive of any size costs the memory of one chunk. The same records always give the same
 * bytes.
 */
export interface CpioMember {
  /** Path without a leading slash ("init", "lib/modules/…"): text, or the name's exact bytes. */
  name: string | Buffer;
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';
  /** Permission bits (incl. setuid/setgid/sticky), no type bits. */
  mode: number;
  uid?: number;
  gid?: number;
  /** Regular files: the content in memory. */
  data?: Buffer;
  /** Regular files: the content, read when the record is written (instead of `data`). */
  content?: ContentSource;
  /** Symlinks: the target (text or bytes). */
  target?: string | Buffer;
  /** Devices. */
  rdevMajor?: number;
  rdevMinor?: number;
  /** This member's time; default: the archive's. */
  mtime?: number;
  /**
   * Hard links: every name of one file is a member with the same inode number and this count;
   * only the last carries the content (GNU cpio's convention; the kernel links the names as it
   * unpacks them and writes the content through the last).
   */
  nlink?: number;
}

/** One record of an archive: a member and its inode number. */
export interface CpioRecord {
  member: CpioMember;
  ino: number;
}

const TYPE_BITS = { file: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 } as const;
/** Every newc header field is 8 hex digits. */
export const CPIO_MAX_FIELD = 0xffffffff;
const HEADER_BYTES = 110;
const ZEROS = Buffer.alloc(4);

const pad4 = (n: number) => (4 - (n % 4)) % 4;
const bytes = (v: string | Buffer) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);

function hex8(n: number, what: string, name: Buffer): string {
  if (!Number.isInteger(n) || n < 0 || n > CPIO_MAX_FIELD) {
    throw new InputError('E_CPIO_LIMIT', `${name.toString('utf8') || 'a member'}: its ${what} (${n}) does not fit a newc cpio header (0 to ${CPIO_MAX_FIELD}; files up to 4 GiB - 1)`, {
      hint: 'build a disk format (raw, qcow2), which has no such limit',
    });
  }
  return n.toString(16).padStart(8, '0');
}

/** Bytes of a member's content (file data or symlink target). */
function bodyLength(m: CpioMember): number {
  if (m.type === 'file') return m.content?.size ?? m.data?.length ?? 0;
  if (m.type === 'symlink') return bytes(m.target ?? '').length;
  return 0;
}

/** A record's header, name and the padding after it. Checks every field before anything is written. */
export function cpioHeader(record: CpioRecord, mtime: number): Buffer {
  const m = record.member;
  const name = Buffer.concat([bytes(m.name), ZEROS.subarray(0, 1)]);
  const nlink = m.nlink ?? (m.type === 'dir' ? 2 : 1);
  // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  const fields: [number, string][] = [
    [record.ino, 'inode number'], [TYPE_BITS[m.type] | (m.mode & 0o7777), 'mode'], [m.uid ?? 0, 'owner'], [m.gid ?? 0, 'group'], [nlink, 'link count'],
    [m.mtime ?? mtime, 'time'], [bodyLength(m), 'size'], [0, 'device'], [0, 'device'], [m.rdevMajor ?? 0, 'device major'], [m.rdevMinor ?? 0, 'device minor'],
    [name.length, 'name length'], [0, 'check'],
  ];
  return rawHeader(fields, name);
}

function rawHeader(fields: [number, string][], name: Buffer): Buffer {
  const header = Buffer.from(`070701${fields.map(([n, what]) => hex8(n, what, name.subarray(0, -1))).join('')}`, 'latin1');
  return Buffer.concat([header, name, ZEROS.subarray(0, pad4(HEADER_BYTES + name.length))]);
}

/** Bytes a record takes in the archive. */
export function cpioRecordLength(m: CpioMember): number {
  const nameLength = bytes(m.name).length + 1;
  const body = bodyLength(m);
  return HEADER_BYTES + nameLength + pad4(HEADER_BYTES + nameLength) + body + pad4(body);
}

const TRAILER_NAME = Buffer.from('TRAILER!!!\0', 'latin1');
/** The record that ends an archive: every field 0 but the link count and the name. */
const TRAILER = rawHeader([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, TRAILER_NAME.length, 0].map((n) => [n, 'field']), TRAILER_NAME);

/** The record that ends an archive. */
export function cpioTrailer(): Buffer {
  return TRAILER;
}

/** Bytes of a whole archive of these records, trailer included, before any content is read. */
export function cpioLength(records: Iterable<CpioRecord>): number {
  let n = TRAILER.length;
  for (const r of records) n += cpioRecordLength(r.member);
  return n;
}

/**
 * The archive's bytes: each record's header, then its content read as it is written, then the
 * trailer. A content that yields other than its announced size fails with an IntegrityError (the
 * length told beforehand would be wrong). Stops with the signal's cancellation error when aborted.
 */
export async function* cpioChunks(records: Iterable<CpioRecord>, mtime: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
  for (const r of records) {
    throwIfCancelled(signal);
    const m = r.member;
    yield cpioHeader(r, mtime);
    let body = 0;
    if (m.type === 'file' && m.content) {
      for await (const chunk of m.content.open()) {
        throwIfCancelled(signal);
        body += chunk.length;
        if (body > m.content.size) break;
        yield chunk;
      }
      if (body !== m.content.size) throw new IntegrityError(`${bytes(m.name).toString('utf8')}: its content has ${body > m.content.size ? 'more than' : 'only'} ${body} bytes, not the ${m.content.size} announced`);
    } else if (m.type === 'file' && m.data) {
      body = m.data.length;
      yield m.data;
    } else if (m.type === 'symlink') {
      const target = bytes(m.target ?? '');
      body = target.length;
      yield target;
    }
    if (pad4(body) > 0) yield ZEROS.subarray(0, pad4(body));
  }
  yield cpioTrailer();
}

/** Orders members by name (byte order of their UTF-16 code units for text names, as writeCpio does). */
export function compareCpioNames(a: { name: string | Buffer }, b: { name: string | Buffer }): number {
  if (typeof a.name === 'string' && typeof b.name === 'string') return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  return Buffer.compare(bytes(a.name), bytes(b.name));
}

/** Members sorted by name, inode numbers from that order. Duplicate names are an error. */
export function sortedCpioRecords(members: readonly CpioMember[]): CpioRecord[] {
  const sorted = [...members].sort(compareCpioNames);
  return sorted.map((m, i) => {
    if (i > 0 && compareCpioNames(sorted[i - 1]!, m) === 0) throw new Error(`cpio: duplicate member ${bytes(m.name).toString('utf8')}`);
    return { member: m, ino: i + 1 };
  });
}

/** One member's whole record, for members whose content is in memory. */
export function cpioRecord(m: CpioMember, ino: number, mtime: number): Buffer {
  if (m.content) throw new Error('cpioRecord: a member with streamed content goes through cpioChunks');
  const body = m.type === 'file' ? (m.data ?? Buffer.alloc(0)) : m.type === 'symlink' ? bytes(m.target ?? '') : Buffer.alloc(0);
  return Buffer.concat([cpioHeader({ member: m, ino }, mtime), body, ZEROS.subarray(0, pad4(body.length))]);
}

/** A whole archive of in-memory members, trailer included (small archives and tests). */
export function writeCpio(members: readonly CpioMember[], mtime: number): Buffer {
  const parts = sortedCpioRecords(members).map((r) => cpioRecord(r.member, r.ino, mtime));
  parts.push(cpioTrailer());
  return Buffer.concat(parts);
}

/**
 * A string equal for equal archives: every header (so names, owners, modes, times, sizes, inode
 * numbers) and the identity of every content, hashed, without reading any content.
 */
export function cpioKey(records: Iterable<CpioRecord>, mtime: number): string {
  const h = createHash('sha256');
  for (const r of records) {
    h.update(cpioHeader(r, mtime));
    const m = r.member;
    if (m.type === 'file') h.update(m.content ? `content ${m.content.id}\n` : `data ${createHash('sha256').update(m.data ?? Buffer.alloc(0)).digest('hex')}\n`);
    else if (m.type === 'symlink') h.update(bytes(m.target ?? ''));
  }
  return h.digest('hex');
}
