/** A newc member as read back by tests (independent of the writer in src/core/bootable/cpio.ts). */
export interface NewcEntry {
  name: string;
  ino: number;
  nlink: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  rdevMajor: number;
  rdevMinor: number;
  /** The name's exact bytes. */
  nameBytes: Buffer;
  data: Buffer;
}

/**
 * Reads every newc archive of a buffer, one after another (as the kernel unpacks an initrd made of
 * concatenated archives): trailers end an archive, zero padding between archives is skipped.
 */
export function readNewcArchives(buf: Buffer): NewcEntry[][] {
  const archives: NewcEntry[][] = [];
  let current: NewcEntry[] = [];
  let pos = 0;
  const align = (n: number) => (n + 3) & ~3;
  while (pos < buf.length) {
    if (buf[pos] === 0) {
      pos++;
      continue;
    }
    const magic = buf.toString('latin1', pos, pos + 6);
    if (magic !== '070701') throw new Error(`newc: bad magic ${JSON.stringify(magic)} at ${pos}`);
    const field = (i: number) => parseInt(buf.toString('latin1', pos + 6 + i * 8, pos + 14 + i * 8), 16);
    const [ino, mode, uid, gid, nlink, mtime, size, rdevMajor, rdevMinor, nameSize] = [field(0), field(1), field(2), field(3), field(4), field(5), field(6), field(9), field(10), field(11)];
    const nameBytes = buf.subarray(pos + 110, pos + 110 + nameSize - 1);
    const name = nameBytes.toString('utf8');
    const dataStart = align(pos + 110 + nameSize);
    const data = buf.subarray(dataStart, dataStart + size);
    pos = align(dataStart + size);
    if (name === 'TRAILER!!!') {
      archives.push(current);
      current = [];
      continue;
    }
    current.push({ name, ino, nlink, mode, uid, gid, mtime, rdevMajor, rdevMinor, nameBytes, data });
  }
  if (current.length > 0) throw new Error('newc: archive without a trailer');
  return archives;
}
