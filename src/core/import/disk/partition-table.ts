import { InputError } from '../../../lib/errors.js';
import type { BlockDevice } from './block-device.js';

const SECTOR = 512;

/** One partition, numbered like the Linux kernel numbers them (sda1 → 1; logical MBR partitions from 5). */
export interface Partition {
  index: number;
  /** Offset from the start of the disk, bytes. */
  start: number;
  size: number;
  /** GPT partition type GUID, upper case ("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"). */
  typeGuid?: string;
  /** MBR partition type byte (0x83 Linux, 0xEF EFI, 0x05 extended…). */
  mbrType?: number;
  /** GPT partition name (UTF-16LE decoded). */
  name?: string;
  /** GPT unique partition GUID (PARTUUID), upper case. */
  partUuid?: string;
}

export interface PartitionTable {
  type: 'gpt' | 'mbr' | 'none';
  partitions: Partition[];
  /** GPT disk GUID. */
  diskGuid?: string;
  /** Things worth telling the user (a corrupt primary GPT read from its backup). */
  warnings: string[];
}

/** MBR types of extended partitions (containers of the EBR chain). */
export const MBR_EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, the one GPT, zip and PNG use); zlib.crc32 needs Node 22. */
export function crc32(buf: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Formats a 16-byte on-disk GUID (first three fields little-endian) as text. */
export function formatGuid(b: Buffer): string {
  const hex = (x: Buffer) => x.toString('hex');
  const le = (s: number, e: number) => hex(Buffer.from(b.subarray(s, e)).reverse());
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${hex(b.subarray(8, 10))}-${hex(b.subarray(10, 16))}`.toUpperCase();
}

function corruptTable(what: string): InputError {
  return new InputError('E_CORRUPT_DISK', `partition table: ${what}`, {
    hint: 'the disk image is damaged or truncated; check it with `sfdisk --verify` or `gdisk`',
  });
}

interface GptHeader {
  entriesLba: number;
  count: number;
  entrySize: number;
  entriesCrc: number;
  firstUsable: number;
  lastUsable: number;
  alternateLba: number;
  diskGuid: string;
}

function parseGptHeader(sector: Buffer, lba: number): GptHeader | string {
  if (sector.toString('latin1', 0, 8) !== 'EFI PART') return 'no "EFI PART" signature';
  const headerSize = sector.readUInt32LE(12);
  if (headerSize < 92 || headerSize > SECTOR) return `header size ${headerSize} out of range`;
  const copy = Buffer.from(sector.subarray(0, headerSize));
  const stored = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== stored) return 'header CRC32 mismatch';
  if (Number(sector.readBigUInt64LE(24)) !== lba) return `header says it is at LBA ${sector.readBigUInt64LE(24)}, not ${lba}`;
  const count = sector.readUInt32LE(80);
  const entrySize = sector.readUInt32LE(84);
  if (entrySize < 128 || entrySize % 8 !== 0 || entrySize > 4096) return `partition entry size ${entrySize} is invalid`;
  if (count * entrySize > 4 * 1024 * 1024) return `partition entry array of ${count} entries is too large`;
  return {
    alternateLba: Number(sector.readBigUInt64LE(32)),
    firstUsable: Number(sector.readBigUInt64LE(40)),
    lastUsable: Number(sector.readBigUInt64LE(48)),
    diskGuid: formatGuid(sector.subarray(56, 72)),
    entriesLba: Number(sector.readBigUInt64LE(72)),
    count,
    entrySize,
    entriesCrc: sector.readUInt32LE(88),
  };
}

async function readGptAt(dev: BlockDevice, lba: number): Promise<{ header: GptHeader; entries: Buffer } | string> {
  if ((lba + 1) * SECTOR > dev.size) return 'beyond the end of the disk';
  const header = parseGptHeader(await dev.read(lba * SECTOR, SECTOR), lba);
  if (typeof header === 'string') return header;
  const bytes = header.count * header.entrySize;
  if (header.entriesLba * SECTOR + bytes > dev.size) return 'partition entries lie beyond the end of the disk';
  const entries = await dev.read(header.entriesLba * SECTOR, bytes);
  if (crc32(entries) !== header.entriesCrc) return 'partition entry array CRC32 mismatch';
  return { header, entries };
}

function gptPartitions(header: GptHeader, entries: Buffer, dev: BlockDevice): Partition[] {
  const out: Partition[] = [];
  for (let i = 0; i < header.count; i++) {
    const e = entries.subarray(i * header.entrySize, (i + 1) * header.entrySize);
    if (e.subarray(0, 16).every((b) => b === 0)) continue;
    const first = Number(e.readBigUInt64LE(32));
    const last = Number(e.readBigUInt64LE(40));
    if (last < first) throw corruptTable(`GPT partition ${i + 1} ends (LBA ${last}) before it starts (LBA ${first})`);
    const start = first * SECTOR;
    const size = (last - first + 1) * SECTOR;
    if (start + size > dev.size) {
      throw corruptTable(`GPT partition ${i + 1} ends at byte ${start + size}, beyond the end of the ${dev.size}-byte disk (truncated image?)`);
    }
    const nameRaw = e.subarray(56, 128);
    let nameEnd = 0;
    while (nameEnd + 1 < nameRaw.length && (nameRaw[nameEnd] !== 0 || nameRaw[nameEnd + 1] !== 0)) nameEnd += 2;
    const p: Partition = { index: i + 1, start, size, typeGuid: formatGuid(e.subarray(0, 16)), partUuid: formatGuid(e.subarray(16, 32)) };
    if (nameEnd > 0) p.name = nameRaw.subarray(0, nameEnd).toString('utf16le');
    out.push(p);
  }
  return out;
}

async function readGpt(dev: BlockDevice): Promise<PartitionTable> {
  const primary = await readGptAt(dev, 1);
  if (typeof primary !== 'string') {
    return { type: 'gpt', partitions: gptPartitions(primary.header, primary.entries, dev), diskGuid: primary.header.diskGuid, warnings: [] };
  }
  const lastLba = Math.floor(dev.size / SECTOR) - 1;
  const backup = await readGptAt(dev, lastLba);
  if (typeof backup === 'string') throw corruptTable(`primary GPT is invalid (${primary}) and so is the backup at the end of the disk (${backup})`);
  return {
    type: 'gpt',
    partitions: gptPartitions(backup.header, backup.entries, dev),
    diskGuid: backup.header.diskGuid,
    warnings: [`primary GPT is invalid (${primary}); read the backup GPT at the end of the disk`],
  };
}

interface MbrEntry {
  status: number;
  type: number;
  lbaStart: number;
  sectors: number;
}

function mbrEntries(sector: Buffer): MbrEntry[] {
  const out: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const o = 446 + i * 16;
    out.push({ status: sector[o]!, type: sector[o + 4]!, lbaStart: sector.readUInt32LE(o + 8), sectors: sector.readUInt32LE(o + 12) });
  }
  return out;
}

/**
 * True when sector 0 holds a plausible MBR partition table: the 0x55AA signature, every status
 * byte 0x00 or 0x80 and at least one used entry. FAT and NTFS boot sectors carry the signature
 * too, but their boot code sits where the entries would and fails these checks.
 */
export function looksLikeMbr(sector: Buffer): boolean {
  if (sector.length < SECTOR || sector[510] !== 0x55 || sector[511] !== 0xaa) return false;
  const entries = mbrEntries(sector);
  if (entries.some((e) => e.status !== 0 && e.status !== 0x80)) return false;
  const used = entries.filter((e) => e.type !== 0);
  return used.length > 0 && used.every((e) => e.sectors > 0 && e.lbaStart > 0);
}

async function readMbr(dev: BlockDevice, sector0: Buffer): Promise<PartitionTable> {
  const partitions: Partition[] = [];
  const inDisk = (index: number, lba: number, sectors: number): Partition => {
    const start = lba * SECTOR;
    const size = sectors * SECTOR;
    if (start + size > dev.size) {
      throw corruptTable(`MBR partition ${index} ends at byte ${start + size}, beyond the end of the ${dev.size}-byte disk (truncated image?)`);
    }
    return { index, start, size };
  };
  let extended: MbrEntry | undefined;
  mbrEntries(sector0).forEach((e, i) => {
    if (e.type === 0) return;
    if (MBR_EXTENDED_TYPES.has(e.type)) {
      if (extended) throw corruptTable('MBR has more than one extended partition');
      extended = e;
      // The kernel exposes the container as a tiny device; it is listed so numbers match.
      partitions.push({ ...inDisk(i + 1, e.lbaStart, e.sectors), mbrType: e.type });
      return;
    }
    partitions.push({ ...inDisk(i + 1, e.lbaStart, e.sectors), mbrType: e.type });
  });
  if (extended) {
    const base = extended.lbaStart;
    const seen = new Set<number>();
    let ebr = base;
    let index = 5;
    // Each EBR describes one logical partition (relative to itself) and links to the next EBR
    // (relative to the extended partition). A chain that revisits a sector is a loop.
    while (ebr !== 0) {
      if (seen.has(ebr) || seen.size >= 256) throw corruptTable('the chain of logical partitions loops');
      seen.add(ebr);
      if (ebr < base || ebr >= base + extended.sectors) throw corruptTable(`logical partition table at LBA ${ebr} lies outside the extended partition`);
      const s = await dev.read(ebr * SECTOR, SECTOR);
      if (s[510] !== 0x55 || s[511] !== 0xaa) throw corruptTable(`logical partition table at LBA ${ebr} has no 0x55AA signature`);
      const [logical, next] = mbrEntries(s);
      if (logical && logical.type !== 0 && logical.sectors > 0) {
        partitions.push({ ...inDisk(index, ebr + logical.lbaStart, logical.sectors), mbrType: logical.type });
        index += 1;
      }
      ebr = next && next.type !== 0 && MBR_EXTENDED_TYPES.has(next.type) ? base + next.lbaStart : 0;
    }
  }
  return { type: 'mbr', partitions, warnings: [] };
}

/**
 * Reads the partition table of a disk with 512-byte sectors: GPT (primary header at LBA 1,
 * header and entry CRCs checked, backup GPT at the last LBA used when the primary is damaged) or
 * MBR with logical partitions. A protective MBR (type 0xEE) means GPT. Returns type 'none' when
 * there is no table (a whole-disk filesystem, or not a disk at all).
 */
export async function readPartitionTable(dev: BlockDevice): Promise<PartitionTable> {
  if (dev.size < 2 * SECTOR) return { type: 'none', partitions: [], warnings: [] };
  const sector0 = await dev.read(0, SECTOR);
  const mbr = looksLikeMbr(sector0);
  const protective = mbr && mbrEntries(sector0).some((e) => e.type === 0xee);
  const lba1 = await dev.read(SECTOR, 8);
  if (protective || lba1.toString('latin1') === 'EFI PART') return readGpt(dev);
  if (mbr) return readMbr(dev, sector0);
  return { type: 'none', partitions: [], warnings: [] };
}
