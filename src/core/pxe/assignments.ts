import { ConfigError, NotFoundError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { Platform } from '../bootable/platforms.js';
import { planPxeBoot } from '../bootable/pxe-initrd.js';
import type { PxeAssignment, PxeBootSettings } from '../model/pxe.js';
import { resolveImage } from '../query/resolve.js';
import type { Repository } from '../repository/repository.js';
import { parseSelector } from './selector.js';

export interface AssignRequest {
  /** A MAC, UUID, label=value or default (parseSelector). */
  selector: string;
  image: string;
  platform: Platform;
  modules: readonly string[];
  /** A kernel core image; default: the image's own, else the newest kernel core (as aim build). */
  kernel?: string;
  /** The service's command line (run with sh -c) when the image records none or another is wanted. */
  entrypoint?: string;
  kernelArgs?: string;
  channel?: string;
}

/** Longest extra kernel command line accepted (the whole line must fit the kernel's 2048 bytes on x86). */
export const MAX_KERNEL_ARGS = 1024;

/**
 * Extra kernel arguments go verbatim into the iPXE script's kernel line, which iPXE splits into
 * words: one line of printable text (a new line would be another command), no quotes or
 * backslashes (iPXE would take them out), and no word that iPXE reads as the end of the command
 * (`||`, `&&`, `;`) or the start of a comment (`#…`). iPXE settings such as `${net0/ip}` are
 * expanded by iPXE, on purpose.
 */
export function checkKernelArgs(args: string): string {
  const bad = (why: string) => new ConfigError(`--kernel-args: ${why}`, { hint: 'give kernel arguments as plain words separated by spaces, e.g. --kernel-args "loglevel=4 net.ifnames=0"' });
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(args)) throw bad('control characters (a new line would be another iPXE command)');
  if (/[^\x20-\x7e]/.test(args)) throw bad('only printable ASCII');
  if (/["'\\]/.test(args)) throw bad('quotes and backslashes would be taken out by iPXE');
  const words = args.trim().split(/ +/).filter(Boolean);
  const word = words.find((w) => w === '||' || w === '&&' || w === ';' || w.startsWith('#'));
  if (word !== undefined) throw bad(`iPXE would read "${word}" as the end of the kernel command`);
  if (Buffer.byteLength(args) > MAX_KERNEL_ARGS) throw bad(`more than ${MAX_KERNEL_ARGS} bytes (the kernel command line of x86 holds 2048 bytes in all)`);
  return words.join(' ');
}

export function checkChannel(channel: string): string {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(channel)) throw new ConfigError(`--channel ${JSON.stringify(channel)}: a channel is lower-case letters, digits, . _ - (up to 64)`, { hint: 'e.g. --channel prod' });
  return channel;
}

/**
 * Plans how machines boot an image (as `aim build --format pxe` plans it: kernel, modules,
 * entrypoint, the root cpio's limits), so an image that cannot boot is refused before anything is
 * written; the kernel is pinned by id. `kernelRef`: a kernel core image, else the image's own,
 * else the newest kernel core. Assigning, and moving a channel that assignments follow, use it.
 */
export async function planAssignmentBoot(
  repo: Repository,
  imageId: string,
  settings: { platform: Platform; modules: string[]; entrypoint?: string[]; kernelRef?: string },
  reporter: Reporter,
): Promise<PxeBootSettings> {
  const { platform, modules, entrypoint, kernelRef } = settings;
  const planned = await planPxeBoot(repo, { imageId, platform, modules: [...modules], init: 'aim', ...(entrypoint ? { entrypoint } : {}), ...(kernelRef === undefined ? {} : { kernelImage: kernelRef }) }, reporter);
  return {
    platform,
    modules: [...modules],
    ...(entrypoint ? { entrypoint } : {}),
    kernel: { source: planned.kernel.source, ...(planned.kernel.ref === undefined ? {} : { ref: planned.kernel.ref }), imageId: planned.plan.kernel.imageId, version: planned.plan.kernel.version },
  };
}

/**
 * How an assignment boots `imageId`, as aim build would be asked (planAssignmentBoot): its
 * platform, modules and entrypoint; for the image it boots now, the kernel pinned then; for
 * another image, a kernel the user named stays and one chosen for the old image is chosen anew.
 * Moving a channel plans its followers with it, and qualification builds what they would boot.
 */
export function assignmentBootFor(a: Pick<PxeAssignment, 'imageId' | 'boot'>, imageId: string): { platform: Platform; modules: string[]; entrypoint?: string[]; kernelRef?: string } {
  const k = a.boot.kernel;
  const kernelRef = a.imageId === imageId ? (k.source === 'image' ? undefined : k.imageId) : k.source === 'flag' ? k.ref : undefined;
  return {
    platform: a.boot.platform,
    modules: [...a.boot.modules],
    ...(a.boot.entrypoint ? { entrypoint: [...a.boot.entrypoint] } : {}),
    ...(kernelRef !== undefined ? { kernelRef } : {}),
  };
}

/**
 * Assigns an image to machines. The boot is planned first, as `aim build --format pxe` plans it
 * (kernel, modules, entrypoint, the root cpio's limits), so an image that cannot boot is refused
 * here rather than at a machine's boot; the image and kernel are pinned by id.
 */
export async function assignImage(repo: Repository, request: AssignRequest, reporter: Reporter): Promise<{ assignment: PxeAssignment; previous?: PxeAssignment }> {
  const selector = parseSelector(request.selector);
  const kernelArgs = checkKernelArgs(request.kernelArgs ?? '');
  const channel = request.channel === undefined ? undefined : checkChannel(request.channel);
  const imageId = await resolveImage(repo, request.image);
  const entrypoint = request.entrypoint === undefined ? undefined : ['/bin/sh', '-c', request.entrypoint];
  const boot = await planAssignmentBoot(
    repo,
    imageId,
    { platform: request.platform, modules: [...request.modules], ...(entrypoint ? { entrypoint } : {}), ...(request.kernel === undefined ? {} : { kernelRef: request.kernel }) },
    reporter,
  );
  return repo.catalog.pxe.assign({ selector, imageRef: request.image, imageId, boot, kernelArgs, ...(channel === undefined ? {} : { channel }) });
}

/** Removes the assignment of a selector (written as for assign). */
export async function unassignMachine(repo: Repository, selectorText: string): Promise<PxeAssignment> {
  const selector = parseSelector(selectorText);
  const removed = await repo.catalog.pxe.unassign(selector.key);
  if (!removed) throw new NotFoundError(`no assignment for ${selector.key}`, { hint: 'list assignments with: aim pxe list' });
  return removed;
}

/** An assignment with whether its image is still in the repository. */
export type AssignmentView = PxeAssignment & { imageMissing?: true };

export async function listAssignments(repo: Repository): Promise<AssignmentView[]> {
  const out: AssignmentView[] = [];
  for (const a of await repo.catalog.pxe.assignments()) out.push((await repo.catalog.getImage(a.imageId)) ? a : { ...a, imageMissing: true });
  return out;
}
