import { existsSync, statSync } from 'node:fs';
import { copyFile, open, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BeneathRoot } from '../../lib/beneath.js';
import { MissingToolError } from '../../lib/errors.js';
import { requireTool, runTool, TOOLS } from '../../lib/exec.js';
import { silentReporter, type Reporter } from '../../lib/reporter.js';
import { compareCpioNames, cpioRecord, cpioTrailer, type CpioMember } from '../boot/cpio.js';
import { RAM_ROOT_ARG, RAM_ROOT_DIR, RAM_ROOT_MARKER } from '../boot/init-scripts.js';
import { buildInitramfs } from '../boot/initramfs.js';
import { planBoot, type BootPlan } from '../boot/plan.js';
import { prepareRootTree } from '../boot/root-tree.js';
import { buildIpxe } from '../pxe/ipxe-build.js';
import { defaultCacheDir } from '../pxe/ipxe-cache.js';
import { checkIpxeSource } from '../pxe/ipxe-source.js';
import { checkIpxeToolchain } from '../pxe/ipxe-toolchain.js';
import { consoleArgs } from './raw.js';
import type { BuildContext, FormatBuilder } from './types.js';

/** Where Debian's package ipxe puts its prebuilt binaries. */
export const DEBIAN_IPXE_DIR = '/usr/lib/ipxe';
/** The iPXE binaries of a bundle: BIOS (chained from a PXE ROM) and x86-64 UEFI. */
export const IPXE_BINARIES = { bios: 'undionly.kpxe', uefi: 'ipxe.efi' } as const;
export const PXE_FILES = { kernel: 'vmlinuz', initrd: 'initrd.img', script: 'boot.ipxe' } as const;

/** The kernel command line of a PXE boot: no root= (the root is in the initrd), aim's RAM-root switch. */
export function pxeCommandLine(platform: string): string {
  return `initrd=${PXE_FILES.initrd} ${consoleArgs(platform)} panic=-1 ${RAM_ROOT_ARG}`;
}

/**
 * boot.ipxe: fetches the kernel and the initrd relative to the script's own URL (TFTP or HTTP).
 * `initrd=<name>` is on the kernel line because older UEFI iPXE builds hand the kernel its
 * initrd only when named there.
 */
export function bootScript(imageId: string, platform: string): string {
  return `#!ipxe
# aim ${imageId.slice(0, 12)}: the kernel, and an initrd holding the whole root filesystem
kernel ${PXE_FILES.kernel} ${pxeCommandLine(platform)}
initrd ${PXE_FILES.initrd}
boot
`;
}

/**
 * The script embedded in iPXE binaries built from source: configure the network, then chain to
 * boot.ipxe next to the binary on the TFTP server that DHCP named.
 */
export function embeddedScript(): string {
  return `#!ipxe
dhcp || goto failed
chain tftp://\${next-server}/${PXE_FILES.script} || goto failed
:failed
echo aim: could not chain to ${PXE_FILES.script}; rebooting in 10 s
sleep 10
reboot
`;
}

/** Fails before any work when a tool or Debian's iPXE binaries are missing. */
export function checkPxeTools(ipxeSrc: string | undefined): void {
  for (const t of ['zstd', 'busybox']) requireTool(t);
  if (ipxeSrc !== undefined) {
    if (statSync(ipxeSrc, { throwIfNoEntry: false })?.isDirectory() !== false) checkIpxeSource(ipxeSrc);
    checkIpxeToolchain(['bios', 'efi']);
    return;
  }
  for (const name of Object.values(IPXE_BINARIES)) {
    if (!existsSync(join(DEBIAN_IPXE_DIR, name))) throw new MissingToolError(join(DEBIAN_IPXE_DIR, name), TOOLS['ipxe.efi']!.purpose, TOOLS['ipxe.efi']!.pkg);
  }
}

/**
 * Builds undionly.kpxe and ipxe.efi with `script` embedded, by iPXE's own build (aim pxe ipxe
 * build's: a private copy of the source in aim's cache, binaries cached by source, script and
 * target), and copies them into `outDir`. A failure carries the tail of make's output.
 */
export async function buildIpxeFromSource(
  source: string,
  script: string,
  outDir: string,
  options: { cacheDir?: string; signal?: AbortSignal; reporter?: Reporter } = {},
): Promise<string[]> {
  const built = await buildIpxe(
    { source, script, targets: ['bios', 'efi'], cacheDir: options.cacheDir ?? defaultCacheDir(), ...(options.signal ? { signal: options.signal } : {}) },
    options.reporter ?? silentReporter,
  );
  const out: string[] = [];
  for (const [target, name] of [['bios', IPXE_BINARIES.bios], ['efi', IPXE_BINARIES.uefi]] as const) {
    const file = built.targets.find((t) => t.target === target)!.files.find((f) => f.name === name)!;
    const dest = join(outDir, name);
    await copyFile(file.path, dest);
    out.push(dest);
  }
  return out;
}

