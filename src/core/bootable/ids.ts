import { createHash } from 'node:crypto';

/**
 * Identifiers a bootable artifact carries, derived from the image id, so the same image always
 * gives the same disk, partition and filesystem ids (and therefore the same bytes).
 */
export interface BootIds {
  diskGuid: string;
  espGuid: string;
  rootGuid: string;
  rootUuid: string;
  /** ext4 directory hash seed. */
  hashSeed: string;
  /** FAT volume id, 8 hex digits. */
  espVolumeId: string;
}

/** An RFC 4122 version-4-shaped UUID from sha256(purpose, image id). */
export function derivedUuid(imageId: string, purpose: string): string {
  const b = createHash('sha256').update(`aim:${purpose}:${imageId}`).digest();
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function bootIds(imageId: string): BootIds {
  return {
    diskGuid: derivedUuid(imageId, 'disk'),
    espGuid: derivedUuid(imageId, 'esp-partition'),
    rootGuid: derivedUuid(imageId, 'root-partition'),
    rootUuid: derivedUuid(imageId, 'root-filesystem'),
    hashSeed: derivedUuid(imageId, 'root-hash-seed'),
    espVolumeId: derivedUuid(imageId, 'esp-volume').slice(0, 8),
  };
}

/** FAT cannot store times before 1980: every time an artifact holds is at least this. */
const FAT_EPOCH = 315_619_200; // 1980-01-02

/** The one time a reproducible artifact uses: the newest mtime in the image (SOURCE_DATE_EPOCH style). */
export function sourceDateEpoch(entries: Iterable<{ mtime: number }>): number {
  let max = FAT_EPOCH;
  for (const e of entries) if (e.mtime > max) max = e.mtime;
  return max;
}
