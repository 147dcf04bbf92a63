import { execa, type ResultPromise } from 'execa';
import { copyFile, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
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

/** A running VM: its forwarded port, HTTP polling, ACPI power button, console. */
export interface Vm {
  port: number;
  /** Polls GET path until an answer; seconds counted from QEMU's start. */
  waitForHttp(path: string, timeoutMs: number): Promise<{ status: number; body: string; seconds: number }>;
  /** Presses the ACPI power button (QEMU monitor system_powerdown) and waits for QEMU to exit. */
  powerDown(timeoutMs: number): Promise<{ exitCode: number | undefined; seconds: number }>;
  console(): Promise<string>;
  /** Polls the console until `pattern` appears. */
  waitForConsole(pattern: RegExp, timeoutMs: number): Promise<{ seconds: number }>;
  /** Kills QEMU by its pid if it still runs. */
  stop(): Promise<void>;
}

/**
 * Starts QEMU on a disk, or PXE-boots it, under UEFI (OVMF; SeaBIOS on request) with software
 * emulation (AIM_QEMU_ACCEL=kvm to opt in to KVM), forwarding a free port on 127.0.0.1 to the
 * guest's port.
 */
export async function startVm(r: Omit<BootRequest, 'timeoutMs' | 'path'> & { maxSeconds: number }): Promise<Vm> {
  const port = await freePort();
  const uefi = (r.firmware ?? 'uefi') === 'uefi';
  const vars = join(r.dir, 'OVMF_VARS.fd');
  if (uefi) await copyFile(OVMF_VARS, vars);
  const consoleLog = join(r.dir, 'console.log');
  const monitor = join(r.dir, 'monitor.sock');
  const accel = process.env.AIM_QEMU_ACCEL === 'kvm' ? 'kvm' : 'tcg,tb-size=256';
  const tftp = r.pxe ? `,tftp=${r.pxe.tftpDir},bootfile=${r.pxe.bootfile}` : '';
  const args = [
    '-nodefaults', '-machine', 'q35', '-accel', accel, '-m', String(r.memoryMiB ?? 512), '-smp', '1', '-display', 'none', '-no-reboot',
    '-serial', `file:${consoleLog}`,
    '-monitor', `unix:${monitor},server=on,wait=off`,
    ...(uefi ? ['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`] : []),
    ...(r.disk ? ['-drive', `file=${r.disk.path},if=none,id=d0,format=${r.disk.format}${r.disk.snapshot ? ',snapshot=on' : ''}`, '-device', 'virtio-blk-pci,drive=d0'] : []),
    '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:${r.guestPort}${tftp}`,
    // Disk boots: no option ROM, so the NIC does not try to PXE boot before the disk. PXE boots:
    // QEMU's own iPXE ROM for the NIC (package ipxe-qemu) fetches the bootfile by TFTP.
    '-device', `virtio-net-pci,netdev=n0${r.pxe ? '' : ',romfile='}`,
  ];
  const started = Date.now();
  const qemu: ResultPromise = execa('qemu-system-x86_64', args, { reject: false, stdin: 'ignore', timeout: r.maxSeconds * 1000 });
  let exited = false;
  const done = qemu.then((res) => {
    exited = true;
    return res;
  });
  const readConsole = () => readFile(consoleLog, 'utf8').catch(() => '');
  return {
    port,
    console: readConsole,
    async waitForHttp(path, timeoutMs) {
      const until = Date.now() + timeoutMs;
      let last = '';
      while (Date.now() < until) {
        if (exited) {
          const res = await done;
          throw new Error(`QEMU exited (${res.exitCode}) before answering: ${String(res.stderr).slice(-500)}`);
        }
        try {
          return { ...(await get(port, path)), seconds: (Date.now() - started) / 1000 };
        } catch (e) {
          last = (e as Error).message;
        }
        await sleep(500);
      }
      throw new Error(`no HTTP answer within ${timeoutMs / 1000} s (last: ${last})`);
    },
    async waitForConsole(pattern, timeoutMs) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (pattern.test(await readConsole())) return { seconds: (Date.now() - started) / 1000 };
        if (exited) throw new Error(`QEMU exited before the console showed ${pattern}`);
        await sleep(500);
      }
      throw new Error(`the console did not show ${pattern} within ${timeoutMs / 1000} s`);
    },
    async powerDown(timeoutMs) {
      const t0 = Date.now();
      // the monitor keeps its connection open: write the command, give it a moment, hang up
      await new Promise<void>((resolve, reject) => {
        const sock = connect(monitor, () => sock.write('system_powerdown\n', () => setTimeout(() => (sock.destroy(), resolve()), 500)));
        sock.on('error', reject);
      });
      const timer = sleep(timeoutMs).then(() => undefined);
      const res = await Promise.race([done, timer]);
      if (!res) throw new Error(`QEMU still runs ${timeoutMs / 1000} s after the power button`);
      return { exitCode: res.exitCode, seconds: (Date.now() - t0) / 1000 };
    },
    async stop() {
      if (qemu.pid !== undefined && !exited) process.kill(qemu.pid, 'SIGKILL');
      await done.catch(() => undefined);
    },
  };
}

/** The guest console's last lines, for failure messages. */
export async function withConsole<T>(vm: Vm, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    const log = (await vm.console()) || '(no console output)';
    throw new Error(`${(e as Error).message}\n--- guest console (last 60 lines) ---\n${log.split('\n').slice(-60).join('\n')}`, { cause: e });
  }
}

/**
 * Boots a disk, waits for an HTTP answer on the guest's port and stops QEMU (by its pid),
 * whatever happened; on failure the error carries the guest console.
 */
export async function bootAndGet(r: BootRequest): Promise<BootAnswer> {
  const vm = await startVm({ ...r, maxSeconds: r.timeoutMs / 1000 + 5 });
  try {
    return await withConsole(vm, async () => ({ ...(await vm.waitForHttp(r.path ?? '/', r.timeoutMs)), console: await vm.console() }));
  } finally {
    await vm.stop();
  }
}
