/** What `aim pxe ipxe build --target` builds. */
export const IPXE_TARGETS = ['efi', 'bios', 'usb', 'iso'] as const;
export type IpxeTarget = (typeof IPXE_TARGETS)[number];

/** One file a target yields: its name in the cache and in --out, where iPXE's build writes it, what it is for. */
export interface IpxeOutput {
  name: string;
  /** Relative to the tree's src/: a make goal. */
  goal: string;
  use: string;
}

/** A bootable image made of make goals by iPXE's own util/genfsimg (hybrid BIOS + UEFI media). */
export interface IpxeMedia {
  name: string;
  /** The name genfsimg is given: its extension chooses the kind of image. */
  genfsimgName: string;
  /** Make goals genfsimg packs, relative to src/. */
  inputs: string[];
  use: string;
}

export interface IpxeTargetSpec {
  /** Files copied out of iPXE's build directories. */
  outputs: IpxeOutput[];
  media?: IpxeMedia;
  /** Tools and files beyond the compiler toolchain (keys of IPXE_MEDIA_NEEDS). */
  needs: readonly ('iso' | 'usb')[];
}

/** iPXE's PCI id of virtio-net (QEMU's virtio-net-pci, transitional): the ROM QEMU's NIC can carry. */
export const VIRTIO_NET_ROM = '1af41000.rom';

/** The Linux-kernel-format BIOS iPXE and the all-drivers EFI iPXE, which the hybrid media carry. */
const MEDIA_INPUTS = ['bin/ipxe.lkrn', 'bin-x86_64-efi/ipxe.efi'];

/**
 * The targets. Every goal of one build directory (bin/ for BIOS, bin-x86_64-efi/ for UEFI) shares
 * its compiled objects, so a target's extra binaries cost only a link.
 *
 * - efi: snponly.efi is the binary to chainload from a UEFI PXE ROM: it drives only the NIC it was
 *   loaded from, through the firmware's own network driver (SNP/NII), so it works on every NIC the
 *   firmware can PXE-boot with and leaves the other NICs to the firmware. ipxe.efi carries iPXE's
 *   native drivers as well; it is what boots from USB or ISO media, where there is no "NIC loaded
 *   from".
 * - bios: undionly.kpxe is the binary to chainload from a legacy PXE ROM over TFTP (it drives the
 *   NIC through the ROM's UNDI, so any PXE NIC); ipxe.lkrn is iPXE as a Linux kernel, for boot
 *   loaders; 1af41000.rom is a NIC ROM for virtio-net (QEMU's `romfile=`; the same make rule
 *   builds the ROM of any NIC iPXE supports).
 * - usb, iso: one image that boots both under BIOS (syslinux / isolinux with ipxe.lkrn) and UEFI
 *   (EFI/BOOT/BOOTX64.EFI = ipxe.efi), for USB sticks and BMC virtual media; iPXE's
 *   bin/ipxe.usb and bin/ipxe.iso would boot BIOS machines only. The USB image is a FAT
 *   "superfloppy" (genfsimg's .sdsk: no partition table), because genfsimg's partitioned image
 *   fails with Debian 12's mtools (mformat writes past the partition's end).
 */
export const IPXE_TARGET_SPECS: Record<IpxeTarget, IpxeTargetSpec> = {
  efi: {
    outputs: [
      { name: 'snponly.efi', goal: 'bin-x86_64-efi/snponly.efi', use: 'UEFI: chainload from the firmware\'s PXE (TFTP); drives the NIC it was loaded from' },
      { name: 'ipxe.efi', goal: 'bin-x86_64-efi/ipxe.efi', use: 'UEFI: all of iPXE\'s NIC drivers; boots from media or chainloads' },
    ],
    needs: [],
  },
  bios: {
    outputs: [
      { name: 'undionly.kpxe', goal: 'bin/undionly.kpxe', use: 'BIOS: chainload from a legacy PXE ROM (TFTP)' },
      { name: 'ipxe.lkrn', goal: 'bin/ipxe.lkrn', use: 'BIOS: iPXE as a Linux kernel, for boot loaders' },
      { name: VIRTIO_NET_ROM, goal: `bin/${VIRTIO_NET_ROM}`, use: 'BIOS: NIC ROM for virtio-net (QEMU romfile=)' },
    ],
    needs: [],
  },
  usb: {
    outputs: [],
    media: { name: 'ipxe.usb', genfsimgName: 'ipxe.sdsk', inputs: MEDIA_INPUTS, use: 'USB stick image (dd it to the stick: FAT, no partition table), boots BIOS and UEFI' },
    needs: ['usb'],
  },
  iso: {
    outputs: [],
    media: { name: 'ipxe.iso', genfsimgName: 'ipxe.iso', inputs: MEDIA_INPUTS, use: 'ISO image (CD or BMC virtual media), boots BIOS and UEFI' },
    needs: ['iso'],
  },
};

/** The make goals a set of targets needs, each once: BIOS targets first, each target's in its table order. */
export function makeGoals(targets: readonly IpxeTarget[]): string[] {
  const goals = new Set<string>();
  for (const t of (['bios', 'efi', 'usb', 'iso'] as const).filter((x) => targets.includes(x))) {
    const spec = IPXE_TARGET_SPECS[t];
    for (const o of spec.outputs) goals.add(o.goal);
    for (const i of spec.media?.inputs ?? []) goals.add(i);
  }
  return [...goals];
}
