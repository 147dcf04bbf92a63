/** The platforms a bootable artifact targets. */
export const PLATFORMS = ['qemu', 'ec2', 'vmware'] as const;
export type Platform = (typeof PLATFORMS)[number];

/** What a platform's machines have, and so what an aim-booted image needs to run on them. */
export interface PlatformSettings {
  /** Kernel console arguments: the serial console, and the screen where people look at one. */
  console: string;
  /** Drivers of the root disk and its controller, loaded by the initramfs. */
  diskModules: readonly string[];
  /** Drivers of the NIC, loaded by the initramfs. */
  netModules: readonly string[];
  /**
   * The QEMU devices that stand in for the platform's disk controller and NIC (`aim boot
   * --devices`); absent when QEMU has none (EC2's ENA).
   */
  qemu?: { disk: 'virtio-blk-pci' | 'pvscsi'; nic: 'virtio-net-pci' | 'vmxnet3' };
}

const SERIAL = 'console=ttyS0,115200';

/** The one table of per-platform settings: console, disk and network drivers, emulated devices. */
export const PLATFORM: Readonly<Record<Platform, PlatformSettings>> = {
  qemu: { console: SERIAL, diskModules: ['virtio_pci', 'virtio_blk', 'virtio_scsi', 'sd_mod'], netModules: ['virtio_net'], qemu: { disk: 'virtio-blk-pci', nic: 'virtio-net-pci' } },
  ec2: { console: SERIAL, diskModules: ['nvme'], netModules: ['ena'] },
  vmware: { console: `console=tty0 ${SERIAL}`, diskModules: ['vmw_pvscsi', 'mptspi', 'ata_piix', 'ahci', 'sd_mod'], netModules: ['vmxnet3', 'e1000'], qemu: { disk: 'pvscsi', nic: 'vmxnet3' } },
};

/** The disk and network drivers a platform's initramfs loads, disk first. */
export function platformModules(platform: Platform): string[] {
  return [...PLATFORM[platform].diskModules, ...PLATFORM[platform].netModules];
}

/** Kernel console arguments for a platform. */
/** A kernel command line: aim's own words, then extra arguments (already checked: checkKernelArgs), if any. */
export function withKernelArgs(base: string, extra = ''): string {
  return extra ? `${base} ${extra}` : base;
}

export function consoleArgs(platform: Platform): string {
  return PLATFORM[platform].console;
}
