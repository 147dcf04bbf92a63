import { InputError } from '../../../lib/errors.js';
import { isHole, type ContentChunk, type Hole } from '../../model/sparse.js';
import type { SourceEntry } from '../source.js';
import { LruCache, type BlockDevice } from './block-device.js';

/**
 * A read-only ext2/ext3/ext4 reader that works on the bytes of a filesystem (a partition of a
 * disk image), so images can be imported without loop devices or root. It follows the on-disk
 * format as documented in the kernel's Documentation/filesystems/ext4 and e2fsprogs: extent trees
 * and legacy indirect blocks, inline data, linear reads of (htree) directories, in-inode and
 * block xattrs. The journal is not replayed. Checksums are not verified; every pointer is
 * bounds-checked instead, so damage gives E_CORRUPT_FILESYSTEM, never a hang or a crash.
 */

const SUPERBLOCK_OFFSET = 1024;
const EXT_MAGIC = 0xef53;
const ROOT_INO = 2;
const CHUNK = 1 << 20;
const MAX_DEPTH = 5;

const COMPAT_HAS_JOURNAL = 0x4;
const COMPAT_SPARSE_SUPER2 = 0x200;
const RO_COMPAT_SPARSE_SUPER = 0x1;
const RO_COMPAT_GDT_CSUM = 0x10;
const RO_COMPAT_METADATA_CSUM = 0x400;

const INCOMPAT = {
  compression: 0x1,
  filetype: 0x2,
  recover: 0x4,
  journalDev: 0x8,
  metaBg: 0x10,
  extents: 0x40,
  bit64: 0x80,
  mmp: 0x100,
  flexBg: 0x200,
  eaInode: 0x400,
  dirdata: 0x1000,
  csumSeed: 0x2000,
  largedir: 0x4000,
  inlineData: 0x8000,
  encrypt: 0x10000,
  casefold: 0x20000,
} as const;

const SUPPORTED_INCOMPAT =
  INCOMPAT.filetype |
  INCOMPAT.recover |
  INCOMPAT.metaBg |
  INCOMPAT.extents |
  INCOMPAT.bit64 |
  INCOMPAT.mmp |
  INCOMPAT.flexBg |
  INCOMPAT.eaInode |
  INCOMPAT.csumSeed |
  INCOMPAT.largedir |
  INCOMPAT.inlineData |
  INCOMPAT.casefold;

const INCOMPAT_NAMES: Record<number, string> = {
  [INCOMPAT.compression]: 'compression',
  [INCOMPAT.journalDev]: 'journal_dev (this is an external journal, not a filesystem)',
  [INCOMPAT.dirdata]: 'dirdata',
  [INCOMPAT.encrypt]: 'encrypt',
};

const FL_ENCRYPT = 0x800;
const FL_EXTENTS = 0x80000;
const FL_EA_INODE = 0x200000;
const FL_INLINE_DATA = 0x10000000;

const EXTENT_MAGIC = 0xf30a;
const XATTR_MAGIC = 0xea020000;
const XATTR_SIZE_MAX = 65536;

const XATTR_PREFIXES: Record<number, string> = {
  0: '',
  1: 'user.',
  2: 'system.posix_acl_access',
  3: 'system.posix_acl_default',
  4: 'trusted.',
  6: 'security.',
  7: 'system.',
  8: 'system.richacl',
};

export type ExtFileType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

const MODE_TYPES: Record<number, ExtFileType> = {
  0x1000: 'fifo',
  0x2000: 'char',
  0x4000: 'dir',
  0x6000: 'block',
  0x8000: 'file',
  0xa000: 'symlink',
  0xc000: 'socket',
};

export interface Inode {
  ino: number;
  type: ExtFileType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  flags: number;
  mtime: number;
  mtimeNsec: number;
  /** The 60 bytes of i_block: block map, extent root, inline data or a fast symlink. */
  block: Buffer;
  fileAcl: number;
  /** The whole on-disk inode, for in-inode xattrs. */
  raw: Buffer;
  /** Offset in `raw` where the in-inode xattr area starts (0 when there is none). */
  xattrStart: number;
}

export interface DirEntry {
  name: Buffer;
  ino: number;
}

interface Run {
  logical: number;
  physical: number;
  count: number;
  /** Uninitialized extent: allocated but reads as zeros. */
  zero: boolean;
}

/** True when an ext2/3/4 superblock magic sits 1024 bytes into the region. */
export async function probeExt(dev: BlockDevice, offset: number, size: number): Promise<boolean> {
  if (size < SUPERBLOCK_OFFSET + 1024 || offset + SUPERBLOCK_OFFSET + 1024 > dev.size) return false;
  const sb = await dev.read(offset + SUPERBLOCK_OFFSET, 1024);
  return sb.readUInt16LE(0x38) === EXT_MAGIC && (sb.readUInt32LE(0x60) & INCOMPAT.journalDev) === 0;
}

