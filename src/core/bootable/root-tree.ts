import { BeneathRoot } from '../../lib/beneath.js';
import { throwIfCancelled } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import { exportTree } from '../export/export-image.js';
import type { Entry } from '../model/entry.js';
import type { BlobStore } from '../repository/types.js';
import { initStepPath, platformInitSteps } from './ec2-keys.js';
import { AIM_DIR, dhcpScript, powerButtonScript, rootInit } from './init-scripts.js';
import { bufferContent, type ContentSource } from './content.js';
import { staticBusybox } from './initramfs.js';
import type { BootPlan } from './plan.js';

/** Mount points aim's init (and systemd) need in the root filesystem. */
const MOUNT_POINTS: Record<string, number> = { proc: 0o555, sys: 0o555, dev: 0o755, run: 0o755, tmp: 0o1777 };

/**
 * An object aim adds to the root of a bootable image: owned by root, carrying the artifact's time.
 * Directories come before what they hold.
 */
export interface RootAddition {
  /** Absolute path in the image ("/proc", "/.aim/init"). */
  path: string;
  type: 'dir' | 'file';
  mode: number;
  content?: ContentSource;
}

/**
 * What aim adds to an image's root, the same for every bootable format: the mount points the
 * image lacks and, for aim's init, /.aim (busybox, init, DHCP and power-button scripts, and the
 * platform's init steps: EC2's SSH key from instance metadata).
 */
export async function aimRootAdditions(plan: BootPlan): Promise<RootAddition[]> {
  const out: RootAddition[] = Object.entries(MOUNT_POINTS).filter(([name]) => !plan.entries.has(`/${name}`)).map(([name, mode]) => ({ path: `/${name}`, type: 'dir', mode }));
  if (!plan.entrypoint) return out;
  for (const d of [AIM_DIR, `${AIM_DIR}/acpi`, `${AIM_DIR}/acpi/PWRF`]) out.push({ path: d, type: 'dir', mode: 0o755 });
  const text = (s: string) => bufferContent(Buffer.from(s));
  const steps = platformInitSteps(plan.platform);
  const files: [string, ContentSource][] = [
    ['busybox', await staticBusybox()],
    ['init', text(rootInit(plan.entrypoint, plan.runtime, steps.map(initStepPath)))],
    ['dhcp', text(dhcpScript())],
    ['acpi/PWRF/00000080', text(powerButtonScript())],
    ...steps.map((s): [string, ContentSource] => [s.name, text(s.script)]),
  ];
  for (const [name, content] of files) out.push({ path: `${AIM_DIR}/${name}`, type: 'file', mode: 0o755, content });
  return out;
}

/** Bytes aim adds to the root filesystem (busybox and scripts), for sizing. */
export async function aimFilesBytes(plan: BootPlan): Promise<number> {
  return plan.entrypoint ? (await staticBusybox()).size + 16 * 4096 : 0;
}

/** The image's entries that go into a bootable root: with aim's init, all but its /.aim (withoutAimDir). */
export function bootRootEntries(plan: BootPlan, imageEntries: readonly Entry[], reporter: Reporter): Entry[] {
  return plan.entrypoint ? withoutAimDir(imageEntries, reporter) : [...imageEntries];
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
 * The root filesystem tree of a bootable image in `dir` (for mke2fs -d): the image exported
 * exactly (as root, so owners and devices are kept) and aim's additions (aimRootAdditions), every
 * one carrying the artifact's time. aim's own entries are created new, beneath `dir`, never
 * through a link of the image.
 */
export async function prepareRootTree(plan: BootPlan, imageEntries: Entry[], blobs: BlobStore, dir: string, reporter: Reporter, signal?: AbortSignal): Promise<void> {
  const additions = await aimRootAdditions(plan);
  await exportTree(bootRootEntries(plan, imageEntries, reporter), blobs, dir, reporter, signal);
  const root = await BeneathRoot.open(dir);
  try {
    const rootTimes = (await root.lstat(''))!;
    for (const a of additions) {
      throwIfCancelled(signal);
      const rel = a.path.slice(1);
      if (a.type === 'dir') await root.mkdir(rel, a.mode);
      else {
        // busybox and scripts: a few MiB at most
        const chunks: Buffer[] = [];
        for await (const chunk of a.content!.open()) chunks.push(chunk);
        await root.writeFile(rel, Buffer.concat(chunks), a.mode);
      }
    }
    // deepest first, so setting a child's time does not change its directory's again
    for (const a of [...additions].reverse()) await root.setTimes(a.path.slice(1), plan.epoch, plan.epoch);
    await root.setTimes('', rootTimes.atime, rootTimes.mtime);
  } finally {
    await root.close();
  }
}
