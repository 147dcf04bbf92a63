import { open } from 'node:fs/promises';
import { InputError } from '../../../lib/errors.js';
import type { Source, SourceReadOptions, SourceReader } from '../source.js';
import { openBlockDevice, type BlockDevice } from './block-device.js';
import { ExtFilesystem, extKind, probeExt } from './ext4.js';
import { MBR_EXTENDED_TYPES, looksLikeMbr, readPartitionTable, type Partition, type PartitionTable } from './partition-table.js';

/** The Discoverable Partitions Specification's root partition type for x86-64. */
export const ROOT_X86_64_GUID = '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709';

const GPT_TYPE_NAMES: Record<string, string> = {
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B': 'EFI system',
  '21686148-6449-6E6F-744E-656564454649': 'BIOS boot',
  '0FC63DAF-8483-4772-8E79-3D69D8477DE4': 'Linux filesystem',
  [ROOT_X86_64_GUID]: 'Linux root (x86-64)',
  'B921B045-1DF0-41C3-AF44-4C6F280D3FAE': 'Linux root (ARM64)',
  '44479540-F297-41B2-9AF7-D131D5F0458A': 'Linux root (x86)',
  '8484680C-9521-48C6-9C11-B0720656F69E': 'Linux /usr (x86-64)',
  '933AC7E1-2EB4-4F13-B844-0E14E2AEF915': 'Linux home',
  '4D21B016-B534-45C2-A9FB-5C16E091FD2D': 'Linux variable data',
  'BC13C2FF-59E6-4262-A352-B275FD6F7172': 'Linux extended boot',
  '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F': 'Linux swap',
  'E6D6D379-F507-44C2-A23C-238F2A3DF928': 'Linux LVM',
  'A19D880F-05FC-4D3B-A006-743F0F84911E': 'Linux RAID',
  'CA7D7CCB-63ED-4C53-861C-1742536059CC': 'Linux LUKS',
  'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7': 'Microsoft basic data',
  'E3C9E316-0B5C-4DB8-817D-F92DF00215AE': 'Microsoft reserved',
};

const MBR_TYPE_NAMES: Record<number, string> = {
  0x01: 'FAT12',
  0x04: 'FAT16',
  0x05: 'extended',
  0x06: 'FAT16',
  0x07: 'NTFS/exFAT',
  0x0b: 'W95 FAT32',
  0x0c: 'W95 FAT32 (LBA)',
  0x0e: 'W95 FAT16 (LBA)',
  0x0f: 'W95 extended (LBA)',
  0x82: 'Linux swap',
  0x83: 'Linux',
  0x85: 'Linux extended',
  0x8e: 'Linux LVM',
  0xef: 'EFI system',
  0xfd: 'Linux RAID',
};

/** A partition (or the whole disk, index 0) with what it holds. */
export interface DiskVolume extends Partition {
  /** Human name of the partition type ("EFI system", "Linux"). */
  description: string;
  /** What the content looks like: "ext4", "vfat", "LVM2 PV", "swap", "unknown"… */
  filesystem: string;
}

export interface DiskLayout {
  format: 'raw' | 'qcow2';
  size: number;
  table: PartitionTable['type'];
  volumes: DiskVolume[];
  warnings: string[];
}

function describeType(p: Partition): string {
  if (p.typeGuid) return GPT_TYPE_NAMES[p.typeGuid] ?? `type ${p.typeGuid}`;
  if (p.mbrType !== undefined) return MBR_TYPE_NAMES[p.mbrType] ?? `type 0x${p.mbrType.toString(16).padStart(2, '0')}`;
  return 'whole disk';
}

/** Names the content of a region by its signatures. */
async function probeContent(dev: BlockDevice, start: number, size: number): Promise<string> {
  if (size < 4096 || start + 4096 > dev.size) return 'unknown';
  if (await probeExt(dev, start, size)) return extKind(await dev.read(start + 1024, 1024));
  const head = await dev.read(start, 4096);
  const at = (off: number, text: string) => head.toString('latin1', off, off + text.length) === text;
  if (head[510] === 0x55 && head[511] === 0xaa && (at(54, 'FAT1') || at(82, 'FAT32'))) return 'vfat';
  if (at(3, 'NTFS    ')) return 'ntfs';
  if (at(3, 'EXFAT   ')) return 'exfat';
  if (at(0, 'XFSB')) return 'xfs';
  if (at(0, 'LUKS\xba\xbe')) return 'LUKS';
  if (at(0, 'hsqs')) return 'squashfs';
  if (at(512, 'LABELONE') && at(536, 'LVM2 001')) return 'LVM2 PV';
  if (at(4086, 'SWAPSPACE2') || at(4086, 'SWAP-SPACE')) return 'swap';
  if (start + 0x10048 <= dev.size && size > 0x10048) {
    const b = await dev.read(start + 0x10040, 8);
    if (b.toString('latin1') === '_BHRfS_M') return 'btrfs';
  }
  if (head.every((b) => b === 0)) return 'empty';
  return 'unknown';
}

/** Reads the partition table and names what every partition holds. */
export async function describeDisk(dev: BlockDevice): Promise<DiskLayout> {
  const table = await readPartitionTable(dev);
  const volumes: DiskVolume[] = [];
  if (table.type === 'none') {
    const whole: Partition = { index: 0, start: 0, size: dev.size };
    volumes.push({ ...whole, description: 'whole disk', filesystem: await probeContent(dev, 0, dev.size) });
  }
  for (const p of table.partitions) {
    const extended = p.mbrType !== undefined && MBR_EXTENDED_TYPES.has(p.mbrType);
    volumes.push({ ...p, description: describeType(p), filesystem: extended ? 'logical partitions' : await probeContent(dev, p.start, p.size) });
  }
  return { format: dev.format, size: dev.size, table: table.type, volumes, warnings: [...table.warnings] };
}

