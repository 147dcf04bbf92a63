import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { bootArtifact, parseForward, type BootResult } from '../run/boot-artifact.js';
import { BOOT_DEVICES, type BootDevices } from '../run/qemu.js';
import { parseDuration } from '../core/profile/profile-run.js';

export default class Boot extends AimCommand {
  static override summary = 'Boot a built disk in QEMU on this machine, with ports forwarded, to try it before shipping.';
  static override description = `Boots a raw, qcow2 or VMDK disk or an OVA (a file, or the --out directory of aim build) under
UEFI (OVMF) with user-mode networking and TCP ports forwarded from 127.0.0.1. Devices: virtio disk
and NIC, or with --devices vmware VMware's (PVSCSI controller, VMXNET3 NIC), the default for an
OVA, whose disk is extracted to scratch space. Debian's OVMF has no PVSCSI driver, so with vmware
devices the firmware reads the boot loader from a read-only view of the disk's EFI partition on
a virtio disk of its own; Linux sees only the pvscsi disk (a vmware build has no virtio drivers).
A PXE bundle (the directory with boot.ipxe) network-boots: QEMU's TFTP server serves it (or, with
--pxe-via http, an HTTP server aim runs on 127.0.0.1, the guest's 10.0.2.2) and the NIC's iPXE
ROM runs boot.ipxe, under UEFI or, with --firmware bios, SeaBIOS; the root lives in RAM,
so give enough --memory.
Without --probe the guest console is on stdout until the guest powers off or you press Ctrl-C.
With --probe aim tries an HTTP GET on the first forwarded port (100 ms doubling to 1 s between
tries) until the answer meets its expectation (any 2xx, or --expect-status and --expect-body) or
--timeout runs out (E_PROBE_FAILED, with the last answer and the guest console), reports the
answer, the tries and how long after QEMU started it came, and stops the VM. Software emulation (TCG)
by default; --accel kvm where /dev/kvm exists. VMDKs boot with writes to a temporary overlay.`;
  static override examples = [
    '<%= config.bin %> boot build/raw --forward 8080:80',
    '<%= config.bin %> boot build/raw/disk.raw --forward 0:80 --probe / --timeout 120s --json',
    '<%= config.bin %> boot build/raw --forward 0:80 --probe /missing --expect-status 404',
    '<%= config.bin %> boot build/vmdk --memory 256 --forward 8080:80 --probe /index.html',
    '<%= config.bin %> boot build/ova --forward 0:80 --probe /   # the OVA\'s disk on pvscsi + vmxnet3',
    '<%= config.bin %> boot build/vmdk --devices vmware --forward 8080:80',
    '<%= config.bin %> boot build/pxe --firmware bios --memory 128 --forward 0:80 --probe /   # PXE by TFTP through QEMU\'s iPXE ROM',
    '<%= config.bin %> boot build/pxe --pxe-via http --memory 160 --forward 8080:80   # PXE by HTTP from aim\'s server on 127.0.0.1',
  ];
  static override args = { artifact: Args.string({ description: 'disk file, .ova, or aim build output directory (a PXE bundle: the one with boot.ipxe)', required: true }) };
  static override flags = {
    forward: Flags.string({ description: 'forward 127.0.0.1:HOST to the guest port GUEST (repeatable; HOST 0 = any free port)', multiple: true, default: [] }),
    memory: Flags.integer({ char: 'm', description: 'guest memory, MiB', default: 512, min: 32 }),
    probe: Flags.string({ description: 'HTTP path to GET through the first forward until the answer meets its expectation; then stop the VM' }),
    'expect-status': Flags.integer({ description: 'with --probe: the status the answer must have instead of 2xx', min: 100, max: 599 }),
    'expect-body': Flags.string({ description: 'with --probe: text the answer\'s body must contain' }),
    timeout: Flags.string({ description: 'with --probe: how long after QEMU starts the guest may take to answer as expected', default: '120s' }),
    accel: Flags.string({ description: 'QEMU accelerator [default: $AIM_QEMU_ACCEL, else tcg]', options: ['tcg', 'kvm'] }),
    devices: Flags.string({ description: 'disk controller and NIC: virtio, or vmware (pvscsi + vmxnet3) [default: vmware for an .ova, else virtio]', options: [...BOOT_DEVICES] }),
    firmware: Flags.string({ description: 'UEFI (OVMF) or legacy BIOS (SeaBIOS)', options: ['uefi', 'bios'], default: 'uefi' }),
    'pxe-via': Flags.string({ description: 'PXE bundles: TFTP from QEMU\'s server, or HTTP from a server aim runs on 127.0.0.1 for the boot (faster for a large initrd)', options: ['tftp', 'http'], default: 'tftp' }),
    'tb-size': Flags.integer({ description: 'TCG translation cache, MiB (QEMU’s memory use is dominated by it)', default: 256, min: 8 }),
  };

  async run(): Promise<BootResult> {
    const { args, flags } = await this.parse(Boot);
    const result = await bootArtifact(
      {
        path: args.artifact,
        forwards: flags.forward.map(parseForward),
        memoryMiB: flags.memory,
        ...(flags.probe === undefined ? {} : { probe: flags.probe }),
        ...(flags['expect-status'] === undefined && flags['expect-body'] === undefined ? {} : { expect: { status: flags['expect-status'], bodyContains: flags['expect-body'] } }),
        timeoutMs: parseDuration(flags.timeout),
        accel: (flags.accel ?? (process.env.AIM_QEMU_ACCEL === 'kvm' ? 'kvm' : 'tcg')) as 'tcg' | 'kvm',
        ...(flags.devices === undefined ? {} : { devices: flags.devices as BootDevices }),
        firmware: flags.firmware as 'uefi' | 'bios',
        tbSizeMiB: flags['tb-size'],
        pxeVia: flags['pxe-via'] as 'tftp' | 'http',
        consoleOnStdio: !this.jsonEnabled(),
        signal: this.abortSignal(),
      },
      this.reporter(),
    );
    const p = result.probe;
    if (p) this.log(`HTTP ${p.status} from the guest ${p.seconds.toFixed(1)} s after QEMU started, try ${p.tries}${p.title ? `: "${p.title}"` : ''} (${p.bytes} bytes)`);
    return result;
  }
}
