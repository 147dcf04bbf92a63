import { existsSync } from 'node:fs';
import { copyFile, open, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, MissingToolError, throwIfCancelled } from '../../lib/errors.js';
import { writeNewFile } from '../../lib/fs.js';
import { requireTool, runTool } from '../../lib/exec.js';
import { makeExt4 } from './ext4.js';
import { buildInitramfs } from '../bootable/initramfs.js';
import { planBoot, type BootPlan } from '../bootable/plan.js';
import { consoleArgs, withKernelArgs } from '../bootable/platforms.js';
import { aimFilesBytes, prepareRootTree } from '../bootable/root-tree.js';
import { ext4Size } from './ext4-size.js';
import type { BuildContext, FormatBuilder } from './types.js';

const MiB = 1024 * 1024;
const ESP_MIB = 64;
/** GPT needs room for its primary table before the first partition and its backup after the last. */
const GAP_MIB = 1;
export const SYSTEMD_BOOT_EFI = '/usr/lib/systemd/boot/efi/systemd-bootx64.efi';
const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
/** Discoverable Partitions Specification: root partition (x86-64). */
const ROOT_TYPE = '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709';

const RAW_TOOLS = ['mke2fs', 'dumpe2fs', 'debugfs', 'sfdisk', 'mkfs.vfat', 'mmd', 'mcopy', 'zstd', 'busybox'];

/** The kernel command line of an aim-booted disk. */
export function kernelCommandLine(plan: BootPlan, extra = ''): string {
  return withKernelArgs(`root=UUID=${plan.ids.rootUuid} rw ${consoleArgs(plan.platform)} panic=-1`, extra);
}

/** Copies `src` into `dst` at `offset`, leaving all-zero blocks as holes (dst is sparse). */
async function writeAt(src: string, dst: string, offset: number, signal: AbortSignal): Promise<void> {
  const input = await open(src, 'r');
  const output = await open(dst, 'r+');
  try {
    const buf = Buffer.alloc(MiB);
    for (let pos = 0; ; ) {
      throwIfCancelled(signal);
      const { bytesRead } = await input.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      for (let b = 0; b < bytesRead; b += 4096) {
        const chunk = buf.subarray(b, Math.min(b + 4096, bytesRead));
        if (chunk.some((x) => x !== 0)) await output.write(chunk, 0, chunk.length, offset + pos + b);
      }
      pos += bytesRead;
    }
  } finally {
    await input.close();
    await output.close();
  }
}

/** The EFI system partition as a FAT32 image: systemd-boot, its loader entry, the kernel and initramfs. */
async function makeEsp(context: BuildContext, plan: BootPlan, dir: string, initrd: string): Promise<string> {
  const esp = join(dir, 'esp.img');
  const env = { SOURCE_DATE_EPOCH: String(plan.coreEpoch) };
  const tool = { env, cancelSignal: context.signal };
  const vmlinuz = join(dir, 'vmlinuz');
  await writeNewFile(plan.kernel.vmlinuz.open(), vmlinuz, context.signal);
  const loader = join(dir, 'loader.conf');
  await writeFile(loader, 'default aim.conf\ntimeout 0\nconsole-mode keep\neditor no\n');
  const entry = join(dir, 'aim.conf');
  // the title names the image, or the lineage of versions when the ids come from a seed (the same
  // bytes for every version, like the rest of the EFI partition)
  const title = (context.request.idSeed ?? context.request.imageId.slice(0, 12)).replace(/[^\x20-\x7e]/g, '_');
  await writeFile(entry, `title aim ${title}\nlinux /aim/vmlinuz\ninitrd /aim/initrd.img\noptions ${kernelCommandLine(plan, context.request.kernelArgs)}\n`);
  for (const f of [vmlinuz, loader, entry, initrd]) await utimes(f, plan.coreEpoch, plan.coreEpoch);
  await writeFile(esp, '');
  await truncate(esp, ESP_MIB * MiB);
  await runTool('mkfs.vfat', ['-F', '32', '-s', '1', '--invariant', '-i', plan.ids.espVolumeId, '-n', 'AIM-ESP', esp], tool);
  await runTool('mmd', ['-i', esp, '::/EFI', '::/EFI/BOOT', '::/loader', '::/loader/entries', '::/aim'], tool);
  // -m keeps each file's time, so the boot loader goes through a copy carrying the artifact's time.
  const efi = join(dir, 'BOOTX64.EFI');
  await copyFile(SYSTEMD_BOOT_EFI, efi);
  await utimes(efi, plan.coreEpoch, plan.coreEpoch);
  const copies: [string, string][] = [[efi, '::/EFI/BOOT/BOOTX64.EFI'], [loader, '::/loader/loader.conf'], [entry, '::/loader/entries/aim.conf'], [vmlinuz, '::/aim/vmlinuz'], [initrd, '::/aim/initrd.img']];
  for (const [from, to] of copies) await runTool('mcopy', ['-m', '-i', esp, from, to], tool);
  return esp;
}

