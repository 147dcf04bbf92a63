import { execa, type ResultPromise } from 'execa';
import { copyFile, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

export interface BootRequest {
  /** Scratch directory for the firmware variables and the console log. */
  dir: string;
  /** A disk to boot; or, without one, `pxe`. */
  disk?: { path: string; format: 'raw' | 'qcow2' | 'vmdk'; snapshot?: boolean };
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

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 3000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Boots a disk, or PXE-boots, under UEFI (OVMF; SeaBIOS on request) in QEMU with software
 * emulation (AIM_QEMU_ACCEL=kvm to opt in to KVM), forwards a free host port to the guest's port and waits for an HTTP answer. QEMU is
 * killed by its pid afterwards, whatever happened; on failure the error carries the console log.
 */
export async function bootAndGet(r: BootRequest): Promise<BootAnswer> {
  const port = await freePort();
  const uefi = (r.firmware ?? 'uefi') === 'uefi';
  const vars = join(r.dir, 'OVMF_VARS.fd');
  if (uefi) await copyFile(OVMF_VARS, vars);
  const consoleLog = join(r.dir, 'console.log');
  const accel = process.env.AIM_QEMU_ACCEL === 'kvm' ? 'kvm' : 'tcg,tb-size=256';
  const tftp = r.pxe ? `,tftp=${r.pxe.tftpDir},bootfile=${r.pxe.bootfile}` : '';
  const args = [
    '-nodefaults', '-machine', 'q35', '-accel', accel, '-m', String(r.memoryMiB ?? 512), '-smp', '1', '-display', 'none', '-no-reboot',
    '-serial', `file:${consoleLog}`,
    ...(uefi ? ['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`] : []),
    ...(r.disk ? ['-drive', `file=${r.disk.path},if=none,id=d0,format=${r.disk.format}${r.disk.snapshot ? ',snapshot=on' : ''}`, '-device', 'virtio-blk-pci,drive=d0'] : []),
    '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:${r.guestPort}${tftp}`,
    // Disk boots: no option ROM, so the NIC does not try to PXE boot before the disk. PXE boots:
    // QEMU's own iPXE ROM for the NIC (package ipxe-qemu) fetches the bootfile by TFTP.
    '-device', `virtio-net-pci,netdev=n0${r.pxe ? '' : ',romfile='}`,
  ];
  const started = Date.now();
  const qemu: ResultPromise = execa('qemu-system-x86_64', args, { reject: false, stdin: 'ignore', timeout: r.timeoutMs + 5000 });
  let exited = false;
  void qemu.then(() => (exited = true));
  try {
    let last = '';
    while (Date.now() - started < r.timeoutMs) {
      if (exited) {
        const res = await qemu;
        throw new Error(`QEMU exited (${res.exitCode}) before answering: ${String(res.stderr).slice(-500)}`);
      }
      try {
        const answer = await get(port, r.path ?? '/');
        return { ...answer, seconds: (Date.now() - started) / 1000, console: await readFile(consoleLog, 'utf8').catch(() => '') };
      } catch (e) {
        last = (e as Error).message;
      }
      await sleep(500);
    }
    throw new Error(`no HTTP answer within ${r.timeoutMs / 1000} s (last: ${last})`);
  } catch (e) {
    const log = await readFile(consoleLog, 'utf8').catch(() => '(no console log)');
    throw new Error(`${(e as Error).message}\n--- guest console (last 60 lines) ---\n${log.split('\n').slice(-60).join('\n')}`, { cause: e });
  } finally {
    if (qemu.pid !== undefined && !exited) process.kill(qemu.pid, 'SIGKILL');
    await qemu.catch(() => undefined);
  }
}