/** A member of the root cpio and the file it comes from (relative to the tree); `inode` is the host's, for files with several names. */
export interface RootMember {
  member: CpioMember;
  rel: Buffer;
  /** Regular files: the file the listing saw, which reading must find again. */
  file?: { dev: number; ino: number };
  inode?: number;
}

const SLASH = Buffer.from('/');

/**
 * The members of the root cpio: every object of the tree under `prefix/`, sorted, with their
 * owners, modes and times. The tree is walked beneath its root, never through a link.
 */
export async function rootCpioMembers(tree: BeneathRoot, prefix: string): Promise<RootMember[]> {
  const out: RootMember[] = [];
  const walk = async (rel: Buffer, name: string): Promise<void> => {
    const st = (await tree.lstat(rel))!;
    const base = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.max(0, Math.floor(st.mtimeMs / 1000)) };
    if (st.isDirectory()) {
      out.push({ member: { ...base, type: 'dir' }, rel });
      for (const child of await tree.readdir(rel)) await walk(rel.length === 0 ? child : Buffer.concat([rel, SLASH, child]), `${name}/${child.toString()}`);
    } else if (st.isFile()) out.push({ member: { ...base, type: 'file' }, rel, file: { dev: st.dev, ino: st.ino }, ...(st.nlink > 1 ? { inode: st.ino } : {}) });
    else if (st.isSymbolicLink()) out.push({ member: { ...base, type: 'symlink', target: (await tree.readlink(rel)).toString() }, rel });
    else if (st.isCharacterDevice() || st.isBlockDevice()) {
      out.push({ member: { ...base, type: st.isCharacterDevice() ? 'char' : 'block', rdevMajor: Math.floor(st.rdev / 256) & 0xfff, rdevMinor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) }, rel });
    } else if (st.isFIFO()) out.push({ member: { ...base, type: 'fifo' }, rel });
    // sockets are made by the programs that listen on them: nothing to carry
  };
  await walk(Buffer.alloc(0), prefix);
  return out.sort((a, b) => compareCpioNames(a.member, b.member));
}

/**
 * Hard links in the tree: for each host inode with several names in it, the cpio inode number
 * (the first name's place, 1-based), the number of names and which member carries the content.
 */
function linkGroups(members: readonly RootMember[]): Map<number, { ino: number; nlink: number; last: number }> {
  const groups = new Map<number, { ino: number; nlink: number; last: number }>();
  members.forEach((m, i) => {
    if (m.inode === undefined) return;
    const g = groups.get(m.inode);
    if (g) {
      g.nlink++;
      g.last = i;
    } else groups.set(m.inode, { ino: i + 1, nlink: 1, last: i });
  });
  return groups;
}

/**
 * Writes the root tree `dir` as a newc cpio under `prefix/` to `out`, member by member (contents
 * are read one file at a time), then the marker /init looks for to know the kernel unpacked it
 * all. Hard links stay hard links (one inode number, the content once). xattrs are not carried
 * (newc has no place for them). Deterministic: the same tree gives the same bytes.
 */
export async function writeRootCpio(dir: string, prefix: string, out: string, mtime: number): Promise<number> {
  const tree = await BeneathRoot.open(dir, { cacheDirs: true });
  try {
    return await writeMembers(tree, await rootCpioMembers(tree, prefix), prefix, out, mtime);
  } finally {
    await tree.close();
  }
}

async function writeMembers(tree: BeneathRoot, members: RootMember[], prefix: string, out: string, mtime: number): Promise<number> {
  const groups = linkGroups(members);
  const fh = await open(out, 'wx');
  let bytes = 0;
  try {
    // inode numbers follow the member order (1-based); the names of one file share the first's
    for (const [i, { member, rel, file, inode }] of members.entries()) {
      const group = inode === undefined ? undefined : groups.get(inode);
      const linked = group !== undefined && group.nlink > 1;
      const data = member.type === 'file' && (!linked || group.last === i) ? await readWhole(tree, rel, file!) : undefined;
      const rec = cpioRecord({ ...member, data, ...(linked ? { nlink: group.nlink } : {}) }, linked ? group.ino : i + 1, mtime);
      await fh.write(rec);
      bytes += rec.length;
    }
    const marker = cpioRecord({ name: RAM_ROOT_MARKER, type: 'file', mode: 0o644, data: Buffer.from(`${prefix}\n`) }, members.length + 1, mtime);
    await fh.write(marker);
    bytes += marker.length;
    const trailer = cpioTrailer();
    await fh.write(trailer);
    bytes += trailer.length;
  } finally {
    await fh.close();
  }
  return bytes;
}

/** A file of the tree, the one the listing saw. */
async function readWhole(tree: BeneathRoot, rel: Buffer, file: { dev: number; ino: number }): Promise<Buffer> {
  const h = await tree.openFile(rel, file);
  try {
    return await h.readFile();
  } finally {
    await h.close();
  }
}

