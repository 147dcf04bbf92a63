import { ConfigError, InputError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import { lookupImagePath, resolveImagePath } from '../analyze/resolve.js';
import type { Entry } from '../model/entry.js';
import type { Repository } from '../repository/repository.js';
import { runtimeForImage } from '../runtime/for-image.js';
import type { RuntimeAction } from '../runtime/plan.js';
import { readEntrypoint } from '../slim/entrypoint.js';
import { bootIds, sourceDateEpoch, type BootIds } from './ids.js';
import { AIM_BUSYBOX, AIM_INIT } from './init-scripts.js';
import { resolveBootKernel, type BootKernel } from './kernel.js';
import { moduleClosure, wantedModules } from './modules.js';
import type { Platform } from './platforms.js';

/** What a bootable image is asked to be: the part of a build request the assembly reads. */
export interface BootableRequest {
  /** Image to boot (resolved id). */
  imageId: string;
  platform: Platform;
  /** Extra kernel modules for the initramfs, beyond the platform's list. */
  modules: readonly string[];
  /** aim's minimal init supervising the entrypoint, or the image's own systemd. */
  init: 'aim' | 'systemd';
  /** Command the booted image starts as its service (argv); default: the one the image records. */
  entrypoint?: string[];
  /** Kernel core image (ref); default: the image's own kernel. */
  kernelImage?: string;
  /**
   * Derive the disk, partition and filesystem ids from this instead of the image id: successive
   * versions of one image built with the same seed differ only where their content does.
   */
  idSeed?: string;
}

/** Everything a bootable build decided before writing anything. */
export interface BootPlan {
  imageId: string;
  platform: Platform;
  kernel: BootKernel;
  /** Modules wanted in the initramfs (platform list and --module extras). */
  modules: string[];
  /** Init the initramfs switches to in the root filesystem. */
  init: string;
  /** The service aim's init supervises (argv); absent when booting systemd. */
  entrypoint?: string[];
  /** Runtime state aim's init creates before the entrypoint (tmpfiles.d, the service's directories). */
  runtime?: RuntimeAction[];
  ids: BootIds;
  /** The timestamp of the root filesystem: the image's newest mtime. */
  epoch: number;
  /**
   * The timestamp of the boot core (initramfs, EFI partition), which holds only the kernel and
   * aim's init: the kernel's, so every image booting that kernel gets the same core bytes.
   */
  coreEpoch: number;
  entries: ReadonlyMap<string, Entry>;
}

const PATH_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Whether a command word names an executable file in the image (absolute, or found on PATH). */
function inImage(entries: ReadonlyMap<string, Entry>, word: string): boolean {
  const candidates = word.startsWith('/') ? [word] : word.includes('/') ? [] : PATH_DIRS.map((d) => `${d}/${word}`);
  return candidates.some((p) => lookupImagePath(entries, p)?.type === 'file');
}

/** The program a `sh -c` command line starts first, when it is a plain word. */
function firstProgram(command: string): string | undefined {
  const words = command.trim().split(/\s+/);
  let i = 0;
  while (i < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i]!)) i++;
  const w = words[i]?.replace(/^exec$/, '') === '' ? words[i + 1] : words[i];
  return w !== undefined && /^[A-Za-z0-9_./+-]+$/.test(w) ? w : undefined;
}

/**
 * The entrypoint, checked against the image: its program (and, for `sh -c CMD`, the program CMD
 * starts) must be in the image. When the image has no /bin/sh, `sh -c` runs with aim's busybox.
 */
export function checkEntrypoint(entries: ReadonlyMap<string, Entry>, argv: readonly string[]): string[] {
  if (argv.length === 0) throw new ConfigError('the entrypoint is empty');
  const [program, flag, command] = argv;
  const isShellC = argv.length === 3 && (program === '/bin/sh' || program === 'sh') && flag === '-c';
  if (isShellC) {
    const first = firstProgram(command!);
    if (first !== undefined && !inImage(entries, first)) {
      throw new InputError('E_NO_ENTRYPOINT', `entrypoint ${first} (of "${command}") is not in the image`, { hint: 'pass --entrypoint with a command the image has, or keep it in the slim image (--keep)' });
    }
    return inImage(entries, '/bin/sh') ? [...argv] : [AIM_BUSYBOX, 'sh', '-c', command!];
  }
  if (!inImage(entries, program!)) {
    throw new InputError('E_NO_ENTRYPOINT', `entrypoint ${program} is not in the image`, { hint: 'pass --entrypoint with a command the image has' });
  }
  return [...argv];
}

/** The init to boot for --init systemd: /sbin/init, which must lead to systemd in the image. */
export function checkSystemd(entries: ReadonlyMap<string, Entry>): string {
  const target = resolveImagePath(entries, '/sbin/init');
  if (!target || !/\/systemd$/.test(target) || lookupImagePath(entries, target)?.type !== 'file') {
    throw new InputError('E_NO_SYSTEMD', 'the image has no systemd (/sbin/init is not systemd)', { hint: 'boot with aim\'s init (--init aim) and an --entrypoint' });
  }
  return '/sbin/init';
}

/**
 * Checks a bootable build's inputs and decides what it boots, before any work: the kernel (the
 * image's or the kernel core's), the initramfs modules, systemd or aim's init with its entrypoint.
 */
export async function planBoot(repo: Repository, request: BootableRequest, imageEntries: readonly Entry[], reporter: Reporter): Promise<BootPlan> {
  const entries = new Map(imageEntries.map((e) => [e.path, e]));
  let init = AIM_INIT;
  let entrypoint: string[] | undefined;
  let runtime: RuntimeAction[] | undefined;
  if (request.init === 'systemd') {
    init = checkSystemd(entries);
  } else {
    const argv = request.entrypoint ?? (await readEntrypoint(repo, request.imageId));
    if (!argv) throw new ConfigError(`image ${request.imageId.slice(0, 12)} records no entrypoint`, { hint: 'pass --entrypoint "COMMAND", or --init systemd for images with systemd' });
    entrypoint = checkEntrypoint(entries, argv);
    // A slim image's recorded plan; otherwise the image's tmpfiles.d and the entrypoint's units.
    runtime = (await runtimeForImage(repo, request.imageId, { command: argv.join(' ') }, reporter)).actions;
  }
  const kernel = await resolveBootKernel(repo, { id: request.imageId, entries }, request.kernelImage);
  const modules = wantedModules(request.platform, request.modules);
  moduleClosure(kernel.index, modules); // unknown modules fail here, before any work
  return {
    imageId: request.imageId,
    platform: request.platform,
    kernel,
    modules,
    init,
    entrypoint,
    ...(runtime ? { runtime } : {}),
    ids: bootIds(request.idSeed ?? request.imageId),
    epoch: sourceDateEpoch(imageEntries),
    coreEpoch: sourceDateEpoch([kernel]),
    entries,
  };
}
