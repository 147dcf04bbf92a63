import type { Reporter } from '../../lib/reporter.js';
import type { Entry } from '../model/entry.js';
import type { Repository } from '../repository/repository.js';
import type { KernelChoice } from '../bootable/kernel-choice.js';
import type { Platform } from '../bootable/platforms.js';

/** Every artifact format `aim build` writes. */
export const BUILD_FORMATS = ['raw', 'qcow2', 'vmdk', 'ova', 'pxe', 'tar', 'oci'] as const;
export type BuildFormat = (typeof BUILD_FORMATS)[number];

/** Formats that boot: they pair the image with a kernel. */
export const BOOTABLE_FORMATS: readonly BuildFormat[] = ['raw', 'qcow2', 'vmdk', 'ova', 'pxe'];

/** What the user asked for, after flags, environment and defaults are resolved. */
export interface BuildRequest {
  /** Image to build (resolved id). */
  imageId: string;
  format: BuildFormat;
  /** New or empty directory the artifacts are written into. */
  outDir: string;
  /** The platform a bootable artifact targets (bootable/platforms): console, initramfs drivers. */
  platform: Platform;
  /** Extra kernel modules for the initramfs, beyond the platform's list. */
  modules: string[];
  /** Command the booted image starts as its service (argv), when it is not systemd. */
  entrypoint?: string[];
  /** Boot the image's own systemd instead of aim's minimal init. */
  init: 'aim' | 'systemd';
  /** Free space added to the root filesystem, in MiB. */
  headroomMiB: number;
  /** Whole disk size in MiB (disk formats); default: the content plus headroom. */
  sizeMiB?: number;
  /** Kernel core image (ref); default: the image's own kernel, else the repository's kernel core. */
  kernelImage?: string;
  /** Added to aim's kernel command line (disks and PXE), checked as for aim pxe assign (checkKernelArgs). */
  kernelArgs?: string;
  /** iPXE source tree or tarball to build binaries with the script embedded (pxe). */
  ipxeSrc?: string;
  /** ova: VM memory in MiB (default 512). */
  memoryMiB?: number;
  /** ova: VM name, also the base name of the .ova and the files inside it (default aim-<short id>). */
  vmName?: string;
  /** ova: a stream-optimized VMDK already built from this image (same platform) to pack instead of building one. */
  vmdk?: string;
  /** OCI layouts: the image's name in index.json (org.opencontainers.image.ref.name); default "latest". */
  ref?: string;
  /**
   * Disk formats: derive the disk, partition and filesystem ids from this instead of the image id.
   * Successive versions of one image built with the same seed share their ids, so an updated disk
   * differs from the last one only where content differs (what block-level shipping uploads).
   */
  idSeed?: string;
  /** Stops the build (Ctrl-C, a server shutting down): its tools are killed, partial output removed, and it rejects with the signal's cancellation error. */
  signal?: AbortSignal;
}

/** One file a build wrote. */
export interface Artifact {
  /** Absolute path. */
  path: string;
  /** What it is, for people: "raw disk", "boot.ipxe", "OCI layout", … */
  kind: string;
  bytes: number;
  sha256: string;
}

export interface BuildResult {
  imageId: string;
  format: BuildFormat;
  outDir: string;
  artifacts: Artifact[];
  /** Bootable formats: the kernel booted and how it was chosen. */
  kernel?: KernelChoice;
  seconds: number;
}

/** What a format builder gets: the request, the image's entries and a scratch directory it may use freely. */
export interface BuildContext {
  repo: Repository;
  request: BuildRequest;
  entries: Entry[];
  /** Scratch directory, removed after the build whatever happens. */
  workDir: string;
  reporter: Reporter;
  /**
   * Stops the build: builders pass it to every tool (execa's cancelSignal) and stream, and reject
   * with its cancellation error once their tools have exited; buildImage then removes the output.
   */
  signal: AbortSignal;
}

/**
 * Writes one format's artifacts into `context.request.outDir` and returns them. Builders check
 * their tools and inputs before they write anything; `buildImage` removes partial output on failure.
 */
export type FormatBuilder = (context: BuildContext) => Promise<Omit<Artifact, 'sha256' | 'bytes'>[]>;