/** ext2, ext3 or ext4, by the features the superblock enables (as blkid names them). */
export function extKind(sb: Buffer): 'ext2' | 'ext3' | 'ext4' {
  const ext4Only =
    INCOMPAT.extents | INCOMPAT.bit64 | INCOMPAT.flexBg | INCOMPAT.inlineData | INCOMPAT.eaInode | INCOMPAT.largedir | INCOMPAT.casefold | INCOMPAT.csumSeed | INCOMPAT.mmp;
  if (sb.readUInt32LE(0x60) & ext4Only || sb.readUInt32LE(0x64) & ~0x7) return 'ext4';
  return sb.readUInt32LE(0x5c) & COMPAT_HAS_JOURNAL ? 'ext3' : 'ext2';
}

function isPowerOf(n: number, base: number): boolean {
  let x = base;
  while (x < n) x *= base;
  return x === n;
}

/**
 * Blocks already used, as a bitmap allocated in chunks only where blocks are used: memory grows
 * with what a walk touches, never with the filesystem's size.
 */
class BlockSet {
  private readonly chunks = new Map<number, Uint8Array>();

  /** Marks `count` blocks from `first`; returns the first one already marked, or -1. */
  claim(first: number, count: number): number {
    for (let b = first; b < first + count; b++) {
      const key = Math.floor(b / 65536);
      let chunk = this.chunks.get(key);
      if (!chunk) this.chunks.set(key, (chunk = new Uint8Array(8192)));
      const bit = b % 65536;
      const mask = 1 << (bit & 7);
      if (chunk[bit >> 3]! & mask) return b;
      chunk[bit >> 3]! |= mask;
    }
    return -1;
  }
}

/** Entries of one directory at most (each costs about a hundred bytes in memory). */
const MAX_DIR_ENTRIES = 1_000_000;

export class ExtFilesystem {
  readonly blockSize: number;
  readonly blocksCount: number;
  readonly inodesCount: number;
  readonly inodeSize: number;
  readonly kind: 'ext2' | 'ext3' | 'ext4';
  readonly volumeName: string;
  /** Conditions worth telling the user that do not stop the import. */
  readonly warnings: string[] = [];
  private readonly firstDataBlock: number;
  private readonly blocksPerGroup: number;
  private readonly inodesPerGroup: number;
  private readonly groupCount: number;
  private readonly descSize: number;
  private readonly incompat: number;
  private readonly compat: number;
  private readonly roCompat: number;
  private readonly firstMetaBg: number;
  private readonly backupBgs: [number, number];
  private readonly cache = new LruCache<number, Buffer>(512);
  /**
   * During walk(): every block of file data, directories and block maps, so none is used twice (a
   * file's block map pointing at itself or at another file's blocks cannot multiply the input).
   */
  private used: BlockSet | undefined;

  private constructor(
    private readonly dev: BlockDevice,
    private readonly offset: number,
    private readonly label: string,
    sb: Buffer,
  ) {
    this.incompat = sb.readUInt32LE(0x60);
    this.compat = sb.readUInt32LE(0x5c);
    this.roCompat = sb.readUInt32LE(0x64);
    const rev = sb.readUInt32LE(0x4c);
    const logBlock = sb.readUInt32LE(0x18);
    if (logBlock > 6) throw this.corrupt(`block size 2^${10 + logBlock} is out of range`);
    this.blockSize = 1024 << logBlock;
    const is64 = (this.incompat & INCOMPAT.bit64) !== 0;
    this.blocksCount = sb.readUInt32LE(0x4) + (is64 ? sb.readUInt32LE(0x150) * 0x1_0000_0000 : 0);
    this.inodesCount = sb.readUInt32LE(0x0);
    this.firstDataBlock = sb.readUInt32LE(0x14);
    this.blocksPerGroup = sb.readUInt32LE(0x20);
    this.inodesPerGroup = sb.readUInt32LE(0x28);
    this.inodeSize = rev === 0 ? 128 : sb.readUInt16LE(0x58);
    this.descSize = is64 ? sb.readUInt16LE(0xfe) : 32;
    this.firstMetaBg = sb.readUInt32LE(0x104);
    this.backupBgs = [sb.readUInt32LE(0x24c), sb.readUInt32LE(0x250)];
    const nameEnd = sb.subarray(0x78, 0x88).indexOf(0);
    this.volumeName = sb.subarray(0x78, nameEnd < 0 ? 0x88 : 0x78 + nameEnd).toString('utf8');
    if (this.blocksPerGroup === 0) throw this.corrupt(`blocks per group ${this.blocksPerGroup} is invalid`);
    if (this.inodesPerGroup === 0 || this.inodesPerGroup > 8 * this.blockSize) throw this.corrupt(`inodes per group ${this.inodesPerGroup} is invalid`);
    if (this.inodeSize < 128 || this.inodeSize > this.blockSize || (this.inodeSize & (this.inodeSize - 1)) !== 0) {
      throw this.corrupt(`inode size ${this.inodeSize} is invalid`);
    }
    if (this.descSize < 32 || this.descSize > 1024 || (this.descSize & (this.descSize - 1)) !== 0 || (is64 && this.descSize < 64)) {
      throw this.corrupt(`group descriptor size ${this.descSize} is invalid`);
    }
    if (this.firstDataBlock >= this.blocksCount) throw this.corrupt('first data block lies beyond the end of the filesystem');
    this.groupCount = Math.ceil((this.blocksCount - this.firstDataBlock) / this.blocksPerGroup);
    if (this.inodesCount > this.groupCount * this.inodesPerGroup) throw this.corrupt(`inode count ${this.inodesCount} does not fit ${this.groupCount} groups`);
    this.kind = extKind(sb);
  }