/** Sizes of the disk: root filesystem and whole disk, checked against --size before any work. */
async function diskLayout(context: BuildContext, plan: BootPlan): Promise<{ rootMiB: number; inodes: number; diskMiB: number }> {
  const fs = ext4Size(context.entries, await aimFilesBytes(plan), context.request.headroomMiB);
  const minimum = GAP_MIB + ESP_MIB + fs.mib + GAP_MIB;
  const size = context.request.sizeMiB;
  if (size !== undefined && size < minimum) {
    throw new ConfigError(`disk too small: --size ${size} MiB, but the image needs at least ${minimum} MiB (${ESP_MIB} MiB EFI partition, ${fs.mib} MiB root with ${context.request.headroomMiB} MiB headroom)`, {
      hint: `give --size ${minimum} or more, or lower --headroom`,
    });
  }
  const diskMiB = size ?? minimum;
  return { rootMiB: diskMiB - 2 * GAP_MIB - ESP_MIB, inodes: fs.inodes, diskMiB };
}

/** Fails with the Debian package to install when a tool or the systemd-boot binary is missing. */
export function checkRawTools(): void {
  for (const t of RAW_TOOLS) requireTool(t);
  if (!existsSync(SYSTEMD_BOOT_EFI)) throw new MissingToolError('systemd-bootx64.efi', 'boot raw disks with UEFI (systemd-boot)', 'systemd-boot-efi');
}

/**
 * A GPT disk image in `out`: a FAT32 EFI system partition booting systemd-boot (kernel,
 * initramfs, command line root=UUID=…) and an ext4 root made with mke2fs -d. No loop devices, no
 * mounts; every id and time derives from the image, so the same image gives the same bytes.
 */
export async function buildRawDisk(context: BuildContext, out: string): Promise<{ plan: BootPlan; diskMiB: number }> {
  checkRawTools();
  const plan = await planBoot(context.repo, context.request, context.entries, context.reporter);
  const layout = await diskLayout(context, plan);
  const { reporter, workDir, signal } = context;
  reporter.emit({ type: 'stage', stage: 'root', status: 'start', detail: `${layout.rootMiB} MiB ext4` });
  const tree = join(workDir, 'root');
  await prepareRootTree(plan, context.entries, context.repo.blobs, tree, reporter, signal);
  const rootImg = join(workDir, 'root.img');
  await makeExt4({ image: rootImg, sourceDir: tree, mib: layout.rootMiB, inodes: layout.inodes, uuid: plan.ids.rootUuid, hashSeed: plan.ids.hashSeed, label: 'aim-root', epoch: plan.epoch }, signal);
  reporter.emit({ type: 'stage', stage: 'root', status: 'done' });
  reporter.emit({ type: 'stage', stage: 'initramfs', status: 'start', detail: `${context.request.platform}: ${plan.modules.join(' ')}` });
  const initrd = await buildInitramfs({ kernel: plan.kernel, modules: plan.modules, init: plan.init, mtime: plan.coreEpoch }, join(workDir, 'initrd.img'), signal);
  reporter.emit({ type: 'stage', stage: 'initramfs', status: 'done', detail: `${initrd.modules.length} modules` });
  const esp = await makeEsp(context, plan, workDir, initrd.path);
  reporter.emit({ type: 'stage', stage: 'disk', status: 'start', detail: `${layout.diskMiB} MiB GPT` });
  await writeFile(out, '', { flag: 'wx' });
  await truncate(out, layout.diskMiB * MiB);
  const espStart = GAP_MIB * MiB;
  const rootStart = espStart + ESP_MIB * MiB;
  const sectors = (bytes: number) => bytes / 512;
  const table = [
    'label: gpt',
    `label-id: ${plan.ids.diskGuid}`,
    'unit: sectors',
    `start=${sectors(espStart)}, size=${sectors(ESP_MIB * MiB)}, type=${ESP_TYPE}, uuid=${plan.ids.espGuid}, name="ESP"`,
    `start=${sectors(rootStart)}, size=${sectors(layout.rootMiB * MiB)}, type=${ROOT_TYPE}, uuid=${plan.ids.rootGuid}, name="root"`,
  ].join('\n');
  await runTool('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', out], { input: `${table}\n`, cancelSignal: signal });
  await writeAt(esp, out, espStart, signal);
  await writeAt(rootImg, out, rootStart, signal);
  reporter.emit({ type: 'stage', stage: 'disk', status: 'done' });
  return { plan, diskMiB: layout.diskMiB };
}

/** raw: disk.raw, a UEFI-bootable GPT disk image. */
export const buildRaw: FormatBuilder = async (context) => {
  const out = join(context.request.outDir, 'disk.raw');
  await buildRawDisk(context, out);
  return [{ path: out, kind: 'raw disk (GPT, UEFI)' }];
};
