import { chmod, lstat, mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildContext } from '../build/types.js';
import { exportImage } from '../export/export-image.js';
import { AIM_DIR, dhcpScript, powerButtonScript, rootInit } from './init-scripts.js';
import { staticBusybox } from './initramfs.js';
import type { BootPlan } from './plan.js';

/** Mount points aim's init (and systemd) need in the root filesystem. */
const MOUNT_POINTS: Record<string, number> = { proc: 0o555, sys: 0o555, dev: 0o755, run: 0o755, tmp: 0o1777 };

/** Bytes aim adds to the root filesystem (busybox and scripts), for sizing. */
export async function aimFilesBytes(plan: BootPlan): Promise<number> {
  return plan.entrypoint ? (await staticBusybox()).length + 16 * 4096 : 0;
}

/**
 * The root filesystem tree of a bootable image in `dir`: the image exported exactly (as root,
 * so owners and devices are kept), the mount points it lacks, and for aim's init /.aim (busybox,
 * init, DHCP and power-button scripts). Everything added carries the artifact's time.
 */
export async function prepareRootTree(context: BuildContext, plan: BootPlan, dir: string): Promise<void> {
  await exportImage(context.repo, context.request.imageId, { format: 'dir', out: dir }, context.reporter);
  const rootTimes = await lstat(dir);
  const added: string[] = [];
  for (const [name, mode] of Object.entries(MOUNT_POINTS)) {
    if (plan.entries.has(`/${name}`)) continue;
    await mkdir(join(dir, name), { mode });
    await chmod(join(dir, name), mode);
    added.push(join(dir, name));
  }
  if (plan.entrypoint) {
    const aim = join(dir, AIM_DIR);
    await mkdir(join(aim, 'acpi', 'PWRF'), { recursive: true, mode: 0o755 });
    const files: [string, Buffer | string][] = [
      ['busybox', await staticBusybox()],
      ['init', rootInit(plan.entrypoint, plan.runtime)],
      ['dhcp', dhcpScript()],
      ['acpi/PWRF/00000080', powerButtonScript()],
    ];
    for (const [name, content] of files) {
      await writeFile(join(aim, name), content, { mode: 0o755 });
      await chmod(join(aim, name), 0o755);
      added.push(join(aim, name));
    }
    added.push(join(aim, 'acpi', 'PWRF'), join(aim, 'acpi'), aim);
  }
  for (const p of added) await utimes(p, plan.epoch, plan.epoch);
  await utimes(dir, rootTimes.atime, rootTimes.mtime);
}
