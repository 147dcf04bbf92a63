import { BeneathRoot } from '../../lib/beneath.js';
import type { Reporter } from '../../lib/reporter.js';
import type { BuildContext } from '../build/types.js';
import { exportTree } from '../export/export-image.js';
import type { Entry } from '../model/entry.js';
import { initStepPath, platformInitSteps } from './ec2-keys.js';
import { AIM_DIR, dhcpScript, powerButtonScript, rootInit } from './init-scripts.js';
import { staticBusybox } from './initramfs.js';
import type { BootPlan } from './plan.js';

/** Mount points aim's init (and systemd) need in the root filesystem. */
const MOUNT_POINTS: Record<string, number> = { proc: 0o555, sys: 0o555, dev: 0o755, run: 0o755, tmp: 0o1777 };

/** Bytes aim adds to the root filesystem (busybox and scripts), for sizing. */
export async function aimFilesBytes(plan: BootPlan): Promise<number> {
  return plan.entrypoint ? (await staticBusybox()).length + 16 * 4096 : 0;
}

const inAimDir = (path: string) => path === AIM_DIR || path.startsWith(`${AIM_DIR}/`);

/**
 * The image's entries without its /.aim and what lies below it: with aim's init, that directory
 * is aim's in the artifact, made fresh by aim. Whatever the image had there (aim's files from an
 * earlier build, or a symlink or file that would send aim's writes elsewhere) is replaced, with a
 * warning, rather than refused: an image imported from an artifact aim built has a /.aim of its
 * own and must build again. A hard link elsewhere to a file inside becomes that file. Pure.
 */
export function withoutAimDir(entries: readonly Entry[], reporter: Reporter): Entry[] {
  const dropped = entries.filter((e) => inAimDir(e.path));
  if (dropped.length === 0) return [...entries];
  const top = dropped.find((e) => e.path === AIM_DIR);
  const what = top?.type === 'symlink' ? `a symlink to ${top.target}` : top?.type === 'dir' ? `a directory of ${dropped.length - 1} entries` : `a ${top?.type ?? 'tree'}`;
  reporter.emit({ type: 'warn', code: 'W_AIM_DIR_REPLACED', path: AIM_DIR, message: `the image's ${AIM_DIR} (${what}) is replaced by aim's own ${AIM_DIR} directory in the artifact` });
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const carriers = new Map<string, string>();
  const out: Entry[] = [];
  for (const e of entries) {
    if (inAimDir(e.path)) continue;
    const target = e.type === 'hardlink' && inAimDir(e.target ?? '') ? byPath.get(e.target!) : undefined;
    if (!target || target.type === 'dir') {
      out.push(e);
      continue;
    }
    const carrier = carriers.get(target.path);
    if (carrier !== undefined) out.push({ ...e, target: carrier });
    else {
      const { path: _, ...content } = target;
      out.push({ ...content, path: e.path });
      if (target.type === 'file') carriers.set(target.path, e.path);
    }
  }
  return out;
}

/**
 * The root filesystem tree of a bootable image in `dir`: the image exported exactly (as root,
 * so owners and devices are kept), the mount points it lacks, and for aim's init /.aim (busybox,
 * init, DHCP and power-button scripts). Everything added carries the artifact's time. aim's own
 * entries are created new, beneath `dir`, never through a link of the image.
 */
export async function prepareRootTree(context: BuildContext, plan: BootPlan, dir: string): Promise<void> {
  const entries = plan.entrypoint ? withoutAimDir(context.entries, context.reporter) : context.entries;
  await exportTree(entries, context.repo.blobs, dir, context.reporter);
  const root = await BeneathRoot.open(dir);
  try {
    const rootTimes = (await root.lstat(''))!;
    const added: string[] = [];
    for (const [name, mode] of Object.entries(MOUNT_POINTS)) {
      if (plan.entries.has(`/${name}`)) continue;
      await root.mkdir(name, mode);
      added.push(name);
    }
    if (plan.entrypoint) {
      const aim = AIM_DIR.slice(1);
      for (const d of [aim, `${aim}/acpi`, `${aim}/acpi/PWRF`]) await root.mkdir(d, 0o755);
      const steps = platformInitSteps(context.request.platform);
      const files: [string, Buffer | string][] = [
        ['busybox', await staticBusybox()],
        ['init', rootInit(plan.entrypoint, plan.runtime, steps.map(initStepPath))],
        ...steps.map((s): [string, string] => [s.name, s.script]),
        ['dhcp', dhcpScript()],
        ['acpi/PWRF/00000080', powerButtonScript()],
      ];
      for (const [name, content] of files) {
        await root.writeFile(`${aim}/${name}`, content, 0o755);
        added.push(`${aim}/${name}`);
      }
      added.push(`${aim}/acpi/PWRF`, `${aim}/acpi`, aim);
    }
    for (const p of added) await root.setTimes(p, plan.epoch, plan.epoch);
    await root.setTimes('', rootTimes.atime, rootTimes.mtime);
  } finally {
    await root.close();
  }
}
