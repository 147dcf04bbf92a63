import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { formatBytes, shortId, table } from '../cli/format.js';
import { buildImage, parseSizeMiB } from '../core/build/build-image.js';
import { OVA_DEFAULT_MEMORY_MIB } from '../core/build/ovf.js';
import { PLATFORMS, type Platform } from '../core/bootable/platforms.js';
import { BUILD_FORMATS, type BuildFormat, type BuildResult } from '../core/build/types.js';
import { resolveImage } from '../core/query/resolve.js';

export default class Build extends AimCommand {
  static override summary = 'Build an artifact from an image: bootable raw/qcow2/vmdk/ova disk, PXE bundle, rootfs tar or OCI layout.';
  static override description = `Bootable formats pair the image with a kernel (its own, or a kernel core image: --kernel, else the
repository's core/kernel:* image, the most recently tagged when there are several) and a generated
minimal initramfs holding only the modules the platform needs. Artifacts are reproducible: the
same image gives byte-identical raw, vmdk, ova and pxe output. Partial output is removed on failure.

ova is an OVF 1.0 appliance for vSphere (descriptor, SHA256 manifest and stream-optimized VMDK in
one tar): EFI firmware, a PVSCSI disk and a VMXNET3 NIC. Its platform is vmware unless --platform
is given, so the initramfs carries vmw_pvscsi and vmxnet3.`;
  static override examples = [
    '<%= config.bin %> build slim/nginx:1 --format raw --out build/raw   # the kernel: core/kernel:* (aim core kernel)',
    '<%= config.bin %> build slim/nginx:1 --format raw --kernel core/kernel:bookworm --out build/raw',
    '<%= config.bin %> build slim/nginx:1 --format raw --kernel core/kernel:bookworm --size 1G --entrypoint "nginx -g \'daemon off;\'" --out build/raw',
    '<%= config.bin %> build slim/nginx:1 --format vmdk --platform vmware --out build/vmdk',
    '<%= config.bin %> build slim/nginx:1 --format ova --kernel core/kernel:bookworm --memory 1024 --out build/ova   # platform vmware: pvscsi, vmxnet3',
    '<%= config.bin %> build slim/nginx:1 --format pxe --out /srv/tftp/nginx --json',
    '<%= config.bin %> build gold/nginx:1 --format tar --out build/tar',
    '<%= config.bin %> build slim/nginx:1 --format oci --ref nginx:slim --out build/oci   # then: skopeo copy oci:build/oci:nginx:slim …',
  ];
  static override args = { image: Args.string({ description: 'image (name:tag or id)', required: true }) };
  static override flags = {
    format: Flags.string({ char: 'f', description: 'artifact format', options: [...BUILD_FORMATS], required: true }),
    out: Flags.string({ char: 'o', description: 'new or empty output directory', required: true }),
    platform: Flags.string({ description: 'target platform (decides initramfs modules) [default: vmware for ova, else qemu]', options: [...PLATFORMS] }),
    memory: Flags.integer({ description: 'ova: memory of the VM in the OVF descriptor, MiB', default: OVA_DEFAULT_MEMORY_MIB, min: 4 }),
    module: Flags.string({ description: 'extra kernel module for the initramfs (repeatable)', multiple: true, default: [] }),
    entrypoint: Flags.string({ description: 'command the booted image starts as its service (default: the profile’s command)' }),
    init: Flags.string({ description: 'init to boot', options: ['aim', 'systemd'], default: 'aim' }),
    size: Flags.string({ description: 'whole disk size for disk formats: MiB, or with a unit (512M, 2G); default: content plus headroom' }),
    headroom: Flags.integer({ description: 'free space added to the root filesystem, MiB', default: 64, min: 0 }),
    kernel: Flags.string({ description: 'kernel core image to boot with (made by aim core kernel); default: the image\'s own kernel, else the newest core/kernel:* image' }),
    'kernel-args': Flags.string({ description: 'extra kernel command line arguments (disks and pxe), e.g. "loglevel=4 net.ifnames=0"' }),
    'ipxe-src': Flags.string({ description: 'iPXE source tree or tarball to build binaries with the script embedded (pxe; or AIM_IPXE_SRC; cached like aim pxe ipxe build)' }),
    ref: Flags.string({ description: 'oci: the image name in the layout (org.opencontainers.image.ref.name)', default: 'latest' }),
  };

  async run(): Promise<BuildResult> {
    const { args, flags } = await this.parse(Build);
    const repo = await this.repository(flags.repo);
    const result = await buildImage(
      repo,
      {
        imageId: await resolveImage(repo, args.image),
        format: flags.format as BuildFormat,
        outDir: flags.out,
        // an OVA runs on VMware's devices (PVSCSI, VMXNET3): its initramfs carries their drivers
        platform: (flags.platform ?? (flags.format === 'ova' ? 'vmware' : 'qemu')) as Platform,
        modules: flags.module,
        entrypoint: flags.entrypoint === undefined ? undefined : ['/bin/sh', '-c', flags.entrypoint],
        init: flags.init as 'aim' | 'systemd',
        headroomMiB: flags.headroom,
        sizeMiB: flags.size === undefined ? undefined : parseSizeMiB(flags.size),
        kernelImage: flags.kernel,
        ...(flags['kernel-args'] === undefined ? {} : { kernelArgs: flags['kernel-args'] }),
        // an empty AIM_IPXE_SRC is unset: Debian's binaries
        ipxeSrc: flags['ipxe-src'] ?? (process.env.AIM_IPXE_SRC || undefined),
        ref: flags.ref,
        memoryMiB: flags.memory,
        signal: this.abortSignal(),
      },
      this.reporter(),
    );
    this.log(table(['ARTIFACT', 'KIND', 'SIZE'], result.artifacts.map((a) => [a.path, a.kind, formatBytes(a.bytes)])));
    this.log(`built ${result.format} from ${shortId(result.imageId)} in ${result.seconds.toFixed(1)} s`);
    return result;
  }
}