  /**
   * Opens the filesystem that starts `offset` bytes into the device and spans `size` bytes.
   * `label` names it in messages ("disk.img partition 2").
   */
  static async open(dev: BlockDevice, offset: number, size: number, label: string): Promise<ExtFilesystem> {
    if (offset + SUPERBLOCK_OFFSET + 1024 > dev.size || size < SUPERBLOCK_OFFSET + 1024) {
      throw new InputError('E_CORRUPT_FILESYSTEM', `${label}: too small to hold an ext filesystem`);
    }
    const sb = await dev.read(offset + SUPERBLOCK_OFFSET, 1024);
    if (sb.readUInt16LE(0x38) !== EXT_MAGIC) throw new InputError('E_UNSUPPORTED_DISK', `${label}: no ext2/3/4 superblock (magic 0xEF53)`);
    const incompat = sb.readUInt32LE(0x60);
    const unsupported = incompat & ~SUPPORTED_INCOMPAT;
    if (unsupported) {
      const names: string[] = [];
      for (let bit = 1; bit !== 0 && bit <= 0x80000000; bit = (bit << 1) >>> 0) {
        if (unsupported & bit) names.push(INCOMPAT_NAMES[bit] ?? `0x${bit.toString(16)}`);
      }
      throw new InputError('E_UNSUPPORTED_FILESYSTEM', `${label}: ext filesystem uses features aim cannot read: ${names.join(', ')}`, {
        hint: incompat & INCOMPAT.encrypt ? 'encrypted directories cannot be imported from the image; import the unlocked tree as a directory instead' : undefined,
      });
    }
    const fs = new ExtFilesystem(dev, offset, label, sb);
    if (fs.blocksCount * fs.blockSize > size) {
      throw fs.corrupt(`the filesystem claims ${fs.blocksCount * fs.blockSize} bytes but its partition holds only ${size} (truncated image?)`);
    }
    if (incompat & INCOMPAT.recover) {
      fs.warnings.push(`${label}: the filesystem journal needs recovery (it was not cleanly unmounted); read without replaying it, recent changes may be missing`);
    }
    if (sb.readUInt16LE(0x3a) & 0x2) fs.warnings.push(`${label}: the filesystem is marked as having errors; run e2fsck on the image`);
    return fs;
  }

  private corrupt(what: string): InputError {
    return new InputError('E_CORRUPT_FILESYSTEM', `${this.label}: corrupt ${this.kind ?? 'ext'} filesystem: ${what}`, {
      hint: 'check the filesystem with e2fsck -fn on the partition or image',
    });
  }

  private checkBlocks(block: number, count: number, what: string): void {
    if (!Number.isSafeInteger(block) || block < 0 || count < 0 || block + count > this.blocksCount) {
      throw this.corrupt(`${what} points at block ${block}+${count}, beyond the ${this.blocksCount}-block filesystem`);
    }
  }

  /** Checks blocks and, during a walk, that no block is used a second time. */
  private claimBlocks(block: number, count: number, what: string, claim: boolean): void {
    this.checkBlocks(block, count, what);
    const again = claim ? (this.used?.claim(block, count) ?? -1) : -1;
    if (again >= 0) throw this.corrupt(`${what} uses block ${again}, which is already used (a loop or a shared block)`);
  }

  private async readBlocks(block: number, count: number, what: string): Promise<Buffer> {
    this.checkBlocks(block, count, what);
    return this.dev.read(this.offset + block * this.blockSize, count * this.blockSize);
  }

  /** A metadata block through the cache (group descriptors, inode tables, tree nodes, xattr blocks). */
  private async metaBlock(block: number, what: string): Promise<Buffer> {
    const hit = this.cache.get(block);
    if (hit) return hit;
    const buf = await this.readBlocks(block, 1, what);
    this.cache.set(block, buf);
    return buf;
  }

