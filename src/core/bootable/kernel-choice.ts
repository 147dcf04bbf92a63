import { InputError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { Entry } from '../model/entry.js';
import type { Repository } from '../repository/repository.js';
import { findKernel } from './kernel.js';

/** Tags of kernel core images (`aim core kernel --tag core/kernel:<suite>`). */
export const KERNEL_CORE_PREFIX = 'core/kernel:';

/** Which kernel a bootable build boots, and why: part of the build's result. */
export interface KernelChoice {
  /** flag: --kernel (or a provider's kernel option); image: the image's own; default: a kernel core aim picked. */
  source: 'flag' | 'image' | 'default';
  /** The kernel core image's ref; absent when the image boots its own kernel. */
  ref?: string;
  /** With source default: every core/kernel:* tag, newest first (the first is the one picked). */
  choices?: string[];
}

/**
 * The kernel for a bootable build: the one asked for, else the image's own, else the
 * repository's kernel core: the only core/kernel:* tag, or the most recently set one, said on
 * the reporter with the other choices. No kernel anywhere is an error before any work.
 */
export async function chooseKernel(repo: Repository, entries: readonly Entry[], asked: string | undefined, reporter: Reporter): Promise<KernelChoice> {
  if (asked !== undefined) return { source: 'flag', ref: asked };
  if (findKernel(new Map(entries.map((e) => [e.path, e])))) return { source: 'image' };
  const tags = (await repo.catalog.listTags(KERNEL_CORE_PREFIX)).sort((a, b) => b.updatedAt.localeCompare(a.updatedAt) || b.name.localeCompare(a.name));
  const picked = tags[0];
  if (!picked) {
    throw new InputError('E_NO_KERNEL', `the image has no kernel (/boot/vmlinuz-* with an indexed /lib/modules) and the repository holds no kernel core (${KERNEL_CORE_PREFIX}*)`, {
      hint: 'make one once with `aim core kernel` (then it is used by default), or pass --kernel IMAGE',
    });
  }
  const choices = tags.map((t) => t.name);
  if (choices.length === 1) {
    reporter.emit({ type: 'info', message: `kernel: ${picked.name} (the image has none; the repository's only kernel core)` });
  } else {
    reporter.emit({
      type: 'warn',
      code: 'W_KERNEL_PICKED',
      message: `no --kernel given and the image has none: using ${picked.name}, the newest of ${choices.length} kernel cores (${choices.join(', ')}); pass --kernel to choose`,
    });
  }
  return { source: 'default', ref: picked.name, choices };
}
