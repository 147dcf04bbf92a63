import { existsSync, statSync } from 'node:fs';
import { copyFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MissingToolError } from '../../lib/errors.js';
import { requireTool, TOOLS } from '../../lib/exec.js';
import { writeNewFile } from '../../lib/fs.js';
import { silentReporter, type Reporter } from '../../lib/reporter.js';
import { RAM_ROOT_ARG } from '../bootable/init-scripts.js';
import { planBoot } from '../bootable/plan.js';
import { consoleArgs, withKernelArgs, type Platform } from '../bootable/platforms.js';
import { planPxeInitrd } from '../bootable/pxe-initrd.js';
import { warnXattrs } from '../bootable/root-cpio.js';
import { buildIpxe } from '../pxe/ipxe-build.js';
import { defaultCacheDir } from '../pxe/ipxe-cache.js';
import { checkIpxeSource } from '../pxe/ipxe-source.js';
import { checkIpxeToolchain } from '../pxe/ipxe-toolchain.js';
import type { FormatBuilder } from './types.js';

/** Where Debian's package ipxe puts its prebuilt binaries. */
export const DEBIAN_IPXE_DIR = '/usr/lib/ipxe';
/** The iPXE binaries of a bundle: BIOS (chained from a PXE ROM) and x86-64 UEFI. */
export const IPXE_BINARIES = { bios: 'undionly.kpxe', uefi: 'ipxe.efi' } as const;
export const PXE_FILES = { kernel: 'vmlinuz', initrd: 'initrd.img', script: 'boot.ipxe' } as const;

/** The kernel command line of a PXE boot: no root= (the root is in the initrd), aim's RAM-root switch. */
export function pxeCommandLine(platform: Platform, extra = ''): string {
  return withKernelArgs(`initrd=${PXE_FILES.initrd} ${consoleArgs(platform)} panic=-1 ${RAM_ROOT_ARG}`, extra);
}

/**
 * boot.ipxe: fetches the kernel and the initrd relative to the script's own URL (TFTP or HTTP).
 * `initrd=<name>` is on the kernel line because older UEFI iPXE builds hand the kernel its
 * initrd only when named there.
 */
export function bootScript(imageId: string, platform: Platform, kernelArgs = ''): string {
  return `#!ipxe
# aim ${imageId.slice(0, 12)}: the kernel, and an initrd holding the whole root filesystem
kernel ${PXE_FILES.kernel} ${pxeCommandLine(platform, kernelArgs)}
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

/**
 * pxe: vmlinuz, initrd.img (core initramfs + the whole root as a compressed cpio), boot.ipxe and
 * the iPXE binaries: Debian's (which chain to boot.ipxe by DHCP) or, with an iPXE source (tree or
 * tarball), built with a script embedded that chains to boot.ipxe (from aim's iPXE cache).
 */
export const buildPxe: FormatBuilder = async (context) => {
  const { request, reporter, signal } = context;
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
    ipxe = await buildIpxeFromSource(request.ipxeSrc, embeddedScript(), dir, { signal, reporter });
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
  await writeFile(paths.script, bootScript(request.imageId, request.platform, request.kernelArgs), { flag: 'wx' });
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
