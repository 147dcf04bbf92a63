import { open, type FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { InputError, NotFoundError, errnoCode } from '../../../lib/errors.js';

/**
 * A disk image as a flat array of bytes, whatever the container format. Reads are positional and
 * never cross `size`; reading past the end means the image is truncated or a structure in it
 * points nowhere, and fails with an InputError.
 */
export interface BlockDevice {
  /** Virtual size in bytes (what a VM would see as the disk size). */
  readonly size: number;
  /** Container format the bytes come from. */
  readonly format: 'raw' | 'qcow2';
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"

/** A small least-recently-used map: Map keeps insertion order, so re-inserting marks use. */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly capacity: number) {}
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }
}

function corrupt(path: string, what: string): InputError {
  return new InputError('E_CORRUPT_DISK', `${path}: ${what}`, {
    hint: 'the disk image is truncated or damaged; check it with `qemu-img check` or copy it again',
  });
}

/** Reads exactly `length` bytes at `position`; a short read (end of file) is an error. */
async function readExact(fh: FileHandle, path: string, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw corrupt(path, `unexpected end of file at byte ${position + done} (the image is truncated)`);
    done += bytesRead;
  }
  return buf;
}

function checkRange(dev: { size: number }, path: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > dev.size) {
    throw corrupt(path, `read of ${length} bytes at ${offset} goes beyond the end of the ${dev.size}-byte disk`);
  }
}

/** A raw disk image: the file is the disk. Holes of sparse files read as zeros like any file. */
export class RawDevice implements BlockDevice {
  readonly format = 'raw' as const;
  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    readonly size: number,
  ) {}

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, this.path, offset, length);
    return readExact(this.fh, this.path, offset, length);
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

const INCOMPAT_DIRTY = 1;
const INCOMPAT_CORRUPT = 2;
const INCOMPAT_DATA_FILE = 4;
const INCOMPAT_COMPRESSION = 8;
const INCOMPAT_EXTL2 = 16;
const KNOWN_INCOMPAT = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

/** Offset bits 9..55 of an L1/L2 entry (hi/lo halves of a big-endian u64). */
function entryOffset(hi: number, lo: number): number {
  return (hi & 0x00ffffff) * 0x1_0000_0000 + ((lo & ~0x1ff) >>> 0);
}

/**
 * qcow2 (versions 2 and 3) read in place: L1 → L2 → host cluster, with unallocated and zero
 * clusters as zeros and compressed clusters inflated. Refcounts and snapshots are not needed to
 * read the active disk. Overlays (backing files), encryption, external data files, extended L2
 * entries and zstd compression are refused rather than read wrongly.
 */
export class Qcow2Device implements BlockDevice {
  readonly format = 'qcow2' as const;
  private readonly clusterSize: number;
  private readonly l2Entries: number;
  private readonly l2Cache = new LruCache<number, Buffer>(64);
  private readonly clusterCache = new LruCache<number, Buffer>(16);

