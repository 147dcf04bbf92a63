import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LruCache, openBlockDevice, type BlockDevice } from '../../src/core/import/disk/block-device.js';
import { crc32, formatGuid, looksLikeMbr, readPartitionTable } from '../../src/core/import/disk/partition-table.js';
import { AimError, InputError } from '../../src/lib/errors.js';
import { tempDir } from '../helpers/tmp.js';

/** Hand-built partition tables and qcow2 files: every field placed by the test, so each rule can be hit alone. */

class MemoryDevice implements BlockDevice {
  readonly format = 'raw' as const;
  constructor(readonly buf: Buffer) {}
  get size(): number {
    return this.buf.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset + length > this.buf.length) throw new InputError('E_CORRUPT_DISK', 'beyond the end');
    return Buffer.from(this.buf.subarray(offset, offset + length));
  }
  async close(): Promise<void> {}
}

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(AimError);
    return { code: (e as AimError).code, message: (e as AimError).message };
  }
  return { code: 'no error', message: '' };
}

const SECTOR = 512;
const ROOT_GUID_BYTES = Buffer.from('e3bc684fcde8b14d96e7fbcaf984b709', 'hex');

describe('crc32 and GUIDs', () => {
  it('computes the IEEE CRC-32 check value and chains', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.from('6789'), crc32(Buffer.from('12345')))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });
  it('formats mixed-endian GUIDs', () => {
    expect(formatGuid(ROOT_GUID_BYTES)).toBe('4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709');
  });
});

interface GptPart {
  type: Buffer;
  first: number;
  last: number;
  name?: string;
}

/** A 1 MiB GPT disk: protective MBR, primary header at LBA 1, entries at 2, backup at the end. */
function gptDisk(parts: GptPart[]): Buffer {
  const sectors = 2048;
  const disk = Buffer.alloc(sectors * SECTOR);
  disk[446 + 4] = 0xee;
  disk.writeUInt32LE(1, 446 + 8);
  disk.writeUInt32LE(sectors - 1, 446 + 12);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  const entries = Buffer.alloc(128 * 128);
  parts.forEach((p, i) => {
    const e = entries.subarray(i * 128);
    p.type.copy(e, 0);
    Buffer.alloc(16, i + 1).copy(e, 16);
    e.writeBigUInt64LE(BigInt(p.first), 32);
    e.writeBigUInt64LE(BigInt(p.last), 40);
    if (p.name) Buffer.from(p.name, 'utf16le').copy(e, 56);
  });
  const header = (my: number, alt: number, entriesLba: number) => {
    const h = Buffer.alloc(SECTOR);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x10000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(my), 24);
    h.writeBigUInt64LE(BigInt(alt), 32);
    h.writeBigUInt64LE(34n, 40);
    h.writeBigUInt64LE(BigInt(sectors - 34), 48);
    Buffer.alloc(16, 0x42).copy(h, 56);
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(128, 80);
    h.writeUInt32LE(128, 84);
    h.writeUInt32LE(crc32(entries), 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };
  header(1, sectors - 1, 2).copy(disk, SECTOR);
  entries.copy(disk, 2 * SECTOR);
  entries.copy(disk, (sectors - 33) * SECTOR);
  header(sectors - 1, 1, sectors - 33).copy(disk, (sectors - 1) * SECTOR);
  return disk;
}

const twoParts: GptPart[] = [
  { type: Buffer.from('28732ac11ff8d211ba4b00a0c93ec93b', 'hex'), first: 34, last: 133, name: 'ESP' },
  { type: ROOT_GUID_BYTES, first: 200, last: 1999, name: 'root-ä' },
];

