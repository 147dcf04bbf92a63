import { existsSync, statSync } from 'node:fs';
import { copyFile, utimes, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AimError, ConfigError, ExitCode, MissingToolError, ToolFailedError } from '../../lib/errors.js';
import { requireTool, runTool, TOOLS } from '../../lib/exec.js';
import { writeNewFile } from '../../lib/fs.js';
import { RAM_ROOT_ARG } from '../bootable/init-scripts.js';
import { planBoot } from '../bootable/plan.js';
import { consoleArgs, type Platform } from '../bootable/platforms.js';
import { planPxeInitrd } from '../bootable/pxe-initrd.js';
import { warnXattrs } from '../bootable/root-cpio.js';
import type { FormatBuilder } from './types.js';

/** Where Debian's package ipxe puts its prebuilt binaries. */
export const DEBIAN_IPXE_DIR = '/usr/lib/ipxe';
/** The iPXE binaries of a bundle: BIOS (chained from a PXE ROM) and x86-64 UEFI. */
export const IPXE_BINARIES = { bios: 'undionly.kpxe', uefi: 'ipxe.efi' } as const;
/** The make targets that build them in iPXE's src directory. */
export const IPXE_TARGETS = { bios: 'bin/undionly.kpxe', uefi: 'bin-x86_64-efi/ipxe.efi' } as const;
export const PXE_FILES = { kernel: 'vmlinuz', initrd: 'initrd.img', script: 'boot.ipxe' } as const;

/** The kernel command line of a PXE boot: no root= (the root is in the initrd), aim's RAM-root switch. */
export function pxeCommandLine(platform: Platform): string {
  return `initrd=${PXE_FILES.initrd} ${consoleArgs(platform)} panic=-1 ${RAM_ROOT_ARG}`;
}

/**
 * boot.ipxe: fetches the kernel and the initrd relative to the script's own URL (TFTP or HTTP).
 * `initrd=<name>` is on the kernel line because older UEFI iPXE builds hand the kernel its
 * initrd only when named there.
 */
export function bootScript(imageId: string, platform: Platform): string {
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

/** Checks that `dir` is the top of an iPXE source tree (the make targets are under src/). */
export function checkIpxeSource(dir: string): string {
  const top = resolve(dir);
  if (!existsSync(top) || !statSync(top).isDirectory()) throw new ConfigError(`--ipxe-src ${dir}: no such directory`, { hint: 'give the top directory of an iPXE source tree (the one holding src/), or leave --ipxe-src and AIM_IPXE_SRC unset to use Debian\'s ipxe binaries' });
  const missing = ['src/Makefile', 'src/include/ipxe', 'src/arch/x86'].filter((p) => !existsSync(join(top, p)));
  if (missing.length > 0) {
    throw new ConfigError(`--ipxe-src ${dir} is not an iPXE source tree (missing ${missing.join(', ')})`, { hint: 'give the top directory of an iPXE checkout (the one holding src/Makefile)' });
  }
  return top;
}

/** Fails before any work when a tool or Debian's iPXE binaries are missing. */
export function checkPxeTools(ipxeSrc: string | undefined): void {
  for (const t of ['zstd', 'busybox']) requireTool(t);
  if (ipxeSrc !== undefined) {
    checkIpxeSource(ipxeSrc);
    requireTool('make');
    return;
  }
  for (const name of Object.values(IPXE_BINARIES)) {
    if (!existsSync(join(DEBIAN_IPXE_DIR, name))) throw new MissingToolError(join(DEBIAN_IPXE_DIR, name), TOOLS['ipxe.efi']!.purpose, TOOLS['ipxe.efi']!.pkg);
  }
}

/**
 * Builds undionly.kpxe and ipxe.efi with `script` embedded, by iPXE's own build (`make -C src
 * … EMBED=`), and copies them into `outDir`. make writes its objects into the source tree, as it
 * always does; a failure carries the tail of make's output.
 */
export async function buildIpxeFromSource(srcTop: string, script: string, outDir: string, signal?: AbortSignal): Promise<string[]> {
  const top = checkIpxeSource(srcTop);
  const src = join(top, 'src');
  try {
    await runTool('make', ['-C', src, IPXE_TARGETS.bios, IPXE_TARGETS.uefi, `EMBED=${script}`], { ...(signal ? { cancelSignal: signal } : {}) });
  } catch (e) {
    if (e instanceof ToolFailedError) {
      throw new ToolFailedError(e.command, e.toolExitCode, e.stderrTail, { cause: e, hint: 'iPXE\'s build needs gcc, binutils, make, perl and liblzma-dev (apt-get install build-essential liblzma-dev); run the make command above in the tree to see the whole output' });
    }
    throw e;
  }
  const out: string[] = [];
  for (const key of ['bios', 'uefi'] as const) {
    const built = join(src, IPXE_TARGETS[key]);
    if (!existsSync(built)) throw new AimError('E_IPXE_BUILD', `iPXE's build succeeded but wrote no ${IPXE_TARGETS[key]} in ${src}`, ExitCode.toolFailed, { hint: 'check the tree is a complete iPXE checkout' });
    const dest = join(outDir, IPXE_BINARIES[key]);
    await copyFile(built, dest);
    out.push(dest);
  }
  return out;
}

/**
 * pxe: vmlinuz, initrd.img (core initramfs + the whole root as a compressed cpio), boot.ipxe and
 * the iPXE binaries: Debian's (which chain to boot.ipxe by DHCP) or, with an iPXE source tree,
 * built with a script embedded that chains to boot.ipxe.
 */
export const buildPxe: FormatBuilder = async (context) => {
  const { request, workDir, reporter, signal } = context;
  checkPxeTools(request.ipxeSrc);
  const plan = await planBoot(context.repo, request, context.entries, reporter);
  warnXattrs(context);
  // laid out before anything is written: a manifest no cpio can hold fails here
  const initrd = await planPxeInitrd(plan, context.entries, context.repo.blobs, reporter);
  const dir = request.outDir;
  const paths = { kernel: join(dir, PXE_FILES.kernel), initrd: join(dir, PXE_FILES.initrd), script: join(dir, PXE_FILES.script) };
  // iPXE first: its build does not depend on the image and fails fast
  let ipxe: string[];
  if (request.ipxeSrc !== undefined) {
    reporter.emit({ type: 'stage', stage: 'ipxe', status: 'start', detail: `make in ${request.ipxeSrc}` });
    const embed = join(workDir, 'embed.ipxe');
    await writeFile(embed, embeddedScript());
    ipxe = await buildIpxeFromSource(request.ipxeSrc, embed, dir, signal);
    reporter.emit({ type: 'stage', stage: 'ipxe', status: 'done' });
  } else {
    ipxe = [];
    for (const name of Object.values(IPXE_BINARIES)) {
      await copyFile(join(DEBIAN_IPXE_DIR, name), join(dir, name));
      ipxe.push(join(dir, name));
    }
  }
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  reporter.emit({ type: 'stage', stage: 'initrd', status: 'start', detail: `${request.platform}: initramfs with ${initrd.core.modules.length} modules (${plan.modules.join(' ')}), root cpio of ${initrd.root.records} entries (${mib(initrd.root.length)})` });
  await writeNewFile(initrd.compressed(signal), paths.initrd, signal);
  reporter.emit({ type: 'stage', stage: 'initrd', status: 'done' });
  await writeNewFile(plan.kernel.vmlinuz.open(), paths.kernel, signal);
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
