import { sha256File } from '../../lib/fs.js';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InputError } from '../../lib/errors.js';
import { requireTool, runTool } from '../../lib/exec.js';
import { sourceDateEpoch } from '../bootable/ids.js';
import { writeTar, type TarWriteEntry } from '../export/tar-writer.js';
import { indexTarFile } from '../import/tar-reader.js';
import { convertedDisk } from './disk-formats.js';
import { OVA_DEFAULT_MEMORY_MIB, ovfDescriptor } from './ovf.js';
import type { FormatBuilder } from './types.js';


export interface OvaInput {
  /** A stream-optimized VMDK. */
  vmdk: string;
  /** The .ova to write (must not exist). */
  out: string;
  /** VM name; also the base name of the files inside (name.ovf, name.mf, name-disk1.vmdk). */
  name: string;
  memoryMiB: number;
  cpus?: number;
  /** The one time every tar member carries. */
  mtime: number;
  /** Stops the tools and the archive; the .ova is removed. */
  signal?: AbortSignal;
}

interface VmdkFacts {
  virtualBytes: number;
  populatedBytes: number;
}

/** Virtual size and bytes holding data (qemu-img map's data extents) of a stream-optimized VMDK. */
async function vmdkFacts(vmdk: string, signal?: AbortSignal): Promise<VmdkFacts> {
  const tool = signal ? { cancelSignal: signal } : {};
  const info = JSON.parse((await runTool('qemu-img', ['info', '--output=json', vmdk], tool)).stdout) as {
    format?: string;
    'virtual-size'?: number;
    'format-specific'?: { data?: { 'create-type'?: string } };
  };
  const type = info['format-specific']?.data?.['create-type'];
  if (info.format !== 'vmdk' || type !== 'streamOptimized') {
    throw new InputError('E_NOT_STREAM_OPTIMIZED', `${vmdk}: an OVA needs a stream-optimized VMDK, not ${info.format === 'vmdk' ? `a ${type ?? 'unknown'} VMDK` : info.format ?? 'this file'}`);
  }
  const map = JSON.parse((await runTool('qemu-img', ['map', '--output=json', '-f', 'vmdk', vmdk], tool)).stdout) as { length: number; data: boolean }[];
  return { virtualBytes: info['virtual-size'] ?? 0, populatedBytes: map.reduce((sum, m) => sum + (m.data ? m.length : 0), 0) };
}


/**
 * Writes an OVA: a ustar archive holding the OVF descriptor first (vSphere reads it before the
 * rest arrives), then the manifest of SHA256 digests, then the disk. Members carry fixed owners,
 * modes and one time, so the same VMDK and settings give the same bytes.
 */
export async function writeOva(input: OvaInput): Promise<{ ovf: string; manifest: string }> {
  requireTool('qemu-img');
  const facts = await vmdkFacts(input.vmdk, input.signal);
  const diskFile = `${input.name}-disk1.vmdk`;
  const diskBytes = (await stat(input.vmdk)).size;
  const ovf = ovfDescriptor({ name: input.name, diskFile, diskFileBytes: diskBytes, capacityBytes: facts.virtualBytes, populatedBytes: facts.populatedBytes, memoryMiB: input.memoryMiB, cpus: input.cpus ?? 1 });
  const ovfName = `${input.name}.ovf`;
  const digest = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
  const manifest = `SHA256(${ovfName})= ${digest(ovf)}\nSHA256(${diskFile})= ${await sha256File(input.vmdk)}\n`;
  const member = (name: string, size: number, content: Readable): TarWriteEntry => ({
    name: Buffer.from(name),
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: input.mtime,
    size,
    content,
  });
  const ovfBytes = Buffer.from(ovf);
  const mfBytes = Buffer.from(manifest);
  const file = await open(input.out, 'wx');
  const out = file.createWriteStream();
  const closed = new Promise<void>((resolve, reject) => {
    out.on('close', resolve);
    out.on('error', reject);
  });
  try {
    await writeTar(
      [member(ovfName, ovfBytes.length, Readable.from([ovfBytes])), member(`${input.name}.mf`, mfBytes.length, Readable.from([mfBytes])), member(diskFile, diskBytes, createReadStream(input.vmdk))],
      out,
      input.signal,
    );
    out.end();
    await closed;
  } catch (e) {
    out.destroy();
    await closed.catch(() => undefined);
    await rm(input.out, { force: true });
    throw e;
  }
  return { ovf, manifest };
}

/**
 * The disk inside an OVA, copied to `dir` (for booting it): the first .vmdk member, found by
 * reading the tar headers only.
 */
export async function extractOvaDisk(ova: string, dir: string, signal?: AbortSignal): Promise<string> {
  const { members } = await indexTarFile(ova);
  const disk = members.find((m) => m.type === 'file' && m.name.toString('utf8').endsWith('.vmdk'));
  if (!disk) throw new InputError('E_NOT_BOOTABLE', `${ova}: the OVA holds no .vmdk disk`);
  const name = disk.name.toString('utf8').replace(/^.*\//, '');
  const out = join(dir, name);
  await pipeline(createReadStream(ova, { start: disk.dataOffset, end: disk.dataOffset + disk.dataSize - 1 }), createWriteStream(out, { flags: 'wx' }), ...(signal ? [{ signal }] : []));
  return out;
}

/**
 * ova: an OVF 1.0 appliance for vSphere (EFI, PVSCSI disk, VMXNET3 NIC) around a stream-optimized
 * VMDK. With `request.vmdk` (a VMDK already built from the same image) the disk is packed as is,
 * so a provider that ships both never builds the disk twice.
 */
export const buildOva: FormatBuilder = async (context) => {
  const { request } = context;
  const name = request.vmName ?? `aim-${request.imageId.slice(0, 12)}`;
  let vmdk = request.vmdk;
  if (vmdk === undefined) {
    vmdk = join(context.workDir, `${name}-disk1.vmdk`);
    await convertedDisk(context, 'vmdk', vmdk);
  }
  context.reporter.emit({ type: 'stage', stage: 'ova', status: 'start' });
  const out = join(request.outDir, `${name}.ova`);
  await writeOva({ vmdk, out, name, memoryMiB: request.memoryMiB ?? OVA_DEFAULT_MEMORY_MIB, mtime: sourceDateEpoch(context.entries), signal: context.signal });
  context.reporter.emit({ type: 'stage', stage: 'ova', status: 'done' });
  return [{ path: out, kind: 'OVA (OVF 1.0 + stream-optimized VMDK; EFI, PVSCSI, VMXNET3)' }];
};
