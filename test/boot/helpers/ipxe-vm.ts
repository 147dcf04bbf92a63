import { execa, type ResultPromise } from 'execa';
import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OVMF_CODE, OVMF_VARS } from '../../../src/run/qemu.js';

/**
 * A QEMU machine (TCG) that boots iPXE the ways machines in the field do: from a NIC's option ROM,
 * chainloaded by the firmware's own PXE over QEMU's TFTP, or from a CD-ROM. User-mode networking:
 * its DHCP hands out 10.0.2.15 and the host's 127.0.0.1 is 10.0.2.2.
 */
export interface IpxeVmSpec {
  /** Scratch directory: OVMF's variables and the serial console log. */
  dir: string;
  firmware: 'bios' | 'uefi';
  mac: string;
  /** The SMBIOS system UUID iPXE reports as ${uuid}. */
  uuid: string;
  /** The NIC's option ROM: a file, '' for none (the firmware's own network stack), undefined for QEMU's. */
  nicRom?: string;
  /** QEMU's TFTP server: its directory and the boot file its DHCP names. */
  tftp?: { dir: string; bootfile: string };
  /** An ISO image on a CD-ROM, booted first. */
  cdrom?: string;
  memoryMiB: number;
  /** A TCP port of the guest forwarded from 127.0.0.1. */
  forward?: { host: number; guest: number };
  /** QEMU is killed after this long, whatever happens. */
  maxSeconds: number;
}

export interface IpxeVm {
  console(): Promise<string>;
  exited(): boolean;
  stop(): Promise<void>;
}

export async function startIpxeVm(spec: IpxeVmSpec): Promise<IpxeVm> {
  const log = join(spec.dir, 'console.log');
  const firmware: string[] = [];
  if (spec.firmware === 'uefi') {
    await copyFile(OVMF_VARS, join(spec.dir, 'OVMF_VARS.fd'));
    firmware.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${join(spec.dir, 'OVMF_VARS.fd')}`);
  }
  const tftp = spec.tftp ? `,tftp=${spec.tftp.dir},bootfile=${spec.tftp.bootfile}` : '';
  const fwd = spec.forward ? `,hostfwd=tcp:127.0.0.1:${spec.forward.host}-:${spec.forward.guest}` : '';
  const rom = spec.nicRom === undefined ? '' : `,romfile=${spec.nicRom}`;
  const cdrom = spec.cdrom ? ['-drive', `file=${spec.cdrom},format=raw,if=none,media=cdrom,readonly=on,id=cd`, '-device', 'ide-cd,drive=cd,bootindex=0'] : [];
  const args = [
    '-nodefaults', '-machine', 'q35', '-accel', 'tcg,tb-size=64', '-m', String(spec.memoryMiB), '-smp', '1',
    '-display', 'none', '-no-reboot', '-uuid', spec.uuid, '-serial', `file:${log}`,
    ...firmware,
    ...cdrom,
    '-netdev', `user,id=n0${tftp}${fwd}`,
    '-device', `virtio-net-pci,netdev=n0,mac=${spec.mac}${rom}${spec.cdrom ? '' : ',bootindex=1'}`,
  ];
  const proc: ResultPromise = execa('qemu-system-x86_64', args, { reject: false, stdin: 'ignore', timeout: spec.maxSeconds * 1000, cwd: spec.dir });
  let done = false;
  void proc.then(() => (done = true));
  return {
    console: () => readFile(log, 'utf8').catch(() => ''),
    exited: () => done,
    async stop() {
      try {
        if (!done && proc.pid) process.kill(proc.pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
      await proc;
    },
  };
}
