import { createHash } from 'node:crypto';
import type { Reporter } from '../../lib/reporter.js';
import type { Entry } from '../model/entry.js';
import type { Repository } from '../repository/repository.js';
import type { BlobStore } from '../repository/types.js';
import { RAM_ROOT_DIR } from './init-scripts.js';
import { INITRAMFS_ZSTD_LEVEL, planInitramfs, type Initramfs } from './initramfs.js';
import { chooseKernel, type KernelChoice } from './kernel-choice.js';
import { planBoot, type BootableRequest, type BootPlan } from './plan.js';
import { layOutRootCpio, warnXattrs, type RootCpio } from './root-cpio.js';
import { aimRootAdditions, bootRootEntries } from './root-tree.js';
import { zstdFrame, zstdVersion } from './zstd.js';

/**
 * zstd level of the root cpio: on the 184 MiB gold nginx root, level 10 takes 5 s where 19 takes
 * 72 s, for a 14% larger file.
 */
export const ROOT_ZSTD_LEVEL = 10;

/**
 * The initrd of a PXE boot, laid out from the repository without writing anything: aim's core
 * initramfs, then the whole root filesystem as a second archive unpacked under /newroot (the
 * kernel unpacks one archive after the other). Nothing is read until a stream is pulled, and a
 * stream holds one chunk at a time, whatever the size of the image.
 */
export interface PxeInitrd {
  core: Initramfs;
  root: RootCpio;
  /**
   * Length of `uncompressed()`: core archive + root archive. Known before any byte is read, so
   * it can be a Content-Length (the kernel takes uncompressed archives too).
   */
  uncompressedLength: number;
  /** sha256 of the uncompressed initrd's headers and content ids: equal keys, equal bytes (a cache key, an ETag). */
  uncompressedKey: string;
  /** sha256 of what decides `compressed()`'s bytes: the uncompressed key, the zstd levels and zstd's version. */
  key: string;
  /** The two archives uncompressed, back to back. */
  uncompressed(signal?: AbortSignal): AsyncGenerator<Buffer>;
  /**
   * The initrd `aim build --format pxe` writes (initrd.img), byte for byte: the core archive as a
   * zstd frame (level 19), then the root archive as another (level 10), each compressed as it is
   * produced by a zstd child that the signal (or the reader stopping) kills.
   */
  compressed(signal?: AbortSignal): AsyncGenerator<Buffer>;
}

/**
 * Lays out the PXE initrd of a planned bootable image (planBoot) from its entries and blobs:
 * checks the manifest, sizes every record and computes the keys, reading no content.
 */
export async function planPxeInitrd(plan: BootPlan, imageEntries: readonly Entry[], blobs: BlobStore, reporter: Reporter): Promise<PxeInitrd> {
  const core = await planInitramfs({ kernel: plan.kernel, modules: plan.modules, init: plan.init, mtime: plan.epoch });
  const root = layOutRootCpio({ entries: bootRootEntries(plan, imageEntries, reporter), additions: await aimRootAdditions(plan), blobs, prefix: RAM_ROOT_DIR, mtime: plan.epoch });
  const hash = (...parts: string[]) => createHash('sha256').update(parts.join('\n')).digest('hex');
  const uncompressedKey = hash('aim pxe initrd 1', core.key, root.key);
  return {
    core,
    root,
    uncompressedLength: core.cpioBytes + root.length,
    uncompressedKey,
    key: hash(uncompressedKey, `zstd ${await zstdVersion()} -${INITRAMFS_ZSTD_LEVEL} -${ROOT_ZSTD_LEVEL} -T1`),
    async *uncompressed(signal) {
      yield* core.cpio(signal);
      yield* root.chunks(signal);
    },
    async *compressed(signal) {
      yield* core.compressed(signal);
      yield* zstdFrame(root.chunks(signal), root.length, ROOT_ZSTD_LEVEL, signal);
    },
  };
}

/** What a PXE boot of an image serves, planned from the repository. */
export interface PxeBoot {
  plan: BootPlan;
  /** The kernel booted and how it was chosen (as `aim build` reports it). */
  kernel: KernelChoice;
  /** The kernel image itself: `plan.kernel.vmlinuz` (size, id, open()). */
  initrd: PxeInitrd;
}

/**
 * Plans the PXE boot of an image straight from the repository, as `aim build --format pxe` does:
 * the kernel chosen the same way (the request's, the image's own, else the newest kernel core),
 * the boot plan, and the initrd laid out. Reads the catalog only; no content, nothing written.
 */
export async function planPxeBoot(repo: Repository, request: BootableRequest, reporter: Reporter): Promise<PxeBoot> {
  const entries = await repo.catalog.entries(request.imageId);
  const kernel = await chooseKernel(repo, entries, request.kernelImage, reporter);
  const plan = await planBoot(repo, { ...request, kernelImage: kernel.ref }, entries, reporter);
  warnXattrs({ entries, reporter });
  return { plan, kernel, initrd: await planPxeInitrd(plan, entries, repo.blobs, reporter) };
}
