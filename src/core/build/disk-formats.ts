import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { InternalError } from '../../lib/errors.js';
import { requireTool, runTool } from '../../lib/exec.js';
import { derivedUuid } from '../bootable/ids.js';
import { buildRawDisk } from './raw.js';
import type { BuildContext, FormatBuilder } from './types.js';

/** "KDMV", the magic of a VMDK sparse extent header, read as a little-endian u32. */
const VMDK_MAGIC = 0x564d444b;

/**
 * qemu-img writes a random content id (CID) into a VMDK's descriptor, as unpadded hex (so 1 to 8
 * digits); the same image must give the same bytes, so the descriptor embedded in the extent is
 * rewritten with a CID derived from the image id, and the rest of its area zeroed. The result
 * does not depend on the random CID, whatever its length.
 */
export async function fixVmdkCid(path: string, imageId: string): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const header = Buffer.alloc(44);
    await file.read(header, 0, header.length, 0);
    if (header.readUInt32LE(0) !== VMDK_MAGIC) throw new InternalError(`${path}: not a VMDK sparse extent`);
    // packed header: magic, version, flags (u32), capacity, grain size, descriptor offset, descriptor size (u64, sectors)
    const offset = Number(header.readBigUInt64LE(28)) * 512;
    const size = Number(header.readBigUInt64LE(36)) * 512;
    if (offset === 0 || size === 0 || size > 1 << 20) throw new InternalError(`${path}: the VMDK has no embedded descriptor`);
    const area = Buffer.alloc(size);
    await file.read(area, 0, size, offset);
    const end = area.indexOf(0);
    const text = area.subarray(0, end < 0 ? size : end).toString('latin1');
    if (!/\nCID=[0-9a-f]{1,8}\n/.test(text)) throw new InternalError(`${path}: no CID in the VMDK descriptor`);
    const fixed = Buffer.from(text.replace(/\nCID=[0-9a-f]{1,8}\n/, `\nCID=${derivedUuid(imageId, 'vmdk-cid').slice(0, 8)}\n`), 'latin1');
    if (fixed.length >= size) throw new InternalError(`${path}: the VMDK descriptor does not fit its area`);
    const out = Buffer.alloc(size);
    fixed.copy(out);
    await file.write(out, 0, size, offset);
  } finally {
    await file.close();
  }
}

/** The raw disk, built in scratch space and converted by qemu-img into `out` (default: disk.<format> in the output directory). */
export async function convertedDisk(context: BuildContext, format: 'qcow2' | 'vmdk', out = join(context.request.outDir, `disk.${format}`)): Promise<string> {
  requireTool('qemu-img');
  const raw = join(context.workDir, 'disk.raw');
  await buildRawDisk(context, raw);
  const options = format === 'vmdk' ? ['-o', 'subformat=streamOptimized'] : [];
  context.reporter.emit({ type: 'stage', stage: format, status: 'start' });
  await runTool('qemu-img', ['convert', '-f', 'raw', '-O', format, ...options, raw, out], { cancelSignal: context.signal });
  if (format === 'vmdk') await fixVmdkCid(out, context.request.imageId);
  context.reporter.emit({ type: 'stage', stage: format, status: 'done' });
  return out;
}

/** qcow2: the raw disk as a qcow2 image (QEMU/KVM, OpenStack). */
export const buildQcow2: FormatBuilder = async (context) => [{ path: await convertedDisk(context, 'qcow2'), kind: 'qcow2 disk (GPT, UEFI)' }];

/** vmdk: the raw disk as a stream-optimized VMDK, the kind ESXi and AWS image import take. */
export const buildVmdk: FormatBuilder = async (context) => [{ path: await convertedDisk(context, 'vmdk'), kind: 'VMDK stream-optimized (GPT, UEFI)' }];
