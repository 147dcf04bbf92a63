import { readFile } from 'node:fs/promises';
import { sep } from 'node:path';
import { runTool } from './exec.js';

/** One line of /proc/self/mountinfo: where it is mounted, the filesystem type and its options. */
export interface MountInfo {
  mountPoint: string;
  fsType: string;
  /** The superblock options (for overlay: lowerdir=…,upperdir=…,workdir=…). */
  superOptions: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The mounts of this process's mount namespace, in mount order. */
export async function mounts(): Promise<MountInfo[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const fields = left?.split(' ') ?? [];
    const after = right?.split(' ') ?? [];
    if (fields.length < 5 || after.length < 3) continue;
    out.push({ mountPoint: unescape(fields[4]!), fsType: after[0]!, superOptions: unescape(after[2]!) });
  }
  return out;
}

const within = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);

/** Mount points at or below `dir` (a path without symlinks), deepest first: the order to unmount them in. */
export async function mountsUnder(dir: string): Promise<string[]> {
  return (await mounts())
    .map((m) => m.mountPoint)
    .filter((p) => within(p, dir))
    .reverse();
}

/** Whether an overlay mount of this namespace uses a lower directory at or below `dir`. */
export async function overlayUsesLower(dir: string): Promise<boolean> {
  for (const m of await mounts()) {
    if (m.fsType !== 'overlay') continue;
    const lower = /(?:^|,)lowerdir=([^,]*)/.exec(m.superOptions)?.[1];
    if (lower?.split(':').some((l) => within(l, dir))) return true;
  }
  return false;
}

/** Unmounts `path`; when it is still busy, detaches it (it goes once its last user does). */
export async function unmount(path: string): Promise<void> {
  try {
    await runTool('umount', [path]);
  } catch {
    await runTool('umount', ['--lazy', path]);
  }
}

/** Unmounts everything mounted at or below `dir`, deepest first. */
export async function unmountUnder(dir: string): Promise<number> {
  const points = await mountsUnder(dir);
  for (const p of points) await unmount(p);
  return points.length;
}
