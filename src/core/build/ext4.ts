import { rm, writeFile } from 'node:fs/promises';
import { runTool } from '../../lib/exec.js';

/** Inode numbers in use, from dumpe2fs's per-group "Free inodes:" ranges. Pure. */
export function usedInodes(dumpe2fs: string): number[] {
  const perGroup = Number(/^Inodes per group:\s+(\d+)/m.exec(dumpe2fs)?.[1]);
  const total = Number(/^Inode count:\s+(\d+)/m.exec(dumpe2fs)?.[1]);
  if (!perGroup || !total) throw new Error('dumpe2fs output without inode counts');
  const free = new Set<number>();
  for (const m of dumpe2fs.matchAll(/^\s+Free inodes: ?(.*)$/gm)) {
    for (const range of m[1]!.split(',').map((r) => r.trim()).filter(Boolean)) {
      const [a, b] = range.split('-').map(Number);
      for (let i = a!; i <= (b ?? a!); i++) free.add(i);
    }
  }
  const used: number[] = [];
  for (let i = 1; i <= total; i++) if (!free.has(i)) used.push(i);
  return used;
}

export interface Ext4Request {
  image: string;
  sourceDir: string;
  mib: number;
  inodes: number;
  uuid: string;
  hashSeed: string;
  label: string;
  /** Every time in the filesystem. */
  epoch: number;
}

/**
 * An ext4 filesystem image filled from a directory with `mke2fs -d` (no mount, no loop device),
 * reproducible: fixed UUID and hash seed, E2FSPROGS_FAKE_TIME for the filesystem's own times,
 * then debugfs sets the access, change and creation times mke2fs copied from the host files.
 */
export async function makeExt4(r: Ext4Request, signal?: AbortSignal): Promise<void> {
  const env = { E2FSPROGS_FAKE_TIME: String(r.epoch), SOURCE_DATE_EPOCH: String(r.epoch) };
  const tool = { env, ...(signal ? { cancelSignal: signal } : {}) };
  await runTool('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-N', String(r.inodes), '-J', 'size=4', '-L', r.label, '-U', r.uuid,
    '-E', `hash_seed=${r.hashSeed},lazy_itable_init=0,lazy_journal_init=0`, '-d', r.sourceDir, r.image, `${r.mib}M`], tool);
  const dump = await runTool('dumpe2fs', [r.image], tool);
  const commands = usedInodes(dump.stdout).flatMap((n) => ['atime', 'ctime', 'crtime'].map((f) => `set_inode_field <${n}> ${f} ${r.epoch}`));
  const script = `${r.image}.debugfs`;
  await writeFile(script, commands.join('\n') + '\n');
  try {
    await runTool('debugfs', ['-w', '-f', script, r.image], tool);
  } finally {
    await rm(script, { force: true });
  }
}