describe('GPT', () => {
  it('reads entries with types, names, unique GUIDs, kernel numbering', async () => {
    const t = await readPartitionTable(new MemoryDevice(gptDisk(twoParts)));
    expect(t.type).toBe('gpt');
    expect(t.warnings).toEqual([]);
    expect(t.partitions).toEqual([
      { index: 1, start: 34 * SECTOR, size: 100 * SECTOR, typeGuid: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', partUuid: '01010101-0101-0101-0101-010101010101', name: 'ESP' },
      { index: 2, start: 200 * SECTOR, size: 1800 * SECTOR, typeGuid: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709', partUuid: '02020202-0202-0202-0202-020202020202', name: 'root-ä' },
    ]);
  });

  it('falls back to the backup GPT when the primary header or entries are damaged', async () => {
    for (const damageAt of [SECTOR + 40, 2 * SECTOR + 130]) {
      const disk = gptDisk(twoParts);
      disk[damageAt]! ^= 0xff;
      const t = await readPartitionTable(new MemoryDevice(disk));
      expect(t.partitions.map((p) => p.index)).toEqual([1, 2]);
      expect(t.warnings[0]).toMatch(/primary GPT is invalid \((header|partition entry array) CRC32 mismatch\)/);
    }
  });

  it('fails clearly when both copies are damaged or a partition runs past the end', async () => {
    const disk = gptDisk(twoParts);
    disk[SECTOR + 40]! ^= 0xff;
    disk[2047 * SECTOR + 40]! ^= 0xff;
    const both = await codeOf(readPartitionTable(new MemoryDevice(disk)));
    expect(both.code).toBe('E_CORRUPT_DISK');
    expect(both.message).toMatch(/backup/);
    const past = await codeOf(readPartitionTable(new MemoryDevice(gptDisk([{ type: ROOT_GUID_BYTES, first: 100, last: 5000 }]))));
    expect(past).toMatchObject({ code: 'E_CORRUPT_DISK' });
    expect(past.message).toMatch(/beyond the end/);
  });
});

function mbrEntry(sector: Buffer, slot: number, type: number, lba: number, count: number): void {
  const o = 446 + slot * 16;
  sector[o + 4] = type;
  sector.writeUInt32LE(lba, o + 8);
  sector.writeUInt32LE(count, o + 12);
  sector[510] = 0x55;
  sector[511] = 0xaa;
}

/** Primary 1 (Linux), extended 2 at 100..999 holding logicals at 110 and 510. */
function mbrDisk(loop = false): Buffer {
  const disk = Buffer.alloc(1024 * SECTOR);
  const s = (lba: number) => disk.subarray(lba * SECTOR, (lba + 1) * SECTOR);
  mbrEntry(s(0), 0, 0x83, 10, 80);
  mbrEntry(s(0), 1, 0x05, 100, 900);
  mbrEntry(s(100), 0, 0x83, 10, 300);
  mbrEntry(s(100), 1, 0x05, 400, 500);
  mbrEntry(s(500), 0, 0x82, 10, 100);
  if (loop) mbrEntry(s(500), 1, 0x05, 0, 900);
  return disk;
}

describe('MBR', () => {
  it('reads primaries and the chain of logical partitions (numbered from 5)', async () => {
    const t = await readPartitionTable(new MemoryDevice(mbrDisk()));
    expect(t.type).toBe('mbr');
    expect(t.partitions.map((p) => [p.index, p.mbrType, p.start / SECTOR, p.size / SECTOR])).toEqual([
      [1, 0x83, 10, 80],
      [2, 0x05, 100, 900],
      [5, 0x83, 110, 300],
      [6, 0x82, 510, 100],
    ]);
  });

  it('refuses an EBR chain that loops', async () => {
    const r = await codeOf(readPartitionTable(new MemoryDevice(mbrDisk(true))));
    expect(r.code).toBe('E_CORRUPT_DISK');
    expect(r.message).toMatch(/loops/);
  });

  it('does not take a boot sector with 0x55AA for a partition table', async () => {
    const vbr = Buffer.alloc(SECTOR, 0x20);
    vbr.write('This is not a bootable disk.  Please insert a bootable floppy', 400, 'latin1');
    vbr[510] = 0x55;
    vbr[511] = 0xaa;
    expect(looksLikeMbr(vbr)).toBe(false);
    const t = await readPartitionTable(new MemoryDevice(Buffer.concat([vbr, Buffer.alloc(SECTOR * 8)])));
    expect(t.type).toBe('none');
  });
});

describe('LruCache', () => {
  it('evicts the least recently used entry', () => {
    const c = new LruCache<number, string>(2);
    c.set(1, 'a');
    c.set(2, 'b');
    expect(c.get(1)).toBe('a');
    c.set(3, 'c');
    expect(c.get(2)).toBeUndefined();
    expect([c.get(1), c.get(3)]).toEqual(['a', 'c']);
  });
});

// ---- qcow2 ----

const CB = 9; // 512-byte clusters keep the files tiny
const CS = 1 << CB;
const COPIED = 1n << 63n;

interface QcowOptions {
  version?: number;
  incompat?: bigint;
  compressionType?: number;
  cryptMethod?: number;
  backing?: string;
  l1Size?: number;
}

/**
 * Guest clusters: 0 data "A", 1 unallocated, 2 zero flag over a host cluster of garbage,
 * 3 compressed (unaligned in its host sector), 4..7 data with a counting pattern.
 */
function qcow2(o: QcowOptions = {}): { file: Buffer; guest: Buffer } {
  const version = o.version ?? 3;
  const guest = Buffer.alloc(8 * CS);
  const host = Buffer.alloc(12 * CS);
  const h = host.subarray(0, CS);
  h.writeUInt32BE(0x514649fb, 0);
  h.writeUInt32BE(version, 4);
  if (o.backing) {
    h.writeBigUInt64BE(300n, 8);
    h.writeUInt32BE(o.backing.length, 16);
    h.write(o.backing, 300, 'latin1');
  }
  h.writeUInt32BE(CB, 20);
  h.writeBigUInt64BE(BigInt(guest.length), 24);
  h.writeUInt32BE(o.cryptMethod ?? 0, 32);
  h.writeUInt32BE(o.l1Size ?? 1, 36);
  h.writeBigUInt64BE(BigInt(CS), 40);
  if (version >= 3) {
    h.writeBigUInt64BE(o.incompat ?? 0n, 72);
    h.writeUInt32BE(4, 96);
    h.writeUInt32BE(112, 100);
    h[104] = o.compressionType ?? 0;
  }
  host.writeBigUInt64BE(BigInt(2 * CS) | COPIED, CS); // L1[0] → L2 at cluster 2
  const l2 = (i: number, v: bigint) => host.writeBigUInt64BE(v, 2 * CS + i * 8);
  // guest 0: plain data at host cluster 3
  host.fill(0x41, 3 * CS, 4 * CS);
  guest.fill(0x41, 0, CS);
  l2(0, BigInt(3 * CS) | COPIED);
  // guest 2: zero flag; the host cluster it names holds garbage that must not show
  host.fill(0x47, 4 * CS, 5 * CS);
  l2(2, BigInt(4 * CS) | 1n | COPIED);
  // guest 3: compressed, starting 100 bytes into host cluster 5
  const plain = Buffer.alloc(CS);
  for (let i = 0; i < CS; i++) plain[i] = (i * 7) & 0xff;
  plain.copy(guest, 3 * CS);
  const packed = deflateRawSync(plain);
  const at = 5 * CS + 100;
  packed.copy(host, at);
  host.fill(0x99, at + packed.length, at + packed.length + 20); // trailing bytes after the stream
  const extraSectors = Math.ceil(((at % 512) + packed.length) / 512) - 1;
  const x = BigInt(62 - (CB - 8));
  l2(3, (1n << 62n) | (BigInt(extraSectors) << x) | BigInt(at));
  // guests 4..7: data clusters at host 7..10
  for (let g = 4; g < 8; g++) {
    for (let i = 0; i < CS; i++) guest[g * CS + i] = (g * 31 + i) & 0xff;
    guest.copy(host, (g + 3) * CS, g * CS, (g + 1) * CS);
    l2(g, BigInt((g + 3) * CS) | COPIED);
  }
  return { file: host, guest };
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-disk-unit-');
});
afterAll(async () => tmp.cleanup());

async function qcowFile(name: string, o: QcowOptions = {}, edit?: (b: Buffer) => Buffer): Promise<{ path: string; guest: Buffer }> {
  const { file, guest } = qcow2(o);
  const path = join(tmp.dir, name);
  await writeFile(path, edit ? edit(file) : file);
  return { path, guest };
}

describe('qcow2', () => {
  it('reads data, unallocated, zero-flag and compressed clusters, across cluster boundaries', async () => {
    for (const version of [2, 3]) {
      const { path, guest } = await qcowFile(`v${version}.qcow2`, { version });
      const dev = await openBlockDevice(path);
      try {
        expect(dev.format).toBe('qcow2');
        expect(dev.size).toBe(8 * CS);
        const want = guest;
        expect((await dev.read(0, 8 * CS)).equals(want)).toBe(true);
        expect((await dev.read(3 * CS + 10, 2000)).equals(want.subarray(3 * CS + 10, 3 * CS + 2010))).toBe(true);
        expect((await dev.read(CS - 3, 6)).equals(want.subarray(CS - 3, CS + 3))).toBe(true);
        expect((await codeOf(dev.read(8 * CS - 1, 2))).code).toBe('E_CORRUPT_DISK');
      } finally {
        await dev.close();
      }
    }
  });

  it('refuses what it cannot read correctly, saying what to do', async () => {
    const cases: [string, QcowOptions, RegExp][] = [
      ['backing', { backing: 'base.img' }, /overlay on backing file "base.img"/],
      ['crypt', { cryptMethod: 2 }, /encrypted qcow2/],
      ['extl2', { incompat: 16n }, /extended L2/],
      ['zstd', { incompat: 8n, compressionType: 1 }, /zstd/],
      ['datafile', { incompat: 4n }, /external data file/],
      ['unknown', { incompat: 1n << 40n }, /unknown incompatible features/],
      ['v4', { version: 4 }, /version 4/],
    ];
    for (const [name, o, message] of cases) {
      const { path } = await qcowFile(`${name}.qcow2`, o);
      const r = await codeOf(openBlockDevice(path));
      expect(r.code, name).toBe('E_UNSUPPORTED_DISK');
      expect(r.message, name).toMatch(message);
    }
    // dirty (bit 0) only means refcounts may be stale: still readable
    const dirty = await qcowFile('dirty.qcow2', { incompat: 1n });
    await (await openBlockDevice(dirty.path)).close();
  });

  it('reports damaged metadata as E_CORRUPT_DISK', async () => {
    const truncated = await qcowFile('short.qcow2', {}, (b) => b.subarray(0, 3 * CS + 10));
    const dev = await openBlockDevice(truncated.path);
    try {
      expect((await codeOf(dev.read(4 * CS, 10))).code).toBe('E_CORRUPT_DISK');
    } finally {
      await dev.close();
    }
    const tooSmallL1 = await qcowFile('l1.qcow2', { l1Size: 0 });
    expect((await codeOf(openBlockDevice(tooSmallL1.path))).code).toBe('E_CORRUPT_DISK');
    const badDeflate = await qcowFile('deflate.qcow2', {}, (b) => {
      b.fill(0xff, 5 * CS + 100, 5 * CS + 140);
      return b;
    });
    const dev2 = await openBlockDevice(badDeflate.path);
    try {
      expect((await codeOf(dev2.read(3 * CS, 10))).code).toBe('E_CORRUPT_DISK');
    } finally {
      await dev2.close();
    }
  });

  it('treats any other file as a raw disk and never reads past its end', async () => {
    const path = join(tmp.dir, 'raw.img');
    await writeFile(path, Buffer.from('raw disk bytes'));
    const dev = await openBlockDevice(path);
    try {
      expect([dev.format, dev.size]).toEqual(['raw', 14]);
      expect((await dev.read(4, 4)).toString()).toBe('disk');
      expect((await codeOf(dev.read(10, 5))).code).toBe('E_CORRUPT_DISK');
    } finally {
      await dev.close();
    }
    expect((await codeOf(openBlockDevice(join(tmp.dir, 'missing.img')))).code).toBe('E_NOT_FOUND');
  });
});