/** Warns that newc cannot carry extended attributes (file capabilities are lost in the PXE root). */
export function warnXattrs(context: Pick<BuildContext, 'entries' | 'reporter'>): void {
  const withXattrs = context.entries.filter((e) => e.xattrs && Object.keys(e.xattrs).length > 0);
  if (withXattrs.length === 0) return;
  const first = withXattrs[0]!;
  context.reporter.emit({
    type: 'warn',
    code: 'W_PXE_XATTRS',
    path: first.path,
    message: `${withXattrs.length} file(s) have extended attributes (${first.path}: ${Object.keys(first.xattrs!).join(', ')}); the PXE initrd (newc cpio) cannot carry them, so they are dropped (file capabilities are lost)`,
  });
}

/** The initrd: the core initramfs, then the zstd-compressed root cpio, concatenated (the kernel unpacks both). */
async function buildPxeInitrd(context: BuildContext, plan: BootPlan, out: string): Promise<{ rootCpioBytes: number }> {
  const { reporter, workDir } = context;
  reporter.emit({ type: 'stage', stage: 'root', status: 'start', detail: 'root cpio' });
  const tree = join(workDir, 'root');
  await prepareRootTree(context, plan, tree);
  const rootCpio = join(workDir, 'root.cpio');
  const rootCpioBytes = await writeRootCpio(tree, RAM_ROOT_DIR, rootCpio, plan.epoch);
  await rm(tree, { recursive: true, force: true });
  const rootZst = join(workDir, 'root.cpio.zst');
  // Level 10, not the initramfs's 19: on the 184 MiB gold nginx root, 5 s instead of 72 s for a
  // 14% larger file. One thread, so the bytes do not depend on the machine.
  await runTool('zstd', ['-q', '-10', '-T1', '--no-progress', '-f', rootCpio, '-o', rootZst]);
  await rm(rootCpio, { force: true });
  reporter.emit({ type: 'stage', stage: 'root', status: 'done' });
  reporter.emit({ type: 'stage', stage: 'initramfs', status: 'start', detail: `${context.request.platform}: ${plan.modules.join(' ')}` });
  const core = await buildInitramfs({ kernel: plan.kernel, modules: plan.modules, init: plan.init, mtime: plan.epoch }, join(workDir, 'core.img'));
  reporter.emit({ type: 'stage', stage: 'initramfs', status: 'done', detail: `${core.modules.length} modules` });
  // Two zstd frames back to back: the kernel unpacks one archive after the other into its rootfs.
  await writeFile(out, await readFile(core.path), { flag: 'wx' });
  await writeFile(out, await readFile(rootZst), { flag: 'a' });
  return { rootCpioBytes };
}

/**
 * pxe: vmlinuz, initrd.img (core initramfs + the whole root as a compressed cpio), boot.ipxe and
 * the iPXE binaries: Debian's (which chain to boot.ipxe by DHCP) or, with an iPXE source (tree or
 * tarball), built with a script embedded that chains to boot.ipxe (from aim's iPXE cache).
 */
export const buildPxe: FormatBuilder = async (context) => {
  const { request } = context;
  checkPxeTools(request.ipxeSrc);
  const plan = await planBoot(context);
  warnXattrs(context);
  const dir = request.outDir;
  const paths = { kernel: join(dir, PXE_FILES.kernel), initrd: join(dir, PXE_FILES.initrd), script: join(dir, PXE_FILES.script) };
  // iPXE first: its build does not depend on the image and fails fast
  let ipxe: string[];
  if (request.ipxeSrc !== undefined) {
    ipxe = await buildIpxeFromSource(request.ipxeSrc, embeddedScript(), dir, { signal: request.signal, reporter: context.reporter });
  } else {
    ipxe = [];
    for (const name of Object.values(IPXE_BINARIES)) {
      await copyFile(join(DEBIAN_IPXE_DIR, name), join(dir, name));
      ipxe.push(join(dir, name));
    }
  }
  await buildPxeInitrd(context, plan, paths.initrd);
  await writeFile(paths.kernel, await plan.kernel.readVmlinuz(), { flag: 'wx' });
  await writeFile(paths.script, bootScript(request.imageId, request.platform), { flag: 'wx' });
  for (const p of [paths.kernel, paths.initrd, paths.script, ...ipxe]) await utimes(p, plan.epoch, plan.epoch);
  const how = request.ipxeSrc !== undefined ? 'script embedded' : 'Debian\'s, chains to boot.ipxe by DHCP';
  return [
    { path: paths.kernel, kind: 'kernel' },
    { path: paths.initrd, kind: 'initrd (initramfs + root cpio, zstd)' },
    { path: paths.script, kind: 'boot.ipxe' },
    { path: join(dir, IPXE_BINARIES.bios), kind: `iPXE for BIOS (${how})` },
    { path: join(dir, IPXE_BINARIES.uefi), kind: `iPXE for UEFI (${how})` },
  ];
};
