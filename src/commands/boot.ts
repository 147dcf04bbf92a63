import { Args, Flags } from '@oclif/core';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AimCommand } from '../cli/base-command.js';
import { BOOT_DEVICES, bootDisk, defaultDevices, findBootArtifact, freePort, startVm, waitForHttp, type BootArtifact, type BootDevices } from '../core/boot/qemu.js';
import { ConfigError } from '../lib/errors.js';
import { parseDuration } from '../core/profile/profile-run.js';

export interface BootResult {
  artifact: BootArtifact;
  devices: BootDevices;
  memoryMiB: number;
  forwards: { host: number; guest: number }[];
  /** With --probe: the guest's answer, and how long after QEMU started it came. */
  probe?: { url: string; status: number; bytes: number; sha256: string; seconds: number; title?: string };
  /** Without --probe: how QEMU ended. */
  exitCode?: number;
}

function parseForward(text: string): { host: number; guest: number } {
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(text);
  const host = Number(m?.[1]);
  const guest = Number(m?.[2]);
  if (!m || host > 65535 || guest < 1 || guest > 65535) throw new ConfigError(`--forward ${text}: expected HOST:GUEST ports, e.g. 8080:80 (host 0 = any free port)`);
  return { host, guest };
}

function describe(a: BootArtifact): string {
  if (a.kind === 'pxe') return `${join(a.dir, a.bootfile)} by PXE (TFTP)`;
  return `${a.path} (${a.kind === 'ova' ? 'OVA' : a.format})`;
}

export default class Boot extends AimCommand {
  static override summary = 'Boot a built disk in QEMU on this machine, with ports forwarded, to try it before shipping.';
  static override description = `Boots a raw, qcow2 or VMDK disk or an OVA (a file, or the --out directory of aim build) under
UEFI (OVMF) with user-mode networking and TCP ports forwarded from 127.0.0.1. Devices: virtio disk
and NIC, or with --devices vmware VMware's (PVSCSI controller, VMXNET3 NIC), the default for an
OVA, whose disk is extracted to scratch space. Debian's OVMF has no PVSCSI driver, so with vmware
devices the firmware reads the boot loader from a read-only view of the disk's EFI partition on
a virtio disk of its own; Linux sees only the pvscsi disk (a vmware build has no virtio drivers).
A PXE bundle (the directory with boot.ipxe) network-boots: QEMU's TFTP server serves it and the
NIC's iPXE ROM runs boot.ipxe, under UEFI or, with --firmware bios, SeaBIOS; the root lives in RAM,
so give enough --memory.
Without --probe the guest console is on stdout until the guest powers off or you press Ctrl-C.
With --probe aim waits until the guest answers an HTTP GET on the first forwarded port, reports
the answer and how long after QEMU started it came, and stops the VM. Software emulation (TCG)
by default; --accel kvm where /dev/kvm exists. VMDKs boot with writes to a temporary overlay.`;
  static override examples = [
    '<%= config.bin %> boot build/raw --forward 8080:80',
    '<%= config.bin %> boot build/raw/disk.raw --forward 0:80 --probe / --timeout 120s --json',
    '<%= config.bin %> boot build/vmdk --memory 256 --forward 8080:80 --probe /index.html',
    '<%= config.bin %> boot build/ova --forward 0:80 --probe /   # the OVA\'s disk on pvscsi + vmxnet3',
    '<%= config.bin %> boot build/vmdk --devices vmware --forward 8080:80',
    '<%= config.bin %> boot build/pxe --firmware bios --memory 128 --forward 0:80 --probe /   # PXE by TFTP through QEMU\'s iPXE ROM',
  ];
  static override args = { artifact: Args.string({ description: 'disk file, .ova, or aim build output directory (a PXE bundle: the one with boot.ipxe)', required: true }) };
  static override flags = {
    forward: Flags.string({ description: 'forward 127.0.0.1:HOST to the guest port GUEST (repeatable; HOST 0 = any free port)', multiple: true, default: [] }),
    memory: Flags.integer({ char: 'm', description: 'guest memory, MiB', default: 512, min: 32 }),
    probe: Flags.string({ description: 'HTTP path to GET through the first forward once the guest is up; then stop the VM' }),
    timeout: Flags.string({ description: 'with --probe: how long to wait for the answer', default: '120s' }),
    accel: Flags.string({ description: 'QEMU accelerator [default: $AIM_QEMU_ACCEL, else tcg]', options: ['tcg', 'kvm'] }),
    devices: Flags.string({ description: 'disk controller and NIC: virtio, or vmware (pvscsi + vmxnet3) [default: vmware for an .ova, else virtio]', options: [...BOOT_DEVICES] }),
    firmware: Flags.string({ description: 'UEFI (OVMF) or legacy BIOS (SeaBIOS)', options: ['uefi', 'bios'], default: 'uefi' }),
    'tb-size': Flags.integer({ description: 'TCG translation cache, MiB (QEMU’s memory use is dominated by it)', default: 256, min: 8 }),
  };

