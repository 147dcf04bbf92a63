import type { Entry } from '../model/entry.js';
import { dataLength } from '../model/sparse.js';

const MiB = 1024 * 1024;
const BLOCK = 4096;

/** ext4 size and inode count for a tree: content in whole blocks, metadata, journal, headroom. */
export function ext4Size(entries: Iterable<Entry>, extraBytes: number, headroomMiB: number): { mib: number; inodes: number } {
  let blocks = Math.ceil(extraBytes / BLOCK) + 16;
  let count = 16;
  for (const e of entries) {
    count++;
    if (e.type === 'file') {
      // A file with holes occupies its data blocks only (mke2fs -d keeps the holes); its extents cost tree blocks.
      const data = e.sparse ? dataLength(e.sparse) : (e.size ?? 0);
      blocks += Math.ceil(data / BLOCK) + Math.ceil(data / (BLOCK * 340)) + Math.ceil((e.sparse?.length ?? 0) / 340); // data + extent tree
    }
    else if (e.type === 'dir') blocks += 1;
    else if (e.type === 'symlink' && (e.target?.length ?? 0) >= 60) blocks += 1;
  }
  blocks += Math.ceil((count * 40) / BLOCK); // directory entries
  const inodes = Math.max(1024, Math.ceil(count * 1.25) + 256 + headroomMiB * 16);
  const metadata = inodes * 256 + blocks * BLOCK * 0.04 + 4 * MiB /* journal */ + 2 * MiB;
  const mib = Math.ceil((blocks * BLOCK + metadata) / MiB) + headroomMiB;
  return { mib, inodes };
}
