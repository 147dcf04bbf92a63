import { freePort, startVm as startQemu, waitForHttp, type DiskArtifact, type PxeArtifact, type RunningVm } from '../../../src/run/qemu.js';

/**
 * Boot tests run aim's own QEMU runner (src/run/qemu.ts, the one behind `aim boot`) with a
 * test's conveniences: one forwarded port picked for the guest's, text bodies, the guest console
 * in failure messages.
 */
export interface BootRequest {
  /** Scratch directory for the firmware variables, the monitor socket and the console log. */
  dir: string;
  /** A disk to boot; or, without one, `pxe`. */
  disk?: { path: string; format: DiskArtifact['format'] };
  /** Network boot through QEMU's own iPXE ROM: QEMU's TFTP server serves `tftpDir`, DHCP names `bootfile`. */
  pxe?: { tftpDir: string; bootfile: string };
  /** Default UEFI (OVMF); 'bios' boots SeaBIOS. */
  firmware?: 'uefi' | 'bios';
  /** Guest memory, default 512 MiB. */
  memoryMiB?: number;
  /** Port the guest serves on; forwarded from a free port on 127.0.0.1. */
  guestPort: number;
  /** Whole boot-and-answer budget. */
  timeoutMs: number;
  path?: string;
}

export interface BootAnswer {
  status: number;
  body: string;
  /** From QEMU's start to the first answer. */
  seconds: number;
  console: string;
}

/** A running VM with its forwarded port and HTTP polling in text. */
export interface Vm extends RunningVm {
  port: number;
  /** Polls GET path until an answer; the budget and the seconds count from QEMU's start. */
  waitForHttp(path: string, timeoutMs: number): Promise<{ status: number; body: string; seconds: number }>;
}

/** Starts QEMU (TCG; AIM_QEMU_ACCEL=kvm opts in to KVM), killed after `maxSeconds` whatever happens. */
export async function startVm(r: Omit<BootRequest, 'timeoutMs' | 'path'> & { maxSeconds: number }): Promise<Vm> {
  const port = await freePort();
  const artifact: DiskArtifact | PxeArtifact = r.pxe
    ? { kind: 'pxe', dir: r.pxe.tftpDir, bootfile: r.pxe.bootfile }
    : { kind: 'disk', path: r.disk!.path, format: r.disk!.format };
  const started = Date.now();
  const vm = await startQemu({
    artifact,
    firmware: r.firmware,
    dir: r.dir,
    memoryMiB: r.memoryMiB ?? 512,
    forwards: [{ host: port, guest: r.guestPort }],
    accel: process.env.AIM_QEMU_ACCEL === 'kvm' ? 'kvm' : 'tcg',
    tbSizeMiB: 256,
    console: 'file',
    maxSeconds: r.maxSeconds,
  });
  return {
    ...vm,
    port,
    async waitForHttp(path, timeoutMs) {
      const answer = await waitForHttp(vm, port, path, timeoutMs, started);
      return { status: answer.status, body: answer.body.toString('utf8'), seconds: answer.seconds };
    },
  };
}

/** The guest console's last lines, for failure messages. */
export async function withConsole<T>(vm: Pick<RunningVm, 'console'>, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    const log = (await vm.console()) || '(no console output)';
    throw new Error(`${(e as Error).message}\n--- guest console (last 60 lines) ---\n${log.split('\n').slice(-60).join('\n')}`, { cause: e });
  }
}

/**
 * Boots a disk or a PXE bundle, waits for an HTTP answer on the guest's port and stops QEMU (by
 * its pid), whatever happened; on failure the error carries the guest console.
 */
export async function bootAndGet(r: BootRequest): Promise<BootAnswer> {
  const vm = await startVm({ ...r, maxSeconds: r.timeoutMs / 1000 + 5 });
  try {
    return await withConsole(vm, async () => ({ ...(await vm.waitForHttp(r.path ?? '/', r.timeoutMs)), console: await vm.console() }));
  } finally {
    await vm.stop();
  }
}
