import { createHash } from 'node:crypto';
import { planPxeBoot, type PxeBoot } from '../../core/bootable/pxe-initrd.js';
import type { PxeAssignment } from '../../core/model/pxe.js';
import type { Repository } from '../../core/repository/repository.js';
import type { Reporter } from '../../lib/reporter.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * The name of what an assignment boots under /boot/: equal for assignments that boot the same
 * bytes (image, pinned kernel, platform, modules, entrypoint), whatever the machines or kernel arguments.
 */
export function bootIdOf(a: Pick<PxeAssignment, 'imageId' | 'boot'>): string {
  const b = a.boot;
  return sha256(JSON.stringify(['aim pxe boot 1', a.imageId, b.kernel.source === 'image' ? 'own' : b.kernel.imageId, b.platform, [...b.modules].sort(), b.entrypoint ?? null])).slice(0, 32);
}

/** A boot planned from the repository, with the cache keys and ETags of its two files. */
export interface PlannedBoot {
  bootId: string;
  boot: PxeBoot;
  kernel: { key: string; etag: string; size: number; produce: () => AsyncIterable<Buffer> };
  initrd: { key: string; etag: string; produce: (signal: AbortSignal) => AsyncIterable<Buffer> };
}

/**
 * Boot plans of assigned images, planned once per boot id (planning reads the image's entries
 * and hashes busybox) and kept while the boot is assigned. A failed plan is not kept: the next
 * request tries again (the image may be back).
 */
export class BootPlans {
  private readonly plans = new Map<string, Promise<PlannedBoot>>();

  constructor(
    private readonly repo: Repository,
    private readonly reporter: Reporter,
  ) {}

  get(a: PxeAssignment): Promise<PlannedBoot> {
    const bootId = bootIdOf(a);
    let p = this.plans.get(bootId);
    if (!p) {
      p = this.plan(bootId, a);
      this.plans.set(bootId, p);
      p.catch(() => this.plans.delete(bootId));
    }
    return p;
  }

  private async plan(bootId: string, a: PxeAssignment): Promise<PlannedBoot> {
    const kernelImage = a.boot.kernel.source === 'image' ? undefined : a.boot.kernel.imageId;
    const boot = await planPxeBoot(this.repo, { imageId: a.imageId, platform: a.boot.platform, modules: a.boot.modules, init: 'aim', ...(a.boot.entrypoint ? { entrypoint: a.boot.entrypoint } : {}), ...(kernelImage === undefined ? {} : { kernelImage }) }, this.reporter);
    const vmlinuz = boot.plan.kernel.vmlinuz;
    const kernelHash = sha256(vmlinuz.id);
    return {
      bootId,
      boot,
      kernel: { key: `kernel-${kernelHash}`, etag: `"${kernelHash}"`, size: vmlinuz.size, produce: () => vmlinuz.open() },
      initrd: { key: `initrd-${boot.initrd.key}`, etag: `"${boot.initrd.key}"`, produce: (signal) => boot.initrd.compressed(signal) },
    };
  }

  /** Forgets plans of boot ids no longer assigned. */
  retain(bootIds: ReadonlySet<string>): void {
    for (const id of this.plans.keys()) if (!bootIds.has(id)) this.plans.delete(id);
  }
}
