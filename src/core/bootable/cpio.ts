/**
 * A deterministic writer for the "newc" cpio format the kernel unpacks as its initramfs: members
 * are sorted by name, inode numbers come from that order, and every time is the one given, so the
 * same members always give the same bytes.
 */
export interface CpioMember {
  /** Path without a leading slash ("init", "lib/modules/…"). */
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';
  /** Permission bits (incl. setuid/setgid/sticky), no type bits. */
  mode: number;
  uid?: number;
  gid?: number;
  /** Regular files: the content. */
  data?: Buffer;
  /** Symlinks: the target. */
  target?: string;
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

const TYPE_BITS = { file: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 } as const;

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

function record(fields: number[], name: string, data: Buffer): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const header = Buffer.from(`070701${fields.map(hex8).join('')}${hex8(nameBytes.length)}${hex8(0)}`, 'latin1');
  return Buffer.concat([header, nameBytes, Buffer.alloc(pad4(header.length + nameBytes.length)), data, Buffer.alloc(pad4(data.length))]);
}

/** Orders members by name (byte order of their UTF-16 code units, as writeCpio does). */
export function compareCpioNames(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** One member's record with inode number `ino`; for writers that stream large archives member by member. */
export function cpioRecord(m: CpioMember, ino: number, mtime: number): Buffer {
  const data = m.type === 'file' ? (m.data ?? Buffer.alloc(0)) : m.type === 'symlink' ? Buffer.from(m.target ?? '', 'utf8') : Buffer.alloc(0);
  const nlink = m.nlink ?? (m.type === 'dir' ? 2 : 1);
  // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor
  return record([ino, TYPE_BITS[m.type] | (m.mode & 0o7777), m.uid ?? 0, m.gid ?? 0, nlink, m.mtime ?? mtime, data.length, 0, 0, m.rdevMajor ?? 0, m.rdevMinor ?? 0], m.name, data);
}

/** The record that ends an archive. */
export function cpioTrailer(): Buffer {
  return record([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0], 'TRAILER!!!', Buffer.alloc(0));
}

/** The whole archive, trailer included. Duplicate names are an error. */
export function writeCpio(members: readonly CpioMember[], mtime: number): Buffer {
  const sorted = [...members].sort(compareCpioNames);
  const parts: Buffer[] = [];
  sorted.forEach((m, i) => {
    if (i > 0 && sorted[i - 1]!.name === m.name) throw new Error(`cpio: duplicate member ${m.name}`);
    parts.push(cpioRecord(m, i + 1, mtime));
  });
  parts.push(cpioTrailer());
  return Buffer.concat(parts);
}
