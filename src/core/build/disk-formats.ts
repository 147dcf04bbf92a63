import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { InternalError } from '../../lib/errors.js';
import { requireTool, runTool } from '../../lib/exec.js';
import { derivedUuid } from '../boot/ids.js';
import { buildRawDisk } from './raw.js';
import type { BuildContext, FormatBuilder } from './types.js';

/**
 * qemu-img writes a random content id (CID) into a VMDK's descriptor; the same image must give
 * the same bytes, so the CID is replaced, in place, by one derived from the image id.
 */
export async function fixVmdkCid(path: string, imageId: string): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const head = Buffer.alloc(64 * 1024);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    const text = head.subarray(0, bytesRead).toString('latin1');
    const m = /\nCID=([0-9a-f]{8})\n/.exec(text);
    if (!m) throw new InternalError(`${path}: no CID in the VMDK descriptor`);
    const cid = derivedUuid(imageId, 'vmdk-cid').slice(0, 8);
    await file.write(Buffer.from(cid, 'latin1'), 0, 8, m.index + '\nCID='.length);
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
  await runTool('qemu-img', ['convert', '-f', 'raw', '-O', format, ...options, raw, out]);
  if (format === 'vmdk') await fixVmdkCid(out, context.request.imageId);
  context.reporter.emit({ type: 'stage', stage: format, status: 'done' });
  return out;
}

/** qcow2: the raw disk as a qcow2 image (QEMU/KVM, OpenStack). */
export const buildQcow2: FormatBuilder = async (context) => [{ path: await convertedDisk(context, 'qcow2'), kind: 'qcow2 disk (GPT, UEFI)' }];

/** vmdk: the raw disk as a stream-optimized VMDK, the kind ESXi and AWS image import take. */
export const buildVmdk: FormatBuilder = async (context) => [{ path: await convertedDisk(context, 'vmdk'), kind: 'VMDK stream-optimized (GPT, UEFI)' }];
