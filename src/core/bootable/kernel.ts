import { InputError } from '../../lib/errors.js';
import { lookupImagePath, resolveImagePath } from '../analyze/resolve.js';
import type { Entry } from '../model/entry.js';
import { resolveImage } from '../query/resolve.js';
import type { Repository } from '../repository/repository.js';
import { entryContent, type ContentSource } from './content.js';
import { parseModuleIndex, type ModuleIndex } from './modules.js';

/** The kernel a bootable artifact boots: its image, version, vmlinuz and indexed modules. */
export interface BootKernel {
  /** Image the kernel comes from (the image being built, or a kernel core image). */
  imageId: string;
  version: string;
  /** The vmlinuz file's mtime: the time of what the boot core (initramfs, EFI partition) holds. */
  mtime: number;
  /** Canonical path of the modules directory in that image ("/usr/lib/modules/6.1.0-…"). */
  modulesDir: string;
  index: ModuleIndex;
  /** The kernel image, streamed from the blob store. */
  vmlinuz: ContentSource;
  /** A module file by its modules.dep path ("kernel/fs/ext4/ext4.ko"), streamed from the blob store. */
  module(path: string): ContentSource;
}

/**
 * The newest kernel in an image: a /boot/vmlinuz-<version> whose /lib/modules/<version> has a
 * modules.dep (made by depmod). Undefined when the image carries none. Pure.
 */
export function findKernel(entries: ReadonlyMap<string, Entry>): { version: string; vmlinuz: Entry; modulesDir: string } | undefined {
  const found: { version: string; vmlinuz: Entry; modulesDir: string }[] = [];
  for (const dir of ['/boot', '/usr/boot']) {
    for (const path of entries.keys()) {
      const m = new RegExp(`^${dir}/vmlinuz-([^/]+)$`).exec(path);
      if (!m) continue;
      const version = m[1]!;
      const vmlinuz = lookupImagePath(entries, path);
      const modulesDir = resolveImagePath(entries, `/lib/modules/${version}`);
      if (vmlinuz?.type !== 'file' || !modulesDir || !lookupImagePath(entries, `${modulesDir}/modules.dep`)) continue;
      found.push({ version, vmlinuz, modulesDir });
    }
  }
  return found.sort((a, b) => a.version.localeCompare(b.version, 'en', { numeric: true })).at(-1);
}

/**
 * The kernel to boot an image with: the kernel core image when one is named (`--kernel`), else
 * the image's own. An image without a kernel and no kernel core is an error before any work.
 */
export async function resolveBootKernel(repo: Repository, image: { id: string; entries: ReadonlyMap<string, Entry> }, kernelImage?: string): Promise<BootKernel> {
  let source = image;
  if (kernelImage !== undefined) {
    const id = await resolveImage(repo, kernelImage);
    source = { id, entries: new Map((await repo.catalog.entries(id)).map((e) => [e.path, e])) };
  }
  const k = findKernel(source.entries);
  if (!k) {
    throw new InputError('E_NO_KERNEL', kernelImage === undefined
      ? `image ${image.id.slice(0, 12)} has no kernel (/boot/vmlinuz-* with an indexed /lib/modules)`
      : `${kernelImage} has no kernel (/boot/vmlinuz-* with an indexed /lib/modules)`, {
      hint: 'make a kernel core with `aim core kernel` (used by default), or pass --kernel with one',
    });
  }
  const file = (path: string): Entry => {
    const e = lookupImagePath(source.entries, path);
    if (e?.type !== 'file' || !e.blob) throw new InputError('E_NO_KERNEL', `${path} is missing from the kernel's image ${source.id.slice(0, 12)}`);
    return e;
  };
  // depmod's index files are small text: read whole
  const text = async (name: string) => (lookupImagePath(source.entries, `${k.modulesDir}/${name}`) ? (await repo.blobs.read(file(`${k.modulesDir}/${name}`).blob!)).toString('utf8') : undefined);
  const index = parseModuleIndex({ dep: (await text('modules.dep'))!, softdep: await text('modules.softdep'), alias: await text('modules.alias'), builtin: await text('modules.builtin') });
  return {
    imageId: source.id,
    version: k.version,
    mtime: k.vmlinuz.mtime,
    modulesDir: k.modulesDir,
    index,
    vmlinuz: entryContent(k.vmlinuz, repo.blobs),
    module: (path) => entryContent(file(`${k.modulesDir}/${path}`), repo.blobs),
  };
}