function volumeName(v: DiskVolume): string {
  return v.index === 0 ? 'whole disk' : `partition ${v.index}`;
}

function summary(layout: DiskLayout): string {
  if (layout.table === 'none' && layout.volumes[0]?.filesystem === 'unknown') return 'no partition table and no filesystem found';
  const parts = layout.volumes.map((v) => (v.index === 0 ? `whole disk: ${v.filesystem}` : `partition ${v.index}: ${v.description} (${v.filesystem})`));
  return parts.length === 0 ? `${layout.table.toUpperCase()} partition table with no partitions` : parts.join(', ');
}

/** Contents that may hold a root filesystem aim cannot read. */
const OTHER_ROOTS = new Set(['LVM2 PV', 'LUKS', 'xfs', 'btrfs']);

const isExt = (v: DiskVolume) => /^ext[234]$/.test(v.filesystem);

/**
 * Chooses the root filesystem: the partition asked for; else a GPT partition typed as the x86-64
 * root; else the ext partition that has /etc (the largest if none has); else the whole disk
 * when it is one ext filesystem.
 */
export async function findRootFilesystem(
  dev: BlockDevice,
  label: string,
  partition?: number,
): Promise<{ fs: ExtFilesystem; volume: DiskVolume; layout: DiskLayout }> {
  const layout = await describeDisk(dev);
  const openVolume = (v: DiskVolume) => ExtFilesystem.open(dev, v.start, v.size, `${label} ${volumeName(v)}`);
  if (partition !== undefined) {
    const v = layout.volumes.find((x) => x.index === partition && x.index !== 0);
    if (!v) {
      throw new InputError('E_PARTITION_NOT_FOUND', `${label}: there is no partition ${partition} (${summary(layout)})`, {
        hint: 'leave out --partition to pick the root filesystem automatically',
      });
    }
    if (!isExt(v)) {
      throw new InputError('E_UNSUPPORTED_DISK', `${label}: partition ${partition} is ${v.description} (${v.filesystem}), not an ext2/3/4 filesystem`);
    }
    return { fs: await openVolume(v), volume: v, layout };
  }
  const exts = layout.volumes.filter(isExt);
  const nothing = layout.table === 'none' && layout.volumes[0]?.filesystem === 'unknown';
  const unsupported = () =>
    new InputError('E_UNSUPPORTED_DISK', `${label}: ${summary(layout)}${nothing ? '' : '; no ext4 root filesystem found'}`, {
      hint: 'aim reads ext2/ext3/ext4 root filesystems on raw or qcow2 disks (no LVM, LUKS, XFS or btrfs); choose one with --partition',
    });
  if (exts.length === 0) throw unsupported();
  const rootTyped = exts.filter((v) => v.typeGuid === ROOT_X86_64_GUID);
  if (rootTyped.length === 1) return { fs: await openVolume(rootTyped[0]!), volume: rootTyped[0]!, layout };
  let firstError: unknown;
  const opened: { fs: ExtFilesystem; volume: DiskVolume; hasEtc: boolean }[] = [];
  for (const v of rootTyped.length > 0 ? rootTyped : exts) {
    try {
      const fs = await openVolume(v);
      const etc = await fs.lookup(await fs.root(), 'etc');
      opened.push({ fs, volume: v, hasEtc: etc?.type === 'dir' });
    } catch (e) {
      firstError ??= e;
    }
  }
  let pick = opened.find((o) => o.hasEtc);
  if (!pick) {
    // An ext /boot next to a root in LVM or XFS is not the root: say so rather than import /boot.
    if (layout.volumes.some((v) => OTHER_ROOTS.has(v.filesystem))) throw unsupported();
    pick = [...opened].sort((a, b) => b.volume.size - a.volume.size)[0];
  }
  if (!pick) throw firstError ?? unsupported();
  return { fs: pick.fs, volume: pick.volume, layout };
}

/**
 * Disk images (raw or qcow2, detected by content) read without mounting: the partition table is
 * parsed, the root ext2/3/4 filesystem found and walked in-process, so no loop device, root or
 * qemu-nbd is needed.
 */
export const diskSource: SourceReader = {
  kind: 'disk',
  read(path: string, options: SourceReadOptions): Source {
    return readDisk(path, options);
  },
};

async function* readDisk(path: string, options: SourceReadOptions): Source {
  const dev = await openBlockDevice(path);
  try {
    const { fs, volume, layout } = await findRootFilesystem(dev, path, options.partition);
    const where = volume.index === 0 ? 'the whole disk' : `partition ${volume.index}`;
    options.reporter?.emit({ type: 'info', message: `${path}: ${dev.format} disk, reading the ${fs.kind} filesystem on ${where}` });
    for (const w of [...layout.warnings, ...fs.warnings]) options.reporter?.emit({ type: 'warn', code: 'W_DISK_IMAGE', message: w });
    yield* fs.walk();
  } finally {
    await dev.close();
  }
}

/**
 * True when the file looks like a disk image: qcow2 magic, an MBR/GPT partition table, or an ext
 * superblock at byte 1024 (a bare filesystem image). Never throws for unreadable or odd files.
 */
export async function isDiskImage(path: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return false;
  }
  try {
    const head = Buffer.alloc(2048);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead >= 4 && head.readUInt32BE(0) === 0x514649fb) return true;
    if (bytesRead >= 520 && head.toString('latin1', 512, 520) === 'EFI PART') return true;
    if (bytesRead >= 512 && looksLikeMbr(head)) return true;
    return bytesRead === 2048 && head.readUInt16LE(1024 + 0x38) === 0xef53;
  } catch {
    return false;
  } finally {
    await fh.close();
  }
}
