import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { consoleLogPath, freePort, startVm, type RunningVm } from '../../../src/run/qemu.js';
import type { AwsState, SnapshotRecord } from './aws-state.js';
import { assembleVolume } from './disk-assembly.js';
import { startImdsServer, type ImdsInstance, type ImdsServer } from './imds-server.js';

/**
 * A fake instance's machine: aim's QEMU runner (src/run/qemu.ts, the one behind `aim boot`)
 * booting the volume assembled from the AMI's root snapshot, x86_64 under TCG, OVMF for boot mode
 * uefi and SeaBIOS for legacy-bios, the root volume on an NVMe controller as Nitro instances have
 * it, the serial console in a log file.
 *
 * Networking is QEMU's user mode on 169.254.0.0/16 (the guest gets 169.254.2.15 by DHCP) so that
 * 169.254.169.254 is inside it: QEMU's guestfwd connects every guest TCP connection to
 * 169.254.169.254:80 to a small bridge (node, this file's BRIDGE) that relays it to the instance's
 * IMDS server on 127.0.0.1, so the guest's own `PUT /latest/api/token` and GETs reach it as on
 * EC2. The NIC is virtio-net (QEMU has no ENA): an image built for the ec2 platform boots here with
 * `--module virtio_net` added to its initramfs.
 */

export interface InstanceVmOptions {
  memoryMiB: number;
  /** QEMU is killed after this long whatever happens. */
  maxSeconds: number;
  /** Guest TCP ports forwarded from free ports of 127.0.0.1. */
  forwardPorts: number[];
  accel: 'tcg' | 'kvm';
}

export interface InstanceVm {
  vm: RunningVm;
  imds: ImdsServer;
  forwards: { host: number; guest: number }[];
  consoleLog: string;
  stop(): Promise<void>;
}

export const GUEST_NETWORK = '169.254.0.0/16';
// QEMU's user network puts its host at .2.2 and the first DHCP address at .2.15 of a /16
export const GUEST_IP = '169.254.2.15';
export const IMDS_ADDRESS = '169.254.169.254';

const BRIDGE = `import { connect } from 'node:net';
const upstream = connect(Number(process.argv[2]), '127.0.0.1');
process.stdin.pipe(upstream);
upstream.pipe(process.stdout);
upstream.on('error', () => process.exit(1));
upstream.on('close', () => process.exit(0));
`;

export async function launchInstanceVm(p: {
  state: AwsState;
  dir: string;
  snapshot: SnapshotRecord;
  volumeSizeGiB: number;
  volumeId: string;
  bootMode: 'uefi' | 'legacy-bios';
  imds: ImdsInstance;
  options: InstanceVmOptions;
}): Promise<InstanceVm> {
  await mkdir(p.dir, { recursive: true });
  const disk = join(p.dir, 'root.raw');
  await assembleVolume(p.state, p.snapshot, p.volumeSizeGiB, disk);
  const imds = await startImdsServer(p.imds);
  try {
    const bridge = join(p.dir, 'imds-bridge.mjs');
    await writeFile(bridge, BRIDGE);
    const forwards = [];
    for (const guest of p.options.forwardPorts) forwards.push({ host: await freePort(), guest });
    const vm = await startVm({
      artifact: { kind: 'disk', path: disk, format: 'raw' },
      firmware: p.bootMode === 'uefi' ? 'uefi' : 'bios',
      disk: { bus: 'nvme', serial: p.volumeId.replace('-', '') },
      userNet: { network: GUEST_NETWORK, guestForwards: [{ address: IMDS_ADDRESS, port: 80, command: [process.execPath, bridge, String(imds.port)] }] },
      dir: p.dir,
      memoryMiB: p.options.memoryMiB,
      forwards,
      accel: p.options.accel,
      tbSizeMiB: 256,
      console: 'file',
      maxSeconds: p.options.maxSeconds,
    });
    let stopped: Promise<void> | undefined;
    return {
      vm,
      imds,
      forwards,
      consoleLog: consoleLogPath({ dir: p.dir }),
      stop() {
        stopped ??= (async () => {
          await vm.stop();
          await imds.stop();
          await rm(disk, { force: true });
        })();
        return stopped;
      },
    };
  } catch (e) {
    await imds.stop();
    await rm(disk, { force: true });
    throw e;
  }
}
