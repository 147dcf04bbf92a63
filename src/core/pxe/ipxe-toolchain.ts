import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MissingToolError } from '../../lib/errors.js';
import { whichTool } from '../../lib/exec.js';
import { IPXE_TARGET_SPECS, type IpxeTarget } from './ipxe-targets.js';

/** A program (on PATH) or a file (in one of `dirs`) iPXE's build needs, and the Debian package that provides it. */
type Need =
  | { kind: 'program'; names: string[]; pkg: string }
  | { kind: 'file'; name: string; dirs: string[]; pkg: string };

const program = (pkg: string, ...names: string[]): Need => ({ kind: 'program', names, pkg });

/** What every iPXE build runs: make, the compiler, binutils, perl; zbin (BIOS images) includes lzma.h. */
const COMPILER: Need[] = [
  program('make', 'make'),
  program('gcc', 'gcc'),
  program('perl', 'perl'),
  ...['as', 'ld', 'ar', 'objcopy', 'nm', 'objdump'].map((n) => program('binutils', n)),
  { kind: 'file', name: 'lzma.h', dirs: ['/usr/include', '/usr/local/include', '/usr/include/x86_64-linux-gnu'], pkg: 'liblzma-dev' },
];

/** Where iPXE's util/genfsimg looks for syslinux's files (its own list). */
export const SYSLINUX_DIRS = [
  '/usr/lib/syslinux', '/usr/lib/syslinux/bios', '/usr/lib/syslinux/mbr', '/usr/lib/syslinux/modules/bios',
  '/usr/share/syslinux', '/usr/share/syslinux/bios', '/usr/share/syslinux/mbr', '/usr/share/syslinux/modules/bios',
  '/usr/local/share/syslinux', '/usr/local/share/syslinux/bios', '/usr/local/share/syslinux/bios/core',
  '/usr/local/share/syslinux/bios/com32/elflink/ldlinux', '/usr/local/share/syslinux/mbr', '/usr/local/share/syslinux/modules/bios',
  '/usr/lib/ISOLINUX',
];

/**
 * What util/genfsimg runs for hybrid media: mtools for the FAT image (the ISO's ESP, the USB
 * image), syslinux for BIOS, and an ISO writer: xorriso, because aim sets SOURCE_DATE_EPOCH and
 * genfsimg then passes options only xorrisofs takes.
 */
const MEDIA: Record<'iso' | 'usb', Need[]> = {
  iso: [
    program('xorriso', 'xorrisofs'),
    { kind: 'file', name: 'isolinux.bin', dirs: SYSLINUX_DIRS, pkg: 'isolinux' },
    { kind: 'file', name: 'ldlinux.c32', dirs: SYSLINUX_DIRS, pkg: 'syslinux-common' },
    program('mtools', 'mformat'),
    program('mtools', 'mcopy'),
  ],
  usb: [
    program('syslinux', 'syslinux'),
    program('mtools', 'mformat'),
    program('mtools', 'mcopy'),
  ],
};

function present(need: Need, which: (tool: string) => string | undefined): boolean {
  return need.kind === 'program' ? need.names.some((n) => which(n) !== undefined) : need.dirs.some((d) => existsSync(join(d, need.name)));
}

/**
 * Fails before any work, naming every missing program or file and the Debian packages that
 * provide them, when the targets cannot be built here. `which` is injectable for tests.
 */
export function checkIpxeToolchain(targets: readonly IpxeTarget[], which: (tool: string) => string | undefined = whichTool): void {
  const needs = [...COMPILER, ...[...new Set(targets.flatMap((t) => IPXE_TARGET_SPECS[t].needs))].flatMap((m) => MEDIA[m])];
  const missing = needs.filter((n) => !present(n, which));
  if (missing.length === 0) return;
  const names = [...new Set(missing.map((n) => (n.kind === 'program' ? n.names.join('/') : n.name)))];
  const pkgs = [...new Set(missing.map((n) => n.pkg))];
  throw new MissingToolError(names.join(', '), `build iPXE from source (${targets.join(', ')})`, pkgs.join(' '));
}