  private hasSuper(group: number): boolean {
    if (group === 0) return true;
    if (this.compat & COMPAT_SPARSE_SUPER2) return group === this.backupBgs[0] || group === this.backupBgs[1];
    if (group <= 1 || !(this.roCompat & RO_COMPAT_SPARSE_SUPER)) return true;
    if ((group & 1) === 0) return false;
    return isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7);
  }

  private async groupDescriptor(group: number): Promise<Buffer> {
    const perBlock = this.blockSize / this.descSize;
    const descBlock = Math.floor(group / perBlock);
    let block: number;
    if (!(this.incompat & INCOMPAT.metaBg) || descBlock < this.firstMetaBg) {
      block = this.firstDataBlock + 1 + descBlock;
    } else {
      // meta_bg: each run of `perBlock` groups keeps its descriptor block in its first group.
      const first = descBlock * perBlock;
      block = this.firstDataBlock + first * this.blocksPerGroup + (this.hasSuper(first) ? 1 : 0);
    }
    const buf = await this.metaBlock(block, `group descriptor block ${descBlock}`);
    const at = (group % perBlock) * this.descSize;
    return buf.subarray(at, at + this.descSize);
  }

  async readInode(ino: number): Promise<Inode> {
    if (!Number.isInteger(ino) || ino < 1 || ino > this.inodesCount) throw this.corrupt(`inode number ${ino} is out of range (1..${this.inodesCount})`);
    const group = Math.floor((ino - 1) / this.inodesPerGroup);
    const index = (ino - 1) % this.inodesPerGroup;
    const gd = await this.groupDescriptor(group);
    const big = this.descSize >= 64;
    const table = gd.readUInt32LE(0x8) + (big ? gd.readUInt32LE(0x28) * 0x1_0000_0000 : 0);
    if (this.roCompat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM)) {
      const flags = gd.readUInt16LE(0x12);
      const unused = gd.readUInt16LE(0x1c) + (big ? gd.readUInt16LE(0x32) * 0x10000 : 0);
      if (flags & 0x1 || index >= this.inodesPerGroup - unused) throw this.corrupt(`a directory entry points at unused inode ${ino}`);
    }
    const byteInTable = index * this.inodeSize;
    const block = table + Math.floor(byteInTable / this.blockSize);
    const tableBlock = await this.metaBlock(block, `inode table of group ${group}`);
    const at = byteInTable % this.blockSize;
    const raw = Buffer.from(tableBlock.subarray(at, at + this.inodeSize));
    const modeRaw = raw.readUInt16LE(0);
    const size = raw.readUInt32LE(0x4) + raw.readUInt32LE(0x6c) * 0x1_0000_0000;
    // Logical block numbers are 32-bit, which bounds every file (16 TiB with 4 KiB blocks).
    if (!Number.isSafeInteger(size) || size > 0x1_0000_0000 * this.blockSize) throw this.corrupt(`inode ${ino} has impossible size ${size}`);
    const type = MODE_TYPES[modeRaw & 0xf000];
    if (!type) throw this.corrupt(`inode ${ino} has invalid mode 0${modeRaw.toString(8)} (unused or damaged inode)`);
    const flags = raw.readUInt32LE(0x20);
    if (flags & FL_ENCRYPT) throw new InputError('E_UNSUPPORTED_FILESYSTEM', `${this.label}: inode ${ino} is encrypted; aim cannot read encrypted files`);
    let mtime = raw.readInt32LE(0x10);
    let mtimeNsec = 0;
    let xattrStart = 0;
    if (this.inodeSize > 128) {
      const extra = raw.readUInt16LE(0x80);
      if (extra % 4 !== 0 || 128 + extra > this.inodeSize) throw this.corrupt(`inode ${ino} has invalid extra size ${extra}`);
      if (extra >= 0x8c - 0x80) {
        const mx = raw.readUInt32LE(0x88);
        mtime += (mx & 3) * 0x1_0000_0000;
        mtimeNsec = mx >>> 2;
        if (mtimeNsec > 999_999_999) mtimeNsec = 0;
      }
      if (128 + extra + 4 <= this.inodeSize) xattrStart = 128 + extra;
    }
    return {
      ino,
      type,
      mode: modeRaw & 0o7777,
      uid: (raw.readUInt16LE(0x2) | (raw.readUInt16LE(0x78) << 16)) >>> 0,
      gid: (raw.readUInt16LE(0x18) | (raw.readUInt16LE(0x7a) << 16)) >>> 0,
      size,
      links: raw.readUInt16LE(0x1a),
      flags,
      mtime,
      mtimeNsec,
      block: raw.subarray(0x28, 0x28 + 60),
      fileAcl: raw.readUInt32LE(0x68) + raw.readUInt16LE(0x76) * 0x1_0000_0000,
      raw,
      xattrStart,
    };
  }

  // ---- block mapping ----

  /** The inode's data blocks in logical order; gaps between runs are holes. */
  private runs(inode: Inode, claim = true): AsyncGenerator<Run> {
    if (inode.flags & FL_EXTENTS) return this.extentRuns(inode, claim);
    return this.indirectRuns(inode, claim);
  }

  private async *extentRuns(inode: Inode, claim: boolean): AsyncGenerator<Run> {
    // Each index level must be exactly one less deep than its parent, so a tree cannot loop.
    const walk = async function* (this: ExtFilesystem, node: Buffer, expectDepth: number | undefined, where: string): AsyncGenerator<Run> {
      if (node.readUInt16LE(0) !== EXTENT_MAGIC) throw this.corrupt(`${where}: bad extent header magic 0x${node.readUInt16LE(0).toString(16)}`);
      const entries = node.readUInt16LE(2);
      const max = node.readUInt16LE(4);
      const depth = node.readUInt16LE(6);
      if (entries > max || 12 + max * 12 > node.length) throw this.corrupt(`${where}: extent node claims ${entries}/${max} entries`);
      if (depth > MAX_DEPTH || (expectDepth !== undefined && depth !== expectDepth)) throw this.corrupt(`${where}: extent tree depth ${depth} is invalid`);
      for (let i = 0; i < entries; i++) {
        const e = 12 + i * 12;
        const logical = node.readUInt32LE(e);
        if (depth === 0) {
          let len = node.readUInt16LE(e + 4);
          const zero = len > 32768;
          if (zero) len -= 32768;
          const physical = node.readUInt16LE(e + 6) * 0x1_0000_0000 + node.readUInt32LE(e + 8);
          if (len === 0) continue;
          this.claimBlocks(physical, len, where, claim);
          yield { logical, physical, count: len, zero };
        } else {
          const child = node.readUInt32LE(e + 4) + node.readUInt16LE(e + 8) * 0x1_0000_0000;
          this.claimBlocks(child, 1, `${where} extent index`, claim);
          const buf = await this.metaBlock(child, `${where} extent index`);
          yield* walk.call(this, buf, depth - 1, where);
        }
      }
    };
    yield* walk.call(this, inode.block, undefined, `inode ${inode.ino}`);
  }

  private async *indirectRuns(inode: Inode, claim: boolean): AsyncGenerator<Run> {
    const per = this.blockSize / 4;
    const limit = Math.ceil(inode.size / this.blockSize);
    let pending: Run | undefined;
    const where = `inode ${inode.ino}`;
    // Collects single blocks into contiguous runs.
    const add = (logical: number, physical: number): Run | undefined => {
      this.claimBlocks(physical, 1, where, claim);
      if (pending && pending.logical + pending.count === logical && pending.physical + pending.count === physical) {
        pending.count += 1;
        return undefined;
      }
      const done = pending;
      pending = { logical, physical, count: 1, zero: false };
      return done;
    };
    const tree = async function* (this: ExtFilesystem, ptr: number, level: number, first: number): AsyncGenerator<Run> {
      if (ptr === 0 || first >= limit) return;
      if (level === 0) {
        const r = add(first, ptr);
        if (r) yield r;
        return;
      }
      this.claimBlocks(ptr, 1, `${where} indirect block`, claim);
      const table = await this.metaBlock(ptr, `${where} indirect block`);
      const span = per ** (level - 1);
      for (let i = 0; i < per && first + i * span < limit; i++) {
        yield* tree.call(this, table.readUInt32LE(i * 4), level - 1, first + i * span);
      }
    };
    for (let i = 0; i < 12; i++) yield* tree.call(this, inode.block.readUInt32LE(i * 4), 0, i);
    yield* tree.call(this, inode.block.readUInt32LE(48), 1, 12);
    yield* tree.call(this, inode.block.readUInt32LE(52), 2, 12 + per);
    yield* tree.call(this, inode.block.readUInt32LE(56), 3, 12 + per + per * per);
    if (pending) yield pending;
  }

  // ---- contents ----

  /** Inline data: the 60 bytes of i_block followed by the "system.data" xattr. */
  private async inlineData(inode: Inode): Promise<Buffer> {
    const { data } = await this.xattrsOf(inode, true);
    return Buffer.concat([inode.block, data ?? Buffer.alloc(0)]);
  }

  /**
   * The content of a regular file (or slow symlink, or xattr inode), streamed a run at a time in
   * chunks of at most 1 MiB. Holes and uninitialized extents are handed on as holes, never as
   * zeros read or made: a file claiming a terabyte of nothing costs nothing.
   */
  async *content(inode: Inode, claim = true): AsyncGenerator<ContentChunk> {
    const size = inode.size;
    if (inode.flags & FL_INLINE_DATA) {
      const data = await this.inlineData(inode);
      if (data.length < size) throw this.corrupt(`inode ${inode.ino}: inline data holds ${data.length} of ${size} bytes`);
      if (size > 0) yield data.subarray(0, size);
      return;
    }
    const bs = this.blockSize;
    const nBlocks = Math.ceil(size / bs);
    let left = size;
    const hole = (bytes: number): Hole | undefined => {
      const n = Math.min(bytes, left);
      left -= n;
      return n > 0 ? { hole: n } : undefined;
    };
    let pos = 0;
    for await (const run of this.runs(inode, claim)) {
      if (run.logical < pos) throw this.corrupt(`inode ${inode.ino}: extents overlap or are out of order at block ${run.logical}`);
      if (run.logical >= nBlocks) break; // preallocated beyond the end of file
      const gap = hole((run.logical - pos) * bs);
      if (gap) yield gap;
      const count = Math.min(run.count, nBlocks - run.logical);
      if (run.zero) {
        const h = hole(count * bs);
        if (h) yield h;
      } else {
        const perChunk = CHUNK / bs;
        for (let done = 0; done < count; done += perChunk) {
          const n = Math.min(perChunk, count - done);
          const buf = await this.readBlocks(run.physical + done, n, `inode ${inode.ino}`);
          const take = Math.min(buf.length, left);
          left -= take;
          yield take === buf.length ? buf : buf.subarray(0, take);
        }
      }
      pos = run.logical + count;
    }
    const tail = hole(left);
    if (tail) yield tail;
  }

  private async collect(inode: Inode, max: number, claim = true): Promise<Buffer> {
    if (inode.size > max) throw this.corrupt(`inode ${inode.ino} is ${inode.size} bytes, more than the ${max} expected`);
    const chunks: Buffer[] = [];
    for await (const c of this.content(inode, claim)) chunks.push(isHole(c) ? Buffer.alloc(c.hole) : c);
    return Buffer.concat(chunks);
  }

  async readLink(inode: Inode): Promise<Buffer> {
    if (inode.size === 0 || inode.size > 4096) throw this.corrupt(`symlink inode ${inode.ino} has length ${inode.size}`);
    // A fast symlink keeps its target in i_block (the kernel's ext4_inode_is_fast_symlink).
    let fast: boolean;
    if (inode.flags & FL_INLINE_DATA) fast = false;
    else if (this.incompat & INCOMPAT.eaInode) {
      const blocks512 = inode.raw.readUInt32LE(0x1c) + inode.raw.readUInt16LE(0x74) * 0x1_0000_0000;
      fast = blocks512 - (inode.fileAcl ? this.blockSize / 512 : 0) === 0;
    } else fast = inode.size < 60;
    if (fast) {
      if (inode.size > 60) throw this.corrupt(`fast symlink inode ${inode.ino} has length ${inode.size}`);
      return Buffer.from(inode.block.subarray(0, inode.size));
    }
    return this.collect(inode, 4096);
  }

  // ---- directories ----

  private decodeRecLen(raw: number): number {
    if (this.blockSize < 65536) return raw;
    if (raw === 65535 || raw === 0) return 65536;
    return (raw & 65532) | ((raw & 3) << 16);
  }

  private parseDirents(buf: Buffer, start: number, end: number, out: DirEntry[], where: string): void {
    const hasType = (this.incompat & INCOMPAT.filetype) !== 0;
    let off = start;
    while (off < end) {
      if (off + 8 > end) throw this.corrupt(`${where}: directory entry at ${off} is cut off`);
      const ino = buf.readUInt32LE(off);
      const recLen = this.decodeRecLen(buf.readUInt16LE(off + 4));
      const nameLen = hasType ? buf[off + 6]! : buf.readUInt16LE(off + 6) & 0xff;
      if (recLen < 8 || recLen % 4 !== 0 || off + recLen > end) throw this.corrupt(`${where}: directory record length ${recLen} at ${off} is invalid`);
      if (ino !== 0) {
        if (8 + nameLen > recLen || nameLen === 0) throw this.corrupt(`${where}: directory entry name length ${nameLen} does not fit`);
        const name = Buffer.from(buf.subarray(off + 8, off + 8 + nameLen));
        if (ino > this.inodesCount) throw this.corrupt(`${where}: directory entry points at inode ${ino}, beyond ${this.inodesCount}`);
        if (name.includes(0x2f) || name.includes(0)) throw this.corrupt(`${where}: directory entry name contains '/' or NUL`);
        const dots = (nameLen === 1 && name[0] === 0x2e) || (nameLen === 2 && name[0] === 0x2e && name[1] === 0x2e);
        if (!dots) out.push({ name, ino });
      }
      off += recLen;
    }
  }

  /** The entries of a directory except "." and "..", in on-disk order. */
  async listDir(inode: Inode): Promise<DirEntry[]> {
    const out: DirEntry[] = [];
    const where = `directory inode ${inode.ino}`;
    if (inode.flags & FL_INLINE_DATA) {
      // i_block: the parent's inode number, then entries; the "system.data" xattr holds more.
      const { data } = await this.xattrsOf(inode, true);
      this.parseDirents(inode.block, 4, 60, out, where);
      if (data && data.length > 0) this.parseDirents(data, 0, data.length, out, where);
      return out;
    }
    const bs = this.blockSize;
    const nBlocks = Math.ceil(inode.size / bs);
    let pos = 0;
    for await (const run of this.runs(inode)) {
      if (run.logical < pos) throw this.corrupt(`${where}: extents overlap or are out of order`);
      if (run.logical >= nBlocks) break;
      const count = Math.min(run.count, nBlocks - run.logical);
      if (!run.zero) {
        for (let i = 0; i < count; i++) {
          const block = await this.readBlocks(run.physical + i, 1, where);
          this.parseDirents(block, 0, bs, out, `${where} block ${run.logical + i}`);
          if (out.length > MAX_DIR_ENTRIES) throw this.corrupt(`${where}: more than ${MAX_DIR_ENTRIES} entries`);
        }
      }
      pos = run.logical + count;
    }
    return out;
  }

  /** Finds a name in a directory (one level). */
  async lookup(dir: Inode, name: string): Promise<Inode | undefined> {
    const want = Buffer.from(name);
    const hit = (await this.listDir(dir)).find((e) => e.name.equals(want));
    return hit ? this.readInode(hit.ino) : undefined;
  }

  async root(): Promise<Inode> {
    const root = await this.readInode(ROOT_INO);
    if (root.type !== 'dir') throw this.corrupt('the root inode is not a directory');
    return root;
  }

  // ---- xattrs ----

  private async xattrsOf(inode: Inode, dataOnly = false): Promise<{ attrs: Record<string, Buffer>; data?: Buffer }> {
    const attrs: Record<string, Buffer> = {};
    let data: Buffer | undefined;
    const where = `inode ${inode.ino} xattrs`;
    const parse = async (buf: Buffer, start: number, valueBase: number, end: number, valueEnd: number) => {
      let off = start;
      while (off + 4 <= end && buf.readUInt32LE(off) !== 0) {
        if (off + 16 > end) throw this.corrupt(`${where}: entry at ${off} is cut off`);
        const nameLen = buf[off]!;
        const index = buf[off + 1]!;
        const valueOffs = buf.readUInt16LE(off + 2);
        const valueInum = buf.readUInt32LE(off + 4);
        const valueSize = buf.readUInt32LE(off + 8);
        if (off + 16 + nameLen > end) throw this.corrupt(`${where}: name at ${off} is cut off`);
        const prefix = XATTR_PREFIXES[index];
        if (prefix === undefined) throw this.corrupt(`${where}: unknown name index ${index}`);
        const suffix = buf.subarray(off + 16, off + 16 + nameLen).toString('latin1');
        const name = prefix + suffix;
        if (valueSize > XATTR_SIZE_MAX) throw this.corrupt(`${where}: value of ${name} is ${valueSize} bytes`);
        const isData = index === 7 && suffix === 'data';
        off += (16 + nameLen + 3) & ~3;
        if (dataOnly && !isData) continue;
        let value: Buffer;
        if (valueInum !== 0) {
          const vi = await this.readInode(valueInum);
          if (!(vi.flags & FL_EA_INODE) || vi.size !== valueSize) throw this.corrupt(`${where}: value inode ${valueInum} of ${name} is not an xattr inode of ${valueSize} bytes`);
          // ea_inode values are shared between files (deduplicated): their blocks are not claimed.
          value = await this.collect(vi, XATTR_SIZE_MAX, false);
        } else {
          const vs = valueBase + valueOffs;
          if (vs + valueSize > valueEnd) throw this.corrupt(`${where}: value of ${name} lies outside the xattr area`);
          value = Buffer.from(buf.subarray(vs, vs + valueSize));
        }
        if (isData) data = value;
        else if (index === 2 || index === 3) attrs[name] = this.aclToXattr(value, where);
        else attrs[name] = value;
      }
    };
    if (inode.xattrStart && inode.raw.readUInt32LE(inode.xattrStart) === XATTR_MAGIC) {
      const body = inode.xattrStart + 4;
      await parse(inode.raw, body, body, inode.raw.length, inode.raw.length);
    }
    if (inode.fileAcl !== 0 && (!dataOnly || data === undefined)) {
      const blk = await this.metaBlock(inode.fileAcl, `${where} block`);
      if (blk.readUInt32LE(0) !== XATTR_MAGIC) throw this.corrupt(`${where}: xattr block ${inode.fileAcl} has bad magic`);
      await parse(blk, 32, 0, blk.length, blk.length);
    }
    return { attrs, data };
  }

  /** Extended attributes as the kernel presents them (ACLs in the VFS xattr format), sorted by name. */
  async xattrs(inode: Inode): Promise<Record<string, Buffer>> {
    const { attrs } = await this.xattrsOf(inode);
    return Object.fromEntries(Object.keys(attrs).sort().map((k) => [k, attrs[k]!]));
  }

  /**
   * ext4 stores POSIX ACLs compactly (version 1, 4-byte entries without an id for the owner,
   * group, mask and other); getxattr returns version 2 with 8-byte entries. Convert so the value
   * is what getfattr shows and setfattr accepts.
   */
  private aclToXattr(v: Buffer, where: string): Buffer {
    if (v.length < 4 || v.readUInt32LE(0) !== 1) throw this.corrupt(`${where}: ACL has unknown version`);
    const out: Buffer[] = [Buffer.from([2, 0, 0, 0])];
    let off = 4;
    while (off < v.length) {
      if (off + 4 > v.length) throw this.corrupt(`${where}: ACL entry cut off`);
      const tag = v.readUInt16LE(off);
      const perm = v.readUInt16LE(off + 2);
      const e = Buffer.alloc(8);
      e.writeUInt16LE(tag, 0);
      e.writeUInt16LE(perm, 2);
      if (tag === 2 || tag === 8) {
        if (off + 8 > v.length) throw this.corrupt(`${where}: ACL entry cut off`);
        e.writeUInt32LE(v.readUInt32LE(off + 4), 4);
        off += 8;
      } else {
        e.writeUInt32LE(0xffffffff, 4);
        off += 4;
      }
      out.push(e);
    }
    return Buffer.concat(out);
  }

  // ---- the walk ----

  private async sourceEntry(inode: Inode, name: Buffer): Promise<SourceEntry> {
    const se: SourceEntry = { name, type: inode.type, mode: inode.mode, uid: inode.uid, gid: inode.gid, mtime: inode.mtime };
    if (inode.mtimeNsec) se.mtimeNsec = inode.mtimeNsec;
    const x = await this.xattrs(inode);
    if (Object.keys(x).length > 0) se.xattrs = x;
    switch (inode.type) {
      case 'file':
        se.size = inode.size;
        se.content = { [Symbol.asyncIterator]: () => this.content(inode) };
        break;
      case 'symlink':
        se.linkName = await this.readLink(inode);
        break;
      case 'char':
      case 'block': {
        const old = inode.block.readUInt32LE(0);
        if (old !== 0) {
          se.devMajor = (old >> 8) & 0xff;
          se.devMinor = old & 0xff;
        } else {
          const v = inode.block.readUInt32LE(4);
          se.devMajor = (v & 0xfff00) >>> 8;
          se.devMinor = (v & 0xff) | ((v >>> 12) & 0xfff00);
        }
        break;
      }
      default:
        break;
    }
    return se;
  }

  /**
   * Every entry, depth first from the root (yielded first with an empty name), children in byte
   * order of their names. A regular file with several names is yielded in full at its first path
   * and as a hardlink (linkName = that path) at the others. A file's content must be consumed
   * before the next entry is requested.
   */
  async *walk(): AsyncGenerator<SourceEntry> {
    this.used = new BlockSet();
    const root = await this.root();
    yield await this.sourceEntry(root, Buffer.alloc(0));
    const firstPath = new Map<number, Buffer>();
    const seenDirs = new Set<number>([ROOT_INO]);
    const slash = Buffer.from('/');
    const sorted = async (dir: Inode) => (await this.listDir(dir)).sort((a, b) => Buffer.compare(a.name, b.name));
    const stack: { entries: DirEntry[]; i: number; rel: Buffer }[] = [{ entries: await sorted(root), i: 0, rel: Buffer.alloc(0) }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const e = top.entries[top.i++];
      if (!e) {
        stack.pop();
        continue;
      }
      const rel = top.rel.length === 0 ? e.name : Buffer.concat([top.rel, slash, e.name]);
      const inode = await this.readInode(e.ino);
      if (inode.type === 'file' && inode.links > 1) {
        const first = firstPath.get(e.ino);
        if (first) {
          yield { name: rel, type: 'hardlink', mode: inode.mode, uid: inode.uid, gid: inode.gid, mtime: inode.mtime, linkName: first };
          continue;
        }
        firstPath.set(e.ino, rel);
      }
      yield await this.sourceEntry(inode, rel);
      if (inode.type === 'dir') {
        if (seenDirs.has(e.ino)) throw this.corrupt(`directory inode ${e.ino} is reached twice (a directory loop)`);
        seenDirs.add(e.ino);
        stack.push({ entries: await sorted(inode), i: 0, rel });
      }
    }
  }
}