  async run(): Promise<BootResult> {
    const { args, flags } = await this.parse(Boot);
    const artifact = await findBootArtifact(args.artifact);
    const requested = flags.forward.map(parseForward);
    if (flags.probe !== undefined && requested.length === 0) throw new ConfigError('--probe needs a --forward to reach the guest (e.g. --forward 0:80)');
    if (flags.probe !== undefined && !flags.probe.startsWith('/')) throw new ConfigError(`--probe ${flags.probe}: give the HTTP path, starting with /`);
    const timeoutMs = parseDuration(flags.timeout);
    const forwards = await Promise.all(requested.map(async (f) => ({ host: f.host === 0 ? await freePort() : f.host, guest: f.guest })));
    const accel = (flags.accel ?? (process.env.AIM_QEMU_ACCEL === 'kvm' ? 'kvm' : 'tcg')) as 'tcg' | 'kvm';
    const dir = await mkdtemp(join(process.env.AIM_TMPDIR ?? tmpdir(), 'aim-boot-'));
    const interactive = flags.probe === undefined;
    const signal = this.abortSignal();
    const devices = (flags.devices ?? defaultDevices(artifact)) as BootDevices;
    let started = Date.now();
    let vm;
    try {
      const disk = await bootDisk(artifact, dir);
      started = Date.now();
      vm = await startVm({ artifact: disk, devices, firmware: flags.firmware as 'uefi' | 'bios', dir, memoryMiB: flags.memory, forwards, accel, tbSizeMiB: flags['tb-size'], console: interactive && !this.jsonEnabled() ? 'stdio' : 'file' });
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    const stopOnAbort = () => void vm.stop();
    signal.addEventListener('abort', stopOnAbort);
    // Ctrl-C while the disk was extracted or QEMU started: the listener came too late for it
    if (signal.aborted) stopOnAbort();
    try {
      const result: BootResult = { artifact, devices, memoryMiB: flags.memory, forwards };
      if (!this.jsonEnabled()) process.stderr.write(`aim: booting ${describe(artifact)} (${devices} devices, ${flags.firmware}, ${flags.memory} MiB, ${accel}); ${forwards.map((f) => `127.0.0.1:${f.host} → guest ${f.guest}`).join(', ') || 'no forwards'}\n`);
      if (interactive) {
        const res = await vm.process;
        if (signal.aborted) throw signal.reason;
        result.exitCode = res.exitCode ?? undefined;
        return result;
      }
      const answer = await waitForHttp(vm, forwards[0]!.host, flags.probe!, timeoutMs, started);
      const title = /<title>([^<]*)<\/title>/i.exec(answer.body.toString('utf8'))?.[1];
      result.probe = {
        url: `http://127.0.0.1:${forwards[0]!.host}${flags.probe}`,
        status: answer.status,
        bytes: answer.body.length,
        sha256: createHash('sha256').update(answer.body).digest('hex'),
        seconds: answer.seconds,
        ...(title === undefined ? {} : { title }),
      };
      this.log(`HTTP ${answer.status} from the guest ${answer.seconds.toFixed(1)} s after QEMU started${title ? `: "${title}"` : ''} (${answer.body.length} bytes)`);
      return result;
    } finally {
      signal.removeEventListener('abort', stopOnAbort);
      await vm.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }
}