  private constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly fileSize: number,
    readonly size: number,
    private readonly clusterBits: number,
    private readonly l1: Buffer,
  ) {
    this.clusterSize = 2 ** clusterBits;
    this.l2Entries = this.clusterSize / 8;
  }

  static async open(fh: FileHandle, path: string, fileSize: number): Promise<Qcow2Device> {
    if (fileSize < 72) throw corrupt(path, 'qcow2 header is truncated');
    const h = await readExact(fh, path, 0, Math.min(fileSize, 112));
    const version = h.readUInt32BE(4);
    if (version !== 2 && version !== 3) {
      throw new InputError('E_UNSUPPORTED_DISK', `${path}: qcow2 version ${version} is not supported (only 2 and 3)`);
    }
    const backingOffset = Number(h.readBigUInt64BE(8));
    const backingSize = h.readUInt32BE(16);
    const clusterBits = h.readUInt32BE(20);
    const size = Number(h.readBigUInt64BE(24));
    const cryptMethod = h.readUInt32BE(32);
    const l1Size = h.readUInt32BE(36);
    const l1Offset = Number(h.readBigUInt64BE(40));
    if (backingOffset !== 0) {
      let name = '';
      if (backingSize > 0 && backingSize <= 1023 && backingOffset + backingSize <= fileSize) {
        name = ` "${(await readExact(fh, path, backingOffset, backingSize)).toString('utf8')}"`;
      }
      throw new InputError('E_UNSUPPORTED_DISK', `${path}: qcow2 overlay on backing file${name}; aim reads self-contained images only`, {
        hint: `flatten it first: qemu-img convert -O qcow2 ${path} flat.qcow2`,
      });
    }
    if (cryptMethod !== 0) {
      throw new InputError('E_UNSUPPORTED_DISK', `${path}: encrypted qcow2 (method ${cryptMethod}) is not supported`, {
        hint: 'decrypt it first with qemu-img convert --object secret,... -O qcow2',
      });
    }
    if (version === 3) {
      if (h.length < 104) throw corrupt(path, 'qcow2 v3 header is truncated');
      const incompat = h.readBigUInt64BE(72);
      const headerLength = h.readUInt32BE(100);
      const bits = Number(incompat & 0xffffffffn);
      if (incompat >> 32n !== 0n || (bits & ~KNOWN_INCOMPAT) !== 0) {
        throw new InputError('E_UNSUPPORTED_DISK', `${path}: qcow2 uses unknown incompatible features (0x${incompat.toString(16)})`);
      }
      if (bits & INCOMPAT_CORRUPT) throw corrupt(path, 'qcow2 image is marked corrupt');
      if (bits & INCOMPAT_DATA_FILE) {
        throw new InputError('E_UNSUPPORTED_DISK', `${path}: qcow2 with an external data file is not supported`, {
          hint: `convert it first: qemu-img convert -O qcow2 ${path} self-contained.qcow2`,
        });
      }
      if (bits & INCOMPAT_EXTL2) {
        throw new InputError('E_UNSUPPORTED_DISK', `${path}: qcow2 with extended L2 entries (subclusters) is not supported`, {
          hint: `convert it first: qemu-img convert -O qcow2 ${path} plain.qcow2`,
        });
      }
      const compressionType = headerLength > 104 && h.length > 104 ? h[104]! : 0;
      if (bits & INCOMPAT_COMPRESSION && compressionType !== 0) {
        throw new InputError('E_UNSUPPORTED_DISK', `${path}: qcow2 compressed with zstd is not supported (only zlib)`, {
          hint: `recompress it: qemu-img convert -c -o compression_type=zlib -O qcow2 ${path} zlib.qcow2`,
        });
      }
    }
    if (clusterBits < 9 || clusterBits > 21) throw corrupt(path, `qcow2 cluster_bits ${clusterBits} out of range`);
    if (!Number.isSafeInteger(size) || size < 0) throw corrupt(path, 'qcow2 virtual size out of range');
    const clusterSize = 2 ** clusterBits;
    const needL1 = Math.ceil(size / (clusterSize * (clusterSize / 8)));
    if (l1Size < needL1 || l1Size > 0x2000000) throw corrupt(path, `qcow2 L1 table size ${l1Size} does not fit the ${size}-byte disk`);
    if (l1Offset % clusterSize !== 0 || l1Offset + l1Size * 8 > fileSize) throw corrupt(path, 'qcow2 L1 table lies outside the file');
    const l1 = l1Size === 0 ? Buffer.alloc(0) : await readExact(fh, path, l1Offset, l1Size * 8);
    return new Qcow2Device(fh, path, fileSize, size, clusterBits, l1);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, this.path, offset, length);
    const out = Buffer.alloc(length);
    let pos = offset;
    while (pos < offset + length) {
      const inCluster = pos % this.clusterSize;
      const n = Math.min(this.clusterSize - inCluster, offset + length - pos);
      await this.readInCluster(pos - inCluster, inCluster, n, out, pos - offset);
      pos += n;
    }
    return out;
  }

  private async l2Table(l2Offset: number): Promise<Buffer> {
    const cached = this.l2Cache.get(l2Offset);
    if (cached) return cached;
    if (l2Offset % this.clusterSize !== 0 || l2Offset + this.clusterSize > this.fileSize) {
      throw corrupt(this.path, `qcow2 L2 table at ${l2Offset} lies outside the file`);
    }
    const table = await readExact(this.fh, this.path, l2Offset, this.clusterSize);
    this.l2Cache.set(l2Offset, table);
    return table;
  }

  /** Copies `n` bytes at `inCluster` of the guest cluster starting at `guest` into out[at..]. */
  private async readInCluster(guest: number, inCluster: number, n: number, out: Buffer, at: number): Promise<void> {
    const clusterIndex = guest / this.clusterSize;
    const l1Index = Math.floor(clusterIndex / this.l2Entries);
    const l1Hi = this.l1.readUInt32BE(l1Index * 8);
    const l1Lo = this.l1.readUInt32BE(l1Index * 8 + 4);
    const l2Offset = entryOffset(l1Hi, l1Lo);
    if (l2Offset === 0) return; // no L2 table: unallocated, reads as zeros (out is zero-filled)
    const table = await this.l2Table(l2Offset);
    const i = (clusterIndex % this.l2Entries) * 8;
    const hi = table.readUInt32BE(i);
    const lo = table.readUInt32BE(i + 4);
    if (hi & 0x40000000) {
      const data = await this.compressedCluster(table.readBigUInt64BE(i));
      data.copy(out, at, inCluster, inCluster + n);
      return;
    }
    if (lo & 1) return; // zero cluster (a v3 flag; qemu honours it in v2 images too)
    const host = entryOffset(hi, lo);
    if (host === 0) return; // unallocated
    if (host % this.clusterSize !== 0) throw corrupt(this.path, `qcow2 data cluster at ${host} is not aligned`);
    if (host + inCluster + n > this.fileSize) throw corrupt(this.path, `qcow2 data cluster at ${host} lies beyond the end of the file`);
    (await readExact(this.fh, this.path, host + inCluster, n)).copy(out, at);
  }

  private async compressedCluster(entry: bigint): Promise<Buffer> {
    const x = BigInt(62 - (this.clusterBits - 8));
    const host = Number(entry & ((1n << x) - 1n));
    const cached = this.clusterCache.get(host);
    if (cached) return cached;
    const sectors = Number((entry >> x) & ((1n << (62n - x)) - 1n));
    const end = Math.min((Math.floor(host / 512) + sectors + 1) * 512, this.fileSize);
    if (host >= this.fileSize || end <= host) throw corrupt(this.path, `qcow2 compressed cluster at ${host} lies beyond the end of the file`);
    const packed = await readExact(this.fh, this.path, host, end - host);
    let data: Buffer;
    try {
      // The stored sectors may run past the end of the deflate stream; inflate stops at its end.
      data = inflateRawSync(packed, { maxOutputLength: this.clusterSize, finishFlush: 2 /* Z_SYNC_FLUSH */ });
    } catch (e) {
      throw corrupt(this.path, `qcow2 compressed cluster at ${host} does not inflate (${errnoCode(e) ?? (e as Error).message})`);
    }
    if (data.length !== this.clusterSize) {
      if (data.length > this.clusterSize) throw corrupt(this.path, `qcow2 compressed cluster at ${host} inflates to the wrong size`);
      data = Buffer.concat([data, Buffer.alloc(this.clusterSize - data.length)]);
    }
    this.clusterCache.set(host, data);
    return data;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** Opens a disk image, choosing raw or qcow2 by its first bytes (never by the file name). */
export async function openBlockDevice(path: string): Promise<BlockDevice> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${path} does not exist`);
    throw e;
  }
  try {
    const st = await fh.stat();
    let size = st.size;
    if (st.isBlockDevice()) {
      // stat reports 0 for block devices: find the end by seeking with a read past it.
      size = await blockDeviceSize(fh);
    } else if (!st.isFile()) {
      throw new InputError('E_UNSUPPORTED_DISK', `${path} is not a disk image file`);
    }
    const head = Buffer.alloc(4);
    if (size >= 4) await fh.read(head, 0, 4, 0);
    if (head.readUInt32BE(0) === QCOW2_MAGIC) return await Qcow2Device.open(fh, path, size);
    return new RawDevice(fh, path, size);
  } catch (e) {
    await fh.close();
    throw e;
  }
}

async function blockDeviceSize(fh: FileHandle): Promise<number> {
  // Binary search for the last readable byte: block devices report size 0 through stat.
  const one = Buffer.alloc(1);
  let lo = 0;
  let hi = 2 ** 50;
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    const { bytesRead } = await fh.read(one, 0, 1, mid - 1);
    if (bytesRead === 1) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
